"""KeyringTokenStore uses only the operating system's encrypted stores unless told
otherwise: keyrings.alt's plain-text file, keyring's null backend and unknown backends
are refused before anything is written, with the opt-in named in the message."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("keyring")  # the rest needs it: skipped where the extra is missing

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, chainer, null
from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped]  # no py.typed

from requests_refresh import KeyringTokenStore, Token, TokenStoreError
from requests_refresh.stores.keyring_store import SECURE_BACKENDS

from .keyring_backends import JsonFileKeyring, MemoryKeyring

TOKEN = Token("ZQX-access-secret", "ZQX-refresh-secret", expires_at=1_900_000_000.0)


@pytest.fixture
def plaintext(tmp_path: Path) -> PlaintextKeyring:
    """keyrings.alt's plain-text file backend (what the test extra resolves to), in tmp_path."""
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring_pass.cfg")
    return backend


@pytest.fixture
def process_keyring() -> Iterator[None]:
    """Restore the process's keyring backend after a test that sets one."""
    previous = keyring.get_keyring()
    try:
        yield
    finally:
        keyring.set_keyring(previous)


class _SecretServiceInMemory(MemoryKeyring, SecretService.Keyring):
    """A Secret Service backend that keeps entries in a dict: no D-Bus session here."""


def _chain(*backends: KeyringBackend) -> chainer.ChainerBackend:
    """A ChainerBackend over exactly ``backends``, in that order."""
    chain = type("Chain", (chainer.ChainerBackend,), {"backends": list(backends)})
    instance: chainer.ChainerBackend = chain()
    return instance


def test_the_plaintext_file_backend_is_refused_before_anything_is_written(
    plaintext: PlaintextKeyring, tmp_path: Path
) -> None:
    """save() on keyrings.alt's PlaintextKeyring fails naming it, its file and the opt-in."""
    store = KeyringTokenStore("my-cli", "alice", lock_path=tmp_path / "l", backend=plaintext)
    for operation in (lambda: store.save(TOKEN), store.load, store.clear):
        with pytest.raises(TokenStoreError) as caught:
            operation()
        message = str(caught.value)
        assert "keyrings.alt.file.PlaintextKeyring" in message
        assert plaintext.file_path in message
        assert "allow_insecure_backend=True" in message
        assert "FileTokenStore" in message
        assert "ZQX" not in message
    assert not Path(plaintext.file_path).exists()


def test_the_readme_example_on_the_test_extra_default_backend_is_refused(
    plaintext: PlaintextKeyring, tmp_path: Path, process_keyring: None
) -> None:
    """With the plain-text backend as the process's keyring, the README's save() is refused."""
    keyring.set_keyring(plaintext)
    store = KeyringTokenStore("my-cli", "alice@example.com", lock_path=tmp_path / "l")
    with pytest.raises(TokenStoreError, match="not an encrypted store of the operating system"):
        store.save(TOKEN)
    assert not Path(plaintext.file_path).exists()


def test_opting_in_uses_the_plaintext_backend(plaintext: PlaintextKeyring, tmp_path: Path) -> None:
    """allow_insecure_backend=True stores and loads through the plain-text backend."""
    store = KeyringTokenStore(
        "my-cli",
        "alice",
        lock_path=tmp_path / "l",
        backend=plaintext,
        allow_insecure_backend=True,
    )
    store.save(TOKEN)
    assert store.load() == TOKEN
    assert Path(plaintext.file_path).exists()


@pytest.mark.parametrize(
    "backend",
    [null.Keyring(), JsonFileKeyring("unused.json")],  # type: ignore[no-untyped-call]
    ids=["null", "unknown-third-party"],
)
def test_other_backends_are_refused(backend: KeyringBackend, tmp_path: Path) -> None:
    """A backend that keeps nothing, and one we do not know to encrypt, are refused too."""
    store = KeyringTokenStore("my-cli", "alice", lock_path=tmp_path / "l", backend=backend)
    with pytest.raises(TokenStoreError, match=type(backend).__qualname__):
        store.save(TOKEN)


def test_a_secret_service_backend_is_used_without_opting_in(tmp_path: Path) -> None:
    """A Secret Service backend (a subclass of keyring's) needs no opt-in."""
    backend = _SecretServiceInMemory()
    store = KeyringTokenStore("my-cli", "alice", lock_path=tmp_path / "l", backend=backend)
    store.save(TOKEN)
    assert store.load() == TOKEN
    assert ("my-cli", "alice") in backend.entries


def test_a_chainer_is_judged_by_its_first_backend(
    plaintext: PlaintextKeyring, tmp_path: Path
) -> None:
    """A chainer that writes to a Secret Service is fine; one that writes to a file is not."""
    secure = _SecretServiceInMemory()
    good = KeyringTokenStore("s", "u", lock_path=tmp_path / "l", backend=_chain(secure, plaintext))
    good.save(TOKEN)
    assert good.load() == TOKEN
    bad = KeyringTokenStore("s", "u", lock_path=tmp_path / "l", backend=_chain(plaintext, secure))
    with pytest.raises(TokenStoreError, match="PlaintextKeyring"):
        bad.save(TOKEN)
    empty = KeyringTokenStore("s", "u", lock_path=tmp_path / "l", backend=_chain())
    with pytest.raises(TokenStoreError, match="not an encrypted store"):
        empty.save(TOKEN)


@pytest.mark.parametrize(("module", "name"), sorted(SECURE_BACKENDS))
def test_every_trusted_backend_exists_in_keyring(module: str, name: str) -> None:
    """The allow-list names real keyring backend classes (a rename would silently refuse)."""
    backend = getattr(importlib.import_module(module), name)
    assert issubclass(backend, KeyringBackend)
