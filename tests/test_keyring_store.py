"""KeyringTokenStore keeps the store contract on real keyring backends, splits long tokens
into parts that fit Windows' 2,560-byte limit, and turns keyring failures into
TokenStoreErrors that say what to do."""

from __future__ import annotations

import dataclasses
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("keyring")  # the rest needs it: skipped where the extra is missing

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked, NoKeyringError, PasswordSetError
from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped]  # no py.typed

from requests_refresh import (
    KeyringTokenStore,
    Token,
    TokenStore,
    TokenStoreError,
)
from requests_refresh.cli import main
from requests_refresh.stores.keyring_store import DEFAULT_MAX_PART_SIZE, default_lock_path
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession
from .keyring_backends import (
    WINDOWS_BLOB_LIMIT,
    JsonFileKeyring,
    LimitedJsonFileKeyring,
)
from .store_contract import TokenStoreContract, make_token

SERVICE = "requests-refresh-tests"
USERNAME = "alice@example.com"


@pytest.fixture
def keep_keyring() -> Iterator[None]:
    """Restore the process's keyring backend after a test that sets one."""
    previous = keyring.get_keyring()
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def json_keyring(tmp_path: Path, keep_keyring: None) -> JsonFileKeyring:
    """A JSON-file backend in tmp_path, registered as the process's keyring."""
    backend = JsonFileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def limited_keyring(tmp_path: Path) -> LimitedJsonFileKeyring:
    """A backend that refuses secrets over 2,560 bytes of UTF-16, like Windows."""
    return LimitedJsonFileKeyring(tmp_path / "limited.json")


def jwt_pair(size: int = 4096) -> Token:
    """A token whose access and ID tokens are ``size``-character JWT-like strings."""
    body = "eyJhbGciOiJSUzI1NiJ9." + "x" * (size - 64) + ".signature"
    return Token(
        access_token=body,
        refresh_token="rt-" + "r" * 200,
        expires_at=1_900_000_000.0,
        issued_at=1_899_996_400.0,
        extra={"id_token": body.replace("x", "y")},
    )


class TestWithTheProcessKeyring(TokenStoreContract):
    """The contract, with the backend keyring selects (one registered with set_keyring)."""

    shared = True

    @pytest.fixture
    def store(self, json_keyring: JsonFileKeyring, tmp_path: Path) -> TokenStore:
        return KeyringTokenStore(
            SERVICE, USERNAME, lock_path=tmp_path / "store.lock", allow_insecure_backend=True
        )

    @pytest.fixture
    def reopen(self, store: TokenStore, tmp_path: Path) -> TokenStore:
        return KeyringTokenStore(
            SERVICE, USERNAME, lock_path=tmp_path / "store.lock", allow_insecure_backend=True
        )


class TestWithPlaintextKeyring(TokenStoreContract):
    """The contract, on keyrings.alt's plaintext file backend."""

    shared = True

    @pytest.fixture
    def backend(self, tmp_path: Path) -> PlaintextKeyring:
        backend = PlaintextKeyring()
        backend.file_path = str(tmp_path / "keyring_pass.cfg")
        return backend

    @pytest.fixture
    def store(self, backend: PlaintextKeyring, tmp_path: Path) -> TokenStore:
        return KeyringTokenStore(
            SERVICE,
            USERNAME,
            lock_path=tmp_path / "store.lock",
            backend=backend,
            allow_insecure_backend=True,
        )

    @pytest.fixture
    def reopen(self, backend: PlaintextKeyring, tmp_path: Path) -> TokenStore:
        other = PlaintextKeyring()
        other.file_path = backend.file_path
        return KeyringTokenStore(
            SERVICE,
            USERNAME,
            lock_path=tmp_path / "store.lock",
            backend=other,
            allow_insecure_backend=True,
        )


class TestInParts(TokenStoreContract):
    """The contract with every token split into parts, on the size-limited backend."""

    shared = True

    @pytest.fixture
    def store(self, limited_keyring: LimitedJsonFileKeyring, tmp_path: Path) -> TokenStore:
        return KeyringTokenStore(
            SERVICE,
            USERNAME,
            lock_path=tmp_path / "store.lock",
            backend=limited_keyring,
            max_part_size=128,
            allow_insecure_backend=True,
        )

    @pytest.fixture
    def reopen(self, limited_keyring: LimitedJsonFileKeyring, tmp_path: Path) -> TokenStore:
        return KeyringTokenStore(
            SERVICE,
            USERNAME,
            lock_path=tmp_path / "store.lock",
            backend=LimitedJsonFileKeyring(limited_keyring.path),
            max_part_size=128,
            allow_insecure_backend=True,
        )


