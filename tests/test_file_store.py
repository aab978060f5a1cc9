"""FileTokenStore: the store contract, the file's format, permissions and failures."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from requests_refresh import (
    FileTokenStore,
    InvalidGrantError,
    NoTokenError,
    RefreshTokenGrant,
    Token,
    TokenStore,
    TokenStoreError,
)
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession
from .store_contract import TokenStoreContract, make_token
from .workers.process import Worker

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and flock")


class TestFileTokenStore(TokenStoreContract):
    shared = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> TokenStore:
        return FileTokenStore(tmp_path / "tokens.json")

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> TokenStore:
        return FileTokenStore(tmp_path / "tokens.json")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_format_is_versioned_json_with_one_entry_per_key(tmp_path: Path) -> None:
    """The file is {"version": 1, "tokens": {key: token.to_dict()}}."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    assert json.loads(path.read_text()) == {
        "version": 1,
        "tokens": {"default": make_token(1).to_dict()},
    }


def test_keys_are_independent_logins_in_one_file(tmp_path: Path) -> None:
    """Saving or clearing one key leaves the other keys of the file untouched."""
    path = tmp_path / "tokens.json"
    alice, bob = FileTokenStore(path, "alice"), FileTokenStore(path, "bob")
    alice.save(make_token(1))
    bob.save(make_token(2))
    alice.save(make_token(3))
    assert (alice.load(), bob.load()) == (make_token(3), make_token(2))
    alice.clear()
    assert (alice.load(), bob.load()) == (None, make_token(2))
    assert FileTokenStore(path).load() is None


@posix_only
def test_file_is_created_0600_and_missing_directories_0700(tmp_path: Path) -> None:
    """A new file is private to its owner, and so are the directories the store creates."""
    path = tmp_path / "created" / "nested" / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert mode_of(path.parent.parent) == 0o700
    assert FileTokenStore(path).load() == make_token(1)


def test_missing_directory_loads_none_and_clear_creates_nothing(tmp_path: Path) -> None:
    """No directory means no token; clearing it does not create one."""
    store = FileTokenStore(tmp_path / "absent" / "tokens.json")
    assert store.load() is None
    store.clear()
    assert not (tmp_path / "absent").exists()


