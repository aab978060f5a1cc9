"""``requests-refresh token show/clear --redis URL [--key K]`` against a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from requests_refresh import RedisTokenStore, Token
from requests_refresh.cli import main

from .redis_server import RedisServer, free_port


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisTokenStore]:
    """A RedisTokenStore under the key "cli" holding a token, closed at teardown."""
    made = RedisTokenStore(redis_server.url, "cli")
    made.save(Token("ZQX-access", "ZQX-refresh", expires_at=time.time() + 300))
    yield made
    made.close()


def test_show_masks_secrets_and_names_the_server(
    redis_server: RedisServer, store: RedisTokenStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """show --redis --key prints the token masked, and where it is, without secrets."""
    assert main(["token", "show", "--redis", redis_server.url, "--key", "cli"]) == 0
    out = capsys.readouterr().out
    assert "ZQX" not in out
    assert f"Redis at 127.0.0.1:{redis_server.port} under key 'cli'" in out
    assert "<set, 10 chars>" in out
    assert "expires in 5 min" in out


def test_clear_removes_the_token_of_that_key_only(
    redis_server: RedisServer, store: RedisTokenStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """clear --redis --key removes that login; another key is left alone."""
    other = RedisTokenStore(redis_server.url, "cli-other")
    other.save(Token("other"))
    assert main(["token", "clear", "--redis", redis_server.url, "--key", "cli"]) == 0
    assert "removed the token" in capsys.readouterr().out
    assert store.load() is None
    assert other.load() == Token("other")
    assert main(["token", "show", "--redis", redis_server.url, "--key", "cli"]) == 1
    assert "no token is stored" in capsys.readouterr().err
    other.close()


def test_an_unreachable_server_is_exit_1_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing listening: exit status 1, the server named, its password nowhere."""
    pytest.importorskip("redis", reason="redis-py is not installed (the redis extra)")
    url = f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0"
    assert main(["token", "show", "--redis", url]) == 1
    captured = capsys.readouterr()
    assert "cannot reach Redis at 127.0.0.1:" in captured.err
    assert "hunter2" not in captured.out + captured.err