def make_store(backend: KeyringBackend, tmp_path: Path, **options: object) -> KeyringTokenStore:
    """A store on ``backend`` (a test backend: opted in) with its lock file in tmp_path."""
    options.setdefault("allow_insecure_backend", True)
    return KeyringTokenStore(
        SERVICE,
        USERNAME,
        lock_path=tmp_path / "store.lock",
        backend=backend,
        **options,  # type: ignore[arg-type]
    )


# -- long tokens --------------------------------------------------------------------------


def test_a_4_kib_jwt_pair_round_trips_under_the_windows_limit(
    limited_keyring: LimitedJsonFileKeyring, tmp_path: Path
) -> None:
    """A token of two 4 KiB JWTs is stored in parts that each fit 2,560 bytes of UTF-16."""
    token = jwt_pair(4096)
    make_store(limited_keyring, tmp_path).save(token)
    assert make_store(LimitedJsonFileKeyring(limited_keyring.path), tmp_path).load() == token
    entries = limited_keyring.entries()
    assert len(entries) > 8  # a header and parts
    assert all(len(value.encode("utf-16-le")) <= WINDOWS_BLOB_LIMIT for value in entries.values())


def test_the_default_part_size_fits_the_windows_limit() -> None:
    """The default part size, in ASCII characters, is under 2,560 bytes as UTF-16."""
    assert len(("x" * DEFAULT_MAX_PART_SIZE).encode("utf-16-le")) < WINDOWS_BLOB_LIMIT


def test_without_parts_the_limited_backend_refuses_and_the_error_says_what_to_do(
    limited_keyring: LimitedJsonFileKeyring, tmp_path: Path
) -> None:
    """The limited backend really enforces its limit, and the store's error names the fix."""
    store = make_store(limited_keyring, tmp_path, max_part_size=1_000_000)
    with pytest.raises(TokenStoreError, match="max_part_size") as caught:
        store.save(jwt_pair(4096))
    assert isinstance(caught.value.__cause__, PasswordSetError)
    assert "xxxx" not in str(caught.value)


def test_a_shorter_token_leaves_no_stale_parts(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """Saving a short token after long ones deletes every part the long ones used."""
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(8192))
    store.save(jwt_pair(4096))
    store.save(jwt_pair(6000))
    assert store.load() == jwt_pair(6000)
    store.save(make_token(1))
    assert list(json_keyring.entries()) == [(SERVICE, USERNAME)]
    assert store.load() == make_token(1)


def test_long_tokens_alternate_slots_so_the_old_parts_stay_whole_until_the_header_moves(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """A save writes its parts beside the old ones and only then points the header at them."""
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(4096))
    first = json.loads(json_keyring.get_password(SERVICE, USERNAME) or "")
    store.save(jwt_pair(5000))
    second = json.loads(json_keyring.get_password(SERVICE, USERNAME) or "")
    assert {first["slot"], second["slot"]} == {"a", "b"}
    assert all(
        name.startswith(f"{USERNAME}#{second['slot']}") or name == USERNAME
        for _, name in json_keyring.entries()
    )


def test_clear_removes_the_header_and_every_part(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """After clear() the keyring holds nothing of the store's."""
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(8192))
    store.clear()
    assert json_keyring.entries() == {}
    assert store.load() is None


def test_a_header_naming_a_missing_part_is_a_store_error(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """A damaged multi-part value fails with a TokenStoreError that says to clear it."""
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(4096))
    slot = json.loads(json_keyring.get_password(SERVICE, USERNAME) or "")["slot"]
    json_keyring.delete_password(SERVICE, f"{USERNAME}#{slot}2")
    with pytest.raises(TokenStoreError, match=r"damaged.*clear"):
        store.load()


def test_a_changed_part_fails_the_checksum(json_keyring: JsonFileKeyring, tmp_path: Path) -> None:
    """Parts that do not add up to the header's SHA-256 are never turned into a token."""
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(4096))
    slot = json.loads(json_keyring.get_password(SERVICE, USERNAME) or "")["slot"]
    json_keyring.set_password(SERVICE, f"{USERNAME}#{slot}1", "x" * DEFAULT_MAX_PART_SIZE)
    with pytest.raises(TokenStoreError, match="checksum"):
        store.load()


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[1, 2]",
        '{"access_token": 5}',
        '{"format": "someone-else/9"}',
        "[" * 200_000 + "]" * 200_000,
    ],
    ids=["not json", "a list", "no token", "another format", "nested 200,000 deep"],
)
def test_a_value_that_is_not_our_token_is_a_store_error(
    json_keyring: JsonFileKeyring, tmp_path: Path, value: str
) -> None:
    """Whatever else sits under (service, username) fails with a store error, not a crash."""
    json_keyring.set_password(SERVICE, USERNAME, value)
    with pytest.raises(TokenStoreError, match=r"clear|upgrade"):
        make_store(json_keyring, tmp_path).load()