@posix_only
def test_file_readable_by_others_warns_how_to_fix_it(tmp_path: Path) -> None:
    """A token file others may read is used, with a warning that gives the chmod to run."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    path.chmod(0o644)
    store = FileTokenStore(path)
    with pytest.warns(UserWarning, match=r"other users \(mode 0644\): run `chmod 600 "):
        assert store.load() == make_token(1)
    store.load()  # once per store, not on every read


@posix_only
def test_save_makes_an_open_file_private_again(tmp_path: Path) -> None:
    """After a save the file is 0600 again, whatever its mode was."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    path.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        FileTokenStore(path).save(make_token(2))
    assert mode_of(path) == 0o600


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"version": 1, "tokens": {"default": {"access_token": "secret-a', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"version": 2, "tokens": {}}', "format version is 2"),
        (b'{"version": 1}', '"tokens" is missing'),
    ],
)
def test_corrupt_file_is_an_error_naming_it_and_is_left_alone(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """A corrupt file raises TokenStoreError with path and problem; nothing overwrites it."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    path.chmod(0o600)
    store = FileTokenStore(path)
    for operation in (store.load, lambda: store.save(make_token(1)), store.clear):
        with pytest.raises(TokenStoreError, match=problem) as caught:
            operation()
        assert caught.value.path == str(path)
        assert str(path) in str(caught.value)
        assert "secret" not in str(caught.value)
    assert path.read_bytes() == content


def test_unusable_entry_is_an_error_until_a_new_login_replaces_it(tmp_path: Path) -> None:
    """A broken token under our key fails load() without its secrets; save() replaces it."""
    path = tmp_path / "tokens.json"
    path.write_text('{"version": 1, "tokens": {"default": {"refresh_token": "secret-r"}}}')
    path.chmod(0o600)
    store = FileTokenStore(path)
    with pytest.raises(TokenStoreError, match="unusable token under key 'default'") as caught:
        store.load()
    assert "secret" not in str(caught.value)
    assert caught.value.path == str(path)
    store.save(make_token(1))
    assert store.load() == make_token(1)


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A file this user may not read raises TokenStoreError, and is not replaced."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(make_token(1))
    path.chmod(0o000)
    try:
        with pytest.raises(TokenStoreError, match="cannot read the token file") as caught:
            FileTokenStore(path).load()
        assert caught.value.path == str(path)
        with pytest.raises(TokenStoreError, match="cannot read"):
            FileTokenStore(path).save(make_token(2))
    finally:
        path.chmod(0o600)
    assert FileTokenStore(path).load() == make_token(1)


def test_path_that_is_not_a_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A directory where the token file should be raises TokenStoreError, even for root."""
    path = tmp_path / "tokens.json"
    path.mkdir()
    with pytest.raises(TokenStoreError, match="cannot read the token file") as caught:
        FileTokenStore(path).load()
    assert caught.value.path == str(path)
    with pytest.raises(TokenStoreError, match="cannot"):
        FileTokenStore(path).save(make_token(1))
    assert path.is_dir()


def test_lock_is_reentrant_and_serialises_threads(tmp_path: Path) -> None:
    """save() inside lock() reuses the lock; another thread's save waits for the block."""
    store = FileTokenStore(tmp_path / "tokens.json", lock_timeout=10)
    inside = threading.Event()
    saved = threading.Event()

    def save_from_another_thread() -> None:
        inside.wait(10)
        store.save(make_token(2))
        saved.set()

    thread = threading.Thread(target=save_from_another_thread)
    thread.start()
    with store.lock():
        store.save(make_token(1))
        with store.lock():
            assert store.load() == make_token(1)
        inside.set()
        assert not saved.wait(0.2)
        assert store.load() == make_token(1)
    thread.join(timeout=10)
    assert saved.is_set()
    assert store.load() == make_token(2)


def test_repr_shows_path_and_key_but_no_secret(tmp_path: Path) -> None:
    """repr() names the file and the key, never a token."""
    store = FileTokenStore(tmp_path / "tokens.json", "work")
    store.save(make_token(1))
    assert repr(store) == f"FileTokenStore(path={str(tmp_path / 'tokens.json')!r}, key='work')"


def test_save_refuses_what_is_not_a_token(tmp_path: Path) -> None:
    """Saving a dict by mistake fails at once and writes nothing."""
    with pytest.raises(TypeError, match="Token"):
        FileTokenStore(tmp_path / "t.json").save({"access_token": "x"})  # type: ignore[arg-type]
    assert not (tmp_path / "t.json").exists()


def test_missing_file_means_no_token_with_a_hint_to_sign_in(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """A request with no file raises NoTokenError saying how to log in."""
    session, _ = make_session(store=FileTokenStore(tmp_path / "tokens.json"))
    with pytest.raises(NoTokenError, match="sign in and save the token"):
        session.get(server.resource_url, timeout=30)


def test_requests_do_not_read_the_file_while_the_token_is_valid(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """After the first read, a valid token is used without touching the file."""
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(server.login())
    session, adapter = make_session(store=FileTokenStore(path))
    assert session.get(server.resource_url, timeout=30).status_code == 200
    path.write_text("corrupt, and never read again while the token is valid")
    for _ in range(5):
        assert session.get(server.resource_url, timeout=30).status_code == 200
    assert adapter.stats.refreshes == 0


def test_expired_token_is_refreshed_and_saved_for_other_processes(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """A refresh writes the new token to the file before requests use it."""
    path = tmp_path / "tokens.json"
    login = server.login()
    FileTokenStore(path).save(Token(login.access_token, login.refresh_token, time.time() - 1))
    session, adapter = make_session(store=FileTokenStore(path))
    response = session.get(server.resource_url, timeout=30)
    assert response.status_code == 200
    stored = FileTokenStore(path).load()
    assert stored is not None
    assert stored.refresh_token != login.refresh_token
    assert response.request.headers["Authorization"] == stored.authorization
    assert (adapter.stats.refreshes, server.stats.refreshes) == (1, 1)


@posix_only
def test_lock_held_by_another_program_times_out_naming_the_lock_file(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """A lock held past lock_timeout is a TokenStoreError naming <path>.lock; no hang."""
    path = tmp_path / "tokens.json"
    login = server.login()
    FileTokenStore(path).save(Token(login.access_token, login.refresh_token, time.time() - 1))
    other = Worker("foreign-lock", str(path) + ".lock")
    try:
        other.expect("locked")
        store = FileTokenStore(path, lock_timeout=0.3)
        with pytest.raises(
            TokenStoreError, match=r"could not lock .*tokens\.json\.lock"
        ) as caught:
            store.save(login)
        assert caught.value.path == str(path) + ".lock"
        session, _ = make_session(store=store)
        started = time.monotonic()
        with pytest.raises(TokenStoreError, match=r"tokens\.json\.lock within 0\.3 s"):
            session.get(server.resource_url, timeout=30)
        assert time.monotonic() - started < 5
        assert server.stats.token_requests == 0
    finally:
        other.close()


def save_dead_login(directory: Path, server: AuthorizationServer) -> Path:
    """A token file whose access token has expired and whose login the server revoked."""
    path = directory / "tokens.json"
    login = server.login()
    FileTokenStore(path).save(Token(login.access_token, login.refresh_token, time.time() - 1))
    server.revoke()
    return path


def test_new_login_stored_by_another_process_after_invalid_grant_is_picked_up(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """After invalid_grant, a login another process saves is used without a restart."""
    path = save_dead_login(tmp_path, server)
    session, _ = make_session(store=FileTokenStore(path))
    with pytest.raises(InvalidGrantError):
        session.get(server.resource_url, timeout=30)
    signer = Worker("save", str(path), "default")
    try:
        signer.send(json.dumps(server.login().to_dict()))
        signer.expect("saved")
    finally:
        signer.close()
    assert session.get(server.resource_url, timeout=30).status_code == 200


def test_invalid_grant_rereads_the_file_and_adopts_a_login_written_meanwhile(
    tmp_path: Path, make_session: MakeSession, server: AuthorizationServer
) -> None:
    """invalid_grant does not wipe the file: a login written meanwhile is adopted, no error."""
    path = save_dead_login(tmp_path, server)
    new_login = server.login()
    signer = Worker("write-unlocked", str(path))
    grant_calls: list[Token] = []

    def refresher(token: Token) -> Token:
        # Another program signs in (without taking the lock) just as we refresh.
        signer.send(json.dumps(new_login.to_dict()))
        signer.expect("written")
        grant_calls.append(token)
        with RefreshTokenGrant(server.token_url, server.client_id) as grant:
            return grant(token)

    try:
        session, adapter = make_session(store=FileTokenStore(path), refresher=refresher)
        response = session.get(server.resource_url, timeout=30)
    finally:
        signer.close()
    assert response.status_code == 200
    assert response.request.headers["Authorization"] == new_login.authorization
    assert len(grant_calls) == 1
    assert server.stats.invalid_grant == 1
    assert (adapter.stats.adopted, adapter.stats.refreshes) == (1, 0)
    assert FileTokenStore(path).load() == new_login
