"""KeyringTokenStore: the token in the operating system's keyring, through ``keyring``.

``keyring`` is an optional dependency (``pip install 'requests-refresh[keyring]'``): this
module imports it only when a store is constructed, so ``import requests_refresh`` works
without it.

How a token is kept. The token is serialised as ASCII JSON (:meth:`Token.to_dict`). When
that fits in ``max_part_size`` characters it is the password of the entry
``(service, username)``. A longer one is cut into parts stored under
``(service, f"{username}#a1")``, ``#a2``, ... (or ``#b1``, ``#b2``, ...), and the entry
``(service, username)`` holds a small header naming the slot (``a`` or ``b``), the number
of parts and the SHA-256 of the whole. A save writes its parts into the slot the current
header does not use, then the header, then deletes the old slot's parts: a reader never
sees a header pointing at parts that are not written yet, and a part changed under a
reader fails the checksum, whereupon the read is repeated under the lock. A load accepts
at most 10,000 parts (a header naming more is damaged), so a save refuses, before writing
anything, a token that would need more.

Why 1,000 characters by default: Windows Credential Manager refuses secrets over
``CRED_MAX_CREDENTIAL_BLOB_SIZE``, 2,560 bytes (keyring issue #355), and ``keyring``
stores them as UTF-16, two bytes per character, so at most 1,280 characters fit. The JSON
is ASCII (``ensure_ascii``), so 1,000 characters are 2,000 bytes there: under the limit
with room to spare. Other backends (macOS Keychain, the Secret Service) take more; the
parts cost them nothing but a few more round trips for tokens over 1,000 characters.

Locking. ``keyring`` has no lock of its own, so the store holds a ``filelock`` on a lock
file, by default in the user's runtime or cache directory (see :func:`default_lock_path`),
around every change and around the adapter's reload-refresh-save sequence. The lock is
re-entrant within a thread for one store: :meth:`save` and :meth:`clear` take it too.

Which backends. Only the encrypted stores of the operating system are used unless the
caller opts in (``allow_insecure_backend=True``): with ``keyrings.alt`` installed,
``keyring`` may otherwise pick a file backend that keeps the refresh token in plain text
(``PlaintextKeyring`` encodes it in base64, which anyone can decode) without a word. A
``ChainerBackend`` writes to its first backend, so that is the one judged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._values import check_seconds, type_name
from ..exceptions import TokenStoreError
from ..token import Token
from ._files import make_private_directory
from ._json import StoredJSONError, parse_stored_json
from ._keyring import SECURE_BACKENDS, default_lock_path, keyring_error, refuse_insecure
from ._locking import DEFAULT_LOCK_TIMEOUT, StoreLock
from .base import TokenStore

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["DEFAULT_MAX_PART_SIZE", "SECURE_BACKENDS", "KeyringTokenStore", "default_lock_path"]

#: The longest value stored in one keyring entry, in characters (ASCII, so also UTF-8
#: bytes): 2,000 bytes once ``keyring`` encodes it as UTF-16 for Windows Credential
#: Manager, whose limit is 2,560 bytes.
DEFAULT_MAX_PART_SIZE = 1000

#: The smallest ``max_part_size`` accepted: the header must fit in one entry.
MIN_PART_SIZE = 128

_PARTS_FORMAT = "requests-refresh/parts/1"
_SLOTS = ("a", "b")
_MAX_PARTS = 10_000  # a header naming more is damaged, not a token
_INSTALL_HINT = "pip install 'requests-refresh[keyring]'"


class _Header(NamedTuple):
    slot: str
    parts: int
    sha256: str


class KeyringTokenStore(TokenStore):
    """Keeps the token in the OS keyring (macOS Keychain, Windows Credential Manager,
    the freedesktop Secret Service, ...) under ``(service, username)``.

    Shared between processes: around each refresh the adapter holds :meth:`lock`, a file
    lock, so one process refreshes and the others adopt its token.

    Args:
        service: the keyring service name, e.g. your application's name.
        username: the keyring user name, e.g. the account signed in. Entries
            ``f"{username}#a1"``, ``#b1``, ... of the same service hold the parts of long
            tokens.
        lock_path: the lock file; default :func:`default_lock_path`.
        lock_timeout: how long to wait for the lock, in seconds.
        backend: the ``keyring`` backend to use; default: the one ``keyring`` selects
            (``keyring.get_keyring()``), looked up at each use.
        max_part_size: the longest value stored in one entry, in characters; longer
            tokens are split into parts. The default suits Windows' 2,560-byte limit.
        allow_insecure_backend: use a backend that is not one of the operating system's
            encrypted stores (:data:`SECURE_BACKENDS`), e.g. ``keyrings.alt``'s file
            backends or a third-party backend you trust. Without it such a backend is
            refused with a :class:`~requests_refresh.TokenStoreError` before anything is
            read or written.

    Raises:
        ImportError: ``keyring`` is not installed.
        ValueError: an argument is out of range.

    Every failure of the keyring becomes a :class:`~requests_refresh.TokenStoreError`
    that says what to do, with the keyring's error as its ``__cause__``.
    """

    def __init__(
        self,
        service: str,
        username: str,
        *,
        lock_path: str | os.PathLike[str] | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        backend: KeyringBackend | None = None,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
        allow_insecure_backend: bool = False,
    ) -> None:
        try:
            import keyring  # noqa: PLC0415 - optional dependency, imported on use
        except ImportError as exc:
            raise ImportError(
                f"KeyringTokenStore needs the keyring package: {_INSTALL_HINT}"
            ) from exc
        for name, value in (("service", service), ("username", username)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        check_seconds("lock_timeout", lock_timeout)
        if isinstance(max_part_size, bool) or not isinstance(max_part_size, int):
            raise ValueError("max_part_size must be an int")
        if max_part_size < MIN_PART_SIZE:
            raise ValueError(f"max_part_size must be at least {MIN_PART_SIZE} characters")
        self._service = service
        self._username = username
        self._explicit_lock_path = lock_path is not None
        self._lock_path = (
            Path(lock_path) if lock_path is not None else default_lock_path(service, username)
        )
        self._lock_timeout = float(lock_timeout)
        self._backend = backend
        self._get_keyring: Callable[[], KeyringBackend] = keyring.get_keyring
        self._max_part_size = max_part_size
        self._allow_insecure_backend = bool(allow_insecure_backend)
        self._lock = StoreLock(
            self._lock_path, self._lock_timeout, prepare=self._make_lock_directory
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service={self._service!r}, username={self._username!r})"

    @property
    def service(self) -> str:
        return self._service

    @property
    def username(self) -> str:
        return self._username

    @property
    def lock_path(self) -> Path:
        """The lock file held around changes and refreshes."""
        return self._lock_path

    # -- the TokenStore interface -------------------------------------------------------

    def load(self) -> Token | None:
        consistent, token = self._read()
        if not consistent:
            # A save changed the parts while we read them: read again, this time alone.
            with self.lock():
                consistent, token = self._read()
            if not consistent:
                raise TokenStoreError(
                    f"the keyring entry {self._entry()} names parts that are missing or"
                    " do not match its checksum: the stored token is damaged; clear it"
                    " (store.clear() or `requests-refresh token clear --keyring ...`)"
                    " and sign in again"
                )
        return token

    def save(self, token: Token) -> None:
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        text = json.dumps(token.to_dict(), ensure_ascii=True, separators=(",", ":"))
        size = self._max_part_size
        needed = -(-len(text) // size)
        if needed > _MAX_PARTS:
            # Refused before anything is written: stored, it could never be loaded back.
            raise TokenStoreError(
                f"the token is {len(text):,} characters, {needed:,} parts of max_part_size"
                f" {size} characters: more than the {_MAX_PARTS:,} parts a load accepts, so"
                " it was not stored (what was stored is kept). Pass a larger max_part_size"
                f" (at least {-(-len(text) // _MAX_PARTS):,}) if the keyring takes secrets"
                " that long, or use FileTokenStore"
            )
        with self.lock():
            old_slot = self._current_slot()
            new_slot: str | None = None
            if len(text) <= size:
                self._set(self._username, text)
            else:
                new_slot = _SLOTS[1] if old_slot == _SLOTS[0] else _SLOTS[0]
                parts = [text[i : i + size] for i in range(0, len(text), size)]
                for number, part in enumerate(parts, 1):
                    self._set(self._part_name(new_slot, number), part)
                self._delete_parts(new_slot, start=len(parts) + 1)  # an older, longer value
                header = {
                    "format": _PARTS_FORMAT,
                    "slot": new_slot,
                    "parts": len(parts),
                    "sha256": hashlib.sha256(text.encode()).hexdigest(),
                }
                self._set(self._username, json.dumps(header, separators=(",", ":")))
            if old_slot is not None and old_slot != new_slot:
                self._delete_parts(old_slot, start=1)

    def clear(self) -> None:
        with self.lock():
            self._delete(self._username)
            for slot in _SLOTS:
                self._delete_parts(slot, start=1)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's file lock; re-entrant within a thread for this store.

        Raises:
            TokenStoreError: the lock was not free within ``lock_timeout`` seconds, or
                the lock file cannot be created.
        """
        with self._lock.hold():
            yield

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> tuple[bool, Token | None]:
        """``(consistent, token)``: consistent is False when the parts did not match."""
        raw = self._get(self._username)
        if raw is None:
            return True, None
        data = self._decode(raw)
        if "format" in data:
            header = self._header(data)
            chunks: list[str] = []
            for number in range(1, header.parts + 1):
                chunk = self._get(self._part_name(header.slot, number))
                if chunk is None:
                    return False, None
                chunks.append(chunk)
            text = "".join(chunks)
            if hashlib.sha256(text.encode()).hexdigest() != header.sha256:
                return False, None
            data = self._decode(text)
        try:
            return True, Token.from_dict(data)
        except ValueError as exc:
            raise TokenStoreError(
                f"the keyring entry {self._entry()} does not hold a usable token ({exc}):"
                " clear it (store.clear()) and sign in again"
            ) from exc

    def _decode(self, text: str) -> dict[str, Any]:
        try:
            data = parse_stored_json(text)
            if not isinstance(data, dict):
                raise StoredJSONError("it is not a JSON object")
        except StoredJSONError as exc:
            raise TokenStoreError(
                f"the keyring entry {self._entry()} does not hold a token saved by"
                f" requests-refresh ({exc}): clear it (store.clear()) if nothing else uses"
                " it, or choose another service or username"
            ) from None
        return data

    def _header(self, data: dict[str, Any]) -> _Header:
        if data.get("format") != _PARTS_FORMAT:
            raise TokenStoreError(
                f"the keyring entry {self._entry()} was written in a format this version"
                " of requests-refresh does not know: upgrade requests-refresh, or clear the"
                " entry and sign in again"
            )
        slot, parts, digest = data.get("slot"), data.get("parts"), data.get("sha256")
        if (
            slot not in _SLOTS
            or isinstance(parts, bool)
            or not isinstance(parts, int)
            or not 1 <= parts <= _MAX_PARTS
            or not isinstance(digest, str)
        ):
            raise TokenStoreError(
                f"the keyring entry {self._entry()} has a damaged header: clear it"
                " (store.clear()) and sign in again"
            )
        return _Header(slot, parts, digest)

    def _current_slot(self) -> str | None:
        """The slot the stored header uses, or None (nothing, one entry, or damaged)."""
        raw = self._get(self._username)
        if raw is None:
            return None
        try:
            data = parse_stored_json(raw)
        except StoredJSONError:
            return None
        if isinstance(data, dict) and data.get("format") == _PARTS_FORMAT:
            slot = data.get("slot")
            if slot in _SLOTS:
                return str(slot)
        return None

    # -- the keyring, one entry at a time ------------------------------------------------

    def _part_name(self, slot: str, number: int) -> str:
        return f"{self._username}#{slot}{number}"

    def _entry(self) -> str:
        return f"({self._service!r}, {self._username!r})"

    def _keyring(self) -> KeyringBackend:
        backend = self._backend if self._backend is not None else self._get_keyring()
        if not self._allow_insecure_backend:
            refuse_insecure(backend, self._entry())
        return backend

    def _get(self, name: str) -> str | None:
        try:
            return self._keyring().get_password(self._service, name)
        except TokenStoreError:
            raise  # the backend was refused
        except Exception as exc:  # every backend failure becomes a TokenStoreError
            raise self._store_error(exc, "read") from exc

    def _set(self, name: str, value: str) -> None:
        try:
            self._keyring().set_password(self._service, name, value)
        except TokenStoreError:
            raise  # the backend was refused
        except Exception as exc:  # every backend failure becomes a TokenStoreError
            raise self._store_error(exc, "write") from exc

    def _delete(self, name: str) -> None:
        """Delete one entry; a missing entry is not an error."""
        from keyring.errors import PasswordDeleteError  # noqa: PLC0415 - optional dependency

        try:
            self._keyring().delete_password(self._service, name)
        except PasswordDeleteError as exc:
            # keyring reports a missing entry this way too: only an entry still there
            # is a failure.
            if self._get(name) is not None:
                raise self._store_error(exc, "delete") from exc
        except TokenStoreError:
            raise  # the backend was refused
        except Exception as exc:  # every backend failure becomes a TokenStoreError
            raise self._store_error(exc, "delete") from exc

    def _delete_parts(self, slot: str, start: int) -> None:
        """Delete the parts of ``slot`` numbered ``start`` and up, the highest first.

        The highest first, so that one interrupted midway leaves no gap for the next
        call to stop at.
        """
        end = start
        while self._get(self._part_name(slot, end)) is not None:
            end += 1
        for number in range(end - 1, start - 1, -1):
            self._delete(self._part_name(slot, number))

    def _store_error(self, exc: Exception, action: str) -> TokenStoreError:
        """A TokenStoreError saying what to do about ``exc``, raised by the keyring."""
        return keyring_error(
            exc,
            action,
            self._entry(),
            backend=self._backend_name,
            max_part_size=self._max_part_size,
        )

    def _backend_name(self) -> str:
        backend = self._backend
        if backend is None:
            try:
                backend = self._get_keyring()
            except Exception:  # naming the backend must not hide the error being reported
                return "unknown"
        return type_name(backend)

    def _make_lock_directory(self) -> None:
        """Create the default lock directory, 0700. A lock_path given is used as it is."""
        if self._explicit_lock_path:
            return
        directory = self._lock_path.parent
        try:
            make_private_directory(directory)
        except OSError as exc:
            raise TokenStoreError(
                f"could not create the lock directory {directory}: {exc.strerror or exc};"
                " pass lock_path= to put the lock file elsewhere",
                path=str(directory),
            ) from exc