def test_a_save_replaces_a_deeply_nested_value(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """A value nested 200,000 deep under (service, username) is overwritten by a save.

    Protects against: a raw RecursionError out of save(), which reads the old value to
    find its parts, leaving the entry stuck until removed by hand.
    """
    json_keyring.set_password(SERVICE, USERNAME, "[" * 200_000 + "]" * 200_000)
    store = make_store(json_keyring, tmp_path)
    store.save(jwt_pair(256))
    assert store.load() == jwt_pair(256)


# -- keyring failures ---------------------------------------------------------------------


class _FailingKeyring(KeyringBackend):
    """A backend whose every call raises ``error``."""

    priority = 0

    def __init__(self, error: Exception) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring leaves it unannotated
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error

    def delete_password(self, service: str, username: str) -> None:
        raise self.error


def test_no_usable_backend_points_to_file_token_store(tmp_path: Path, keep_keyring: None) -> None:
    """With no keyring backend (headless Linux) every operation says so and names the fix."""
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]  # unannotated
    store = KeyringTokenStore(SERVICE, USERNAME, lock_path=tmp_path / "store.lock")
    for operation in (store.load, lambda: store.save(make_token(1)), store.clear):
        with pytest.raises(
            TokenStoreError, match=r"no usable OS keyring.*FileTokenStore"
        ) as caught:
            operation()
        assert isinstance(caught.value.__cause__, NoKeyringError)


def test_a_locked_keyring_says_to_unlock_it(tmp_path: Path) -> None:
    """KeyringLocked becomes a TokenStoreError asking to unlock the keyring."""
    store = make_store(_FailingKeyring(KeyringLocked("locked")), tmp_path)
    with pytest.raises(TokenStoreError, match=r"locked.*unlock") as caught:
        store.load()
    assert isinstance(caught.value.__cause__, KeyringLocked)


def test_a_backend_specific_failure_is_a_store_error(tmp_path: Path) -> None:
    """A backend raising something other than a KeyringError still gives a TokenStoreError."""
    store = make_store(_FailingKeyring(OSError("D-Bus went away")), tmp_path)
    with pytest.raises(TokenStoreError, match="failed to read") as caught:
        store.load()
    assert isinstance(caught.value.__cause__, OSError)


def test_a_refused_write_never_shows_the_token(tmp_path: Path) -> None:
    """The message of a failed save names the entry and the fix, never the secret."""
    store = make_store(_FailingKeyring(PasswordSetError("refused")), tmp_path)
    with pytest.raises(TokenStoreError) as caught:
        store.save(make_token(1))
    assert "-1-secret" not in str(caught.value)
    assert SERVICE in str(caught.value)


# -- the lock -----------------------------------------------------------------------------


def test_lock_is_reentrant_within_a_thread(json_keyring: JsonFileKeyring, tmp_path: Path) -> None:
    """save(), clear() and a nested lock() work while the same thread holds lock()."""
    store = make_store(json_keyring, tmp_path, lock_timeout=1.0)
    with store.lock(), store.lock():
        store.save(make_token(1))
        store.clear()
        store.save(make_token(2))
    assert store.load() == make_token(2)


def test_another_handle_waits_for_the_lock_and_gives_up_with_a_store_error(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """A second store on the same lock file cannot lock while the first holds it."""
    holder = make_store(json_keyring, tmp_path)
    other = make_store(json_keyring, tmp_path, lock_timeout=0.2)
    with holder.lock(), pytest.raises(TokenStoreError, match="could not lock") as caught:
        other.save(make_token(1))
    assert caught.value.path == str(tmp_path / "store.lock")
    other.save(make_token(1))  # free again once released


def test_another_thread_waits_for_the_lock(json_keyring: JsonFileKeyring, tmp_path: Path) -> None:
    """Another thread of the same store gets the bounded wait, not a re-entrant pass."""
    store = make_store(json_keyring, tmp_path, lock_timeout=0.2)
    outcome: list[BaseException | None] = []
    with store.lock():

        def save() -> None:
            try:
                store.save(make_token(1))
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=save)
        thread.start()
        thread.join(timeout=10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], TokenStoreError)


