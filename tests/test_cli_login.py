"""``requests-refresh login`` end to end into a file store, and ``token clear --revoke``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from requests_refresh import FileTokenStore, RefreshTokenGrant, Token
from requests_refresh.cli import main
from requests_refresh.testing import AuthorizationServer

FOLLOW_URL = Path(__file__).parent / "workers" / "follow_url.py"


def test_device_login_saves_the_token_to_the_file(
    server: AuthorizationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """login --device shows the code, waits for approval, saves the token under the key."""
    server.device_interval = 0
    codes: list[str] = []

    def approve(user_code: str) -> None:
        codes.append(user_code)
        server.approve(user_code)

    server.on_user_code = approve
    path = tmp_path / "tokens.json"
    status = main(
        [
            "login",
            "--device",
            "--issuer",
            server.issuer,
            "--client-id",
            server.client_id,
            "--scope",
            "read write",
            "--file",
            str(path),
            "--key",
            "work",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert codes[0] in err
    assert "signed in" in out
    token = FileTokenStore(path, "work").load()
    assert token is not None
    assert token.scope == "read write"
    assert token.access_token not in out + err
    # The saved login works: its refresh token is accepted.
    RefreshTokenGrant(server.token_url, server.client_id)(token)


def test_browser_login_through_the_browser_variable(
    server: AuthorizationServer, tmp_path: Path
) -> None:
    """login --browser opens $BROWSER on the sign-in URL (a process that follows it)."""
    path = tmp_path / "tokens.json"
    env = dict(os.environ, BROWSER=f"{shlex.quote(sys.executable)} {FOLLOW_URL} %s")
    env.pop("DISPLAY", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "requests_refresh",
            "login",
            "--browser",
            "--issuer",
            server.issuer,
            "--client-id",
            server.client_id,
            "--timeout",
            "60",
            "--file",
            str(path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Sign in in your browser: " + server.authorization_url in result.stderr
    assert FileTokenStore(path).load() is not None
    assert server.stats.code_exchanges == 1


def test_a_denied_login_exits_1_and_stores_nothing(
    server: AuthorizationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user declines: exit status 1, the reason on stderr, no file written."""
    server.device_interval = 0
    server.on_user_code = server.deny
    path = tmp_path / "tokens.json"
    args = ["login", "--device", "--issuer", server.issuer, "--client-id", server.client_id]
    assert main([*args, "--file", str(path)]) == 1
    assert "declined" in capsys.readouterr().err
    assert not path.exists()


def test_client_secret_comes_from_the_named_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--client-secret-env names a variable; unset, it is a usage error saying so."""
    monkeypatch.delenv("RR_TEST_SECRET", raising=False)
    with AuthorizationServer(client_secret="cli-secret-value", device_interval=0) as server:
        server.on_user_code = server.approve
        args = ["login", "--device", "--issuer", server.issuer, "--client-id", "test-client"]
        args += ["--client-secret-env", "RR_TEST_SECRET", "--file", str(tmp_path / "t.json")]
        assert main(args) == 2
        assert "RR_TEST_SECRET" in capsys.readouterr().err
        monkeypatch.setenv("RR_TEST_SECRET", "cli-secret-value")
        assert main(args) == 0
        assert "cli-secret-value" not in "".join(capsys.readouterr())


def test_clear_revoke_revokes_then_clears(
    server: AuthorizationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """token clear --revoke revokes the login at the server, then removes the token."""
    path = tmp_path / "tokens.json"
    token = server.login()
    FileTokenStore(path).save(token)
    args = ["token", "clear", "--file", str(path), "--revoke"]
    assert main([*args, "--issuer", server.issuer, "--client-id", server.client_id]) == 0
    out = capsys.readouterr().out
    assert "revoked" in out
    assert "removed" in out
    assert FileTokenStore(path).load() is None
    assert server.stats.revocations == 1
    assert server.revoked


def test_clear_revoke_keeps_the_token_when_revocation_fails(
    server: AuthorizationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused revocation: exit 1, the token stays stored, the message says what to do."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(Token("a", "rt-value"))
    args = ["token", "clear", "--file", str(path), "--revoke", "--issuer", server.issuer]
    assert main([*args, "--client-id", "unknown-client"]) == 1
    assert "still stored" in capsys.readouterr().err
    assert FileTokenStore(path).load() == Token("a", "rt-value")


def test_revoke_needs_the_issuer_and_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--revoke without --issuer/--client-id is a usage error; nothing is cleared."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(Token("a"))
    assert main(["token", "clear", "--file", str(path), "--revoke"]) == 2
    assert "--issuer" in capsys.readouterr().err
    assert FileTokenStore(path).load() == Token("a")
