"""A token store in a JSON file, shared by every process that opens it."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..exceptions import TokenStoreError
from ..token import Token
from ._locking import DEFAULT_LOCK_TIMEOUT, StoreLock
from .base import TokenStore

__all__ = ["DEFAULT_KEY", "DEFAULT_LOCK_TIMEOUT", "FORMAT_VERSION", "FileTokenStore"]

#: The key a login is stored under when none is given.
DEFAULT_KEY = "default"
#: The ``"version"`` written to the file; a file with another version is refused.
FORMAT_VERSION = 1

_POSIX = os.name == "posix"


class FileTokenStore(TokenStore):
    """Keeps tokens in a JSON file that many processes can share.

    The file holds one JSON object, ``{"version": 1, "tokens": {key: token, ...}}``:
    several logins live side by side under different keys, and saving or clearing one
    leaves the others as they were. It holds secrets, so it is created with mode 0600
    (and its directory, when this store creates it, 0700); reading a file that others
    can access emits a :class:`UserWarning` that says how to fix it.

    Writes are atomic: a temporary file in the same directory is written, flushed and
    fsynced, then renamed over the old one with :func:`os.replace`, and the directory is
    fsynced. A crash at any moment leaves either the old content or the new, never a
    mix. A crash can leave a temporary ``.<name>.*.tmp`` file behind; it is safe to
    delete.

    Processes coordinate with an exclusive lock on the side file ``<path>.lock`` (an
    ``flock`` the kernel releases when its holder dies, even by ``kill -9``).
    :meth:`lock` holds it across the adapter's reload-refresh-save, so that a process
    about to refresh first sees whether another process already has, and adopts that
    token instead of spending the refresh token a second time. :meth:`save` and
    :meth:`clear` take the lock themselves (a read-modify-write of the file); inside
    :meth:`lock` they reuse it. :meth:`load` takes no lock: thanks to atomic writes a
    read always sees a whole file.

    A missing file (or directory) means "no token": :meth:`load` returns None and the
    adapter raises :class:`~requests_refresh.NoTokenError`. :meth:`save` creates the
    missing directories (mode 0700). A file that cannot be read or parsed raises
    :class:`~requests_refresh.TokenStoreError` naming the path and the problem; it is
    never overwritten or deleted, so that it can still be recovered.

    Args:
        path: the JSON file.
        key: which login in the file this store reads and writes; ``"default"`` if None.
        lock_timeout: the longest to wait for another process holding the lock, in
            seconds, before :class:`~requests_refresh.TokenStoreError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key must be a non-empty string or None")
        if not lock_timeout >= 0:
            raise ValueError(
                f"lock_timeout must be a number of seconds >= 0, not {lock_timeout!r}"
            )
        self.path = Path(os.fspath(path)).absolute()
        self.key = DEFAULT_KEY if key is None else key
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = float(lock_timeout)
        self._lock = StoreLock(self.lock_path, self.lock_timeout, prepare=self._make_directory)
        self._warned = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, key={self.key!r})"

    # -- the TokenStore interface ---------------------------------------------------------

    def load(self) -> Token | None:
        """Return the token stored under this store's key, or None.

        None when the file, its directory or the key does not exist.

        Raises:
            TokenStoreError: the file cannot be read, is not valid JSON, or does not
                hold what this store writes. The file is left as it is.
        """
        data = self._read()
        if data is None:
            return None
        entry = data["tokens"].get(self.key)
        if entry is None:
            return None
        try:
            return Token.from_dict(entry)
        except ValueError as exc:
            raise TokenStoreError(
                f"the token file {self.path} holds an unusable token under key"
                f" {self.key!r}: {exc}. The file was left as it is: sign in again (saving"
                " a new token replaces that entry), or fix the file",
                path=str(self.path),
            ) from None

    def save(self, token: Token) -> None:
        """Store ``token`` under this store's key, keeping the file's other keys.

        Creates the file (0600) and any missing directories (0700). Durable when it
        returns.

        Raises:
            TokenStoreError: the file cannot be read, parsed or written, or the lock was
                not free within ``lock_timeout``. A corrupt file is not overwritten.
        """
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        with self.lock():
            data = self._read() or _empty()
            data["tokens"][self.key] = token.to_dict()
            self._write(data)

    def clear(self) -> None:
        """Remove the token under this store's key, keeping the file's other keys.

        Clearing a key (or a file) that does not exist is not an error, and creates
        nothing.

        Raises:
            TokenStoreError: as for :meth:`save`.
        """
        if not self.path.parent.is_dir():
            return
        with self.lock():
            data = self._read()
            if data is None or self.key not in data["tokens"]:
                return
            del data["tokens"][self.key]
            self._write(data)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cross-process lock on ``<path>.lock`` for the block.

        Re-entrant within a thread. Creates missing directories (0700) for the lock file.

        Raises:
            TokenStoreError: the lock was not free within ``lock_timeout`` seconds (the
                message names the lock file), or the lock file cannot be created.
        """
        with self._lock.hold():
            yield

    # -- the file ---------------------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        """The file's content, checked; None when there is no file."""
        path = self.path
        try:
            with open(path, "rb") as file:
                if _POSIX:
                    self._check_permissions(os.fstat(file.fileno()).st_mode)
                raw = file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(
                f"cannot read the token file {path}: {exc.strerror or exc}."
                " Check that it is a file this user may read",
                path=str(path),
            ) from exc
        problem: str | None
        try:
            data: object = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "it is not UTF-8 text"
        except json.JSONDecodeError as exc:
            # The message gives the position only, never the (secret) content.
            problem = f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        else:
            problem = _format_problem(data)
            if problem is None and isinstance(data, dict):
                return data
        raise TokenStoreError(
            f"the token file {path} is corrupt: {problem}. It was left as it is, so that you"
            " can recover it; move it away (or delete it) and sign in again",
            path=str(path),
        )

    def _check_permissions(self, mode: int) -> None:
        if mode & 0o077 and not self._warned:
            self._warned = True
            warnings.warn(
                f"the token file {self.path} can be accessed by other users"
                f" (mode {stat.S_IMODE(mode):04o}): run `chmod 600 {self.path}`",
                UserWarning,
                stacklevel=4,
            )

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the file with ``data`` atomically (lock held)."""
        path = self.path
        payload = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write the token file {path}: {exc.strerror or exc}."
                " Check that its directory exists and this user may write to it",
                path=str(path),
            ) from exc
        try:
            try:
                with os.fdopen(fd, "wb") as file:  # mkstemp created it 0600
                    file.write(payload)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_directory(path.parent)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write the token file {path}: {exc.strerror or exc}",
                path=str(path),
            ) from exc

    def _make_directory(self) -> None:
        directory = self.path.parent
        if directory.is_dir():
            return
        missing = [directory, *(p for p in directory.parents if not p.is_dir())]
        try:
            for each in reversed(missing):  # outermost first, each 0700 (mkdir's parents
                each.mkdir(mode=0o700, exist_ok=True)  # option would use the umask's mode)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot create the directory {directory} for the token file:"
                f" {exc.strerror or exc}",
                path=str(self.path),
            ) from exc


def _empty() -> dict[str, Any]:
    return {"version": FORMAT_VERSION, "tokens": {}}


def _format_problem(data: object) -> str | None:
    """What is wrong with the file's parsed content, or None when it is well-formed."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not an object"
    version = data.get("version")
    if version != FORMAT_VERSION:
        # A damaged file may hold anything there, a secret too: show numbers only.
        shown = (
            repr(version)
            if isinstance(version, int) and not isinstance(version, bool)
            else f"a JSON {type(version).__name__}"
            if version is not None
            else "missing"
        )
        return (
            f"its format version is {shown}, not {FORMAT_VERSION}"
            " (written by another version of requests-refresh?)"
        )
    tokens = data.get("tokens")
    if not isinstance(tokens, dict):
        return '"tokens" is missing or not an object'
    return None


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable. A no-op where directories can't be opened."""
    if not _POSIX:
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