def test_the_default_lock_file_is_a_hash_in_a_private_runtime_directory(
    json_keyring: JsonFileKeyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without lock_path the lock lives in $XDG_RUNTIME_DIR/requests-refresh/, made 0700."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    store = KeyringTokenStore("../../etc", "me/../you", allow_insecure_backend=True)
    assert store.lock_path == default_lock_path("../../etc", "me/../you")
    assert store.lock_path.parent == runtime / "requests-refresh"
    assert "etc" not in store.lock_path.name
    assert "you" not in store.lock_path.name
    store.save(make_token(1))
    assert store.lock_path.exists()
    assert stat.S_IMODE(store.lock_path.parent.stat().st_mode) == 0o700


def test_without_a_runtime_directory_the_lock_goes_to_the_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$XDG_CACHE_HOME is the fallback on Linux when there is no runtime directory."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.platform", "linux")
    assert default_lock_path("s", "u").parent == tmp_path / "cache" / "requests-refresh"


def test_different_logins_get_different_lock_files() -> None:
    """The lock file name depends on both the service and the user name."""
    paths = {default_lock_path(s, u) for s in ("a", "b") for u in ("a", "b")}
    assert len(paths) == 4


# -- the object ---------------------------------------------------------------------------


def test_repr_shows_the_entry_and_no_secret(json_keyring: JsonFileKeyring, tmp_path: Path) -> None:
    """repr() names the service and user name, never the token."""
    store = make_store(json_keyring, tmp_path)
    store.save(make_token(1))
    assert repr(store) == f"KeyringTokenStore(service={SERVICE!r}, username={USERNAME!r})"


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        (("", "u"), {}, "service"),
        (("s", ""), {}, "username"),
        (("s", "u"), {"max_part_size": 10}, "max_part_size"),
        (("s", "u"), {"lock_timeout": -1}, "lock_timeout"),
    ],
)
def test_bad_arguments_fail_at_construction(
    args: tuple[str, str], options: dict[str, object], match: str
) -> None:
    """Arguments out of range fail at once with a ValueError naming them."""
    with pytest.raises(ValueError, match=match):
        KeyringTokenStore(*args, **options)  # type: ignore[arg-type]


def test_save_refuses_what_is_not_a_token(json_keyring: JsonFileKeyring, tmp_path: Path) -> None:
    """Saving a dict by mistake fails at once."""
    with pytest.raises(TypeError, match="Token"):
        make_store(json_keyring, tmp_path).save({"access_token": "x"})  # type: ignore[arg-type]


def test_the_adapter_keeps_refreshed_tokens_in_the_keyring(
    server: AuthorizationServer,
    make_session: MakeSession,
    json_keyring: JsonFileKeyring,
    tmp_path: Path,
) -> None:
    """A refresh through the adapter saves the new token where another handle reads it."""
    store = make_store(json_keyring, tmp_path)
    login = server.login()
    expired = dataclasses.replace(login, expires_at=time.time() - 1, issued_at=time.time() - 61)
    store.save(expired)
    session, adapter = make_session(store=store)
    assert session.get(server.resource_url, timeout=10).status_code == 200
    assert server.stats.refreshes == 1
    stored = make_store(JsonFileKeyring(json_keyring.path), tmp_path).load()
    assert stored is not None
    assert stored.refresh_token not in (None, login.refresh_token)
    assert adapter.stats.refreshes == 1


def test_reads_during_saves_of_long_tokens_see_whole_tokens(
    json_keyring: JsonFileKeyring, tmp_path: Path
) -> None:
    """A reader racing a writer of multi-part tokens gets one whole token each time."""
    tokens = [jwt_pair(4096), jwt_pair(5000), jwt_pair(2500)]
    writer = make_store(json_keyring, tmp_path)
    reader = make_store(JsonFileKeyring(json_keyring.path), tmp_path)
    writer.save(tokens[0])
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(12):
                writer.save(tokens[n % len(tokens)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    while not done.is_set():
        seen.append(reader.load())
    thread.join(timeout=60)
    assert not errors
    assert seen
    assert all(token in tokens for token in seen)


def test_cli_shows_and_clears_a_token_in_the_keyring(
    json_keyring: JsonFileKeyring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`token show/clear --keyring SERVICE USERNAME` read and remove the keyring entry."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    KeyringTokenStore("svc", "me", allow_insecure_backend=True).save(
        make_token(1, expires_at=time.time() + 600)
    )
    assert main(["token", "show", "--keyring", "svc", "me"]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out
    assert "the keyring ('svc', 'me')" in out
    assert "expires in 10 min" in out
    assert main(["token", "clear", "--keyring", "svc", "me"]) == 0
    assert KeyringTokenStore("svc", "me", allow_insecure_backend=True).load() is None
