"""``requests-refresh token show`` and ``token clear``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from requests_refresh import FileTokenStore, Token
from requests_refresh.cli import main


def test_show_masks_secrets_and_gives_expiry_in_human_terms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """show prints every field, secrets as their length only, expiry as ISO + relative."""
    path = tmp_path / "tokens.json"
    now = time.time()
    token = Token(
        "short",
        "ZQX-refresh-value-ZQ",
        expires_at=now + 300,
        issued_at=now - 600,
        scope="read write",
        extra={"id_token": "ZQX-id", "tenant": "x"},
    )
    FileTokenStore(path, "work").save(token)

    assert main(["token", "show", "--file", str(path), "--key", "work"]) == 0

    out = capsys.readouterr().out
    assert "ZQX" not in out
    assert "short" not in out
    assert "<set, 5 chars>" in out
    assert "<set, 20 chars>" in out
    assert "Bearer" in out
    assert "read write" in out
    assert "expires in 5 min" in out
    assert "(10 min ago)" in out
    assert "id_token, tenant" in out
    assert "+00:00" in out


def test_show_says_how_long_ago_a_token_expired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expired token is shown as "expired 2 h ago"; a missing refresh token as <none>."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(Token("a", expires_at=time.time() - 7200))
    assert main(["token", "show", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "expired 2 h ago" in out
    assert "refresh_token  <none>" in out


def test_show_with_nothing_stored_exits_1_saying_how_to_sign_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No file (or no such key) is exit status 1 and a message on stderr."""
    path = tmp_path / "tokens.json"
    assert main(["token", "show", "--file", str(path)]) == 1
    err = capsys.readouterr().err
    assert "no token is stored" in err
    assert "sign in" in err


def test_show_reports_a_corrupt_file_without_touching_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt file is exit status 1 with the store's message; the file is unchanged."""
    path = tmp_path / "tokens.json"
    path.write_text("{oops")
    path.chmod(0o600)
    assert main(["token", "show", "--file", str(path)]) == 1
    assert "is corrupt" in capsys.readouterr().err
    assert path.read_text() == "{oops"


def test_clear_removes_one_key_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """clear removes the named key and keeps the file's other logins."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path, "a").save(Token("first"))
    FileTokenStore(path, "b").save(Token("second"))
    assert main(["token", "clear", "--file", str(path), "--key", "a"]) == 0
    assert "removed" in capsys.readouterr().out
    assert FileTokenStore(path, "a").load() is None
    assert FileTokenStore(path, "b").load() == Token("second")
    assert main(["token", "clear", "--file", str(path), "--key", "a"]) == 0
    assert "nothing to clear" in capsys.readouterr().out


def test_store_must_be_named(capsys: pytest.CaptureFixture[str]) -> None:
    """show without --file or --keyring is a usage error."""
    with pytest.raises(SystemExit) as caught:
        main(["token", "show"])
    assert caught.value.code == 2
    assert "--file" in capsys.readouterr().err
