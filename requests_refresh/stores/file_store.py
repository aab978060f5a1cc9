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

from .._values import check_seconds
from ..exceptions import TokenStoreError
from ..token import Token
from ._files import SHARED_DIRECTORY_HINT, foreign_owner, kind, make_private_directory
from ._json import MAX_TOKEN_SIZE, StoredJSONError, parse_stored_json
from ._locking import DEFAULT_LOCK_TIMEOUT, StoreLock
from .base import TokenStore

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_LOCK_TIMEOUT",
    "FORMAT_VERSION",
    "MAX_FILE_SIZE",
    "FileTokenStore",
]

#: The key a login is stored under when none is given.
DEFAULT_KEY = "default"
#: The ``"version"`` written to the file; a file with another version is refused.
FORMAT_VERSION = 1
#: The largest token file read, in bytes; a save that would write more is refused.
MAX_FILE_SIZE = MAX_TOKEN_SIZE

_POSIX = os.name == "posix"
# Opening must not wait (a FIFO), take a terminal, or translate newlines (Windows).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)


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
    :class:`~requests_refresh.TokenStoreError` naming the path and the problem (never
    the content); it is never overwritten or deleted, so that it can still be recovered.
    Only a regular file of at most :data:`MAX_FILE_SIZE` bytes is read: a FIFO, a
    device or a directory at the path is refused without waiting or reading, and a save
    that would write a larger file is refused.

    A symbolic link at ``path`` is followed, as dotfile users expect: :meth:`save`
    replaces the link's target atomically (its temporary file is made in the target's
    directory) and leaves the link as it is. The lock file lives next to the target,
    ``<target>.lock``, so that processes naming the file through the link and directly
    share one lock (:attr:`lock_path`); the link is resolved at each use.

    Files of other users are refused (on POSIX, as ssh does): a token file, a symbolic
    link at ``path``, or a lock file owned by another user than this process's (root
    excepted) is a :class:`~requests_refresh.TokenStoreError`, since whoever can plant
    it could make you use their token or block your refreshes. So is a lock file that
    is a link, or has several names (hard links): taking the lock opens it for writing.

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
        lock_timeout = check_seconds("lock_timeout", lock_timeout)
        self.path = Path(os.fspath(path)).absolute()
        self.key = DEFAULT_KEY if key is None else key
        self.lock_timeout = float(lock_timeout)
        self._lock = StoreLock(self.lock_path, self.lock_timeout, prepare=self._prepare_lock)
        self._warned = False

    @property
    def lock_path(self) -> Path:
        """The lock file: ``<path>.lock``, or ``<target>.lock`` when ``path`` is a link."""
        target = Path(os.path.realpath(self.path))
        return target.with_name(target.name + ".lock")

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
        data = self._read(self._target())
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
            target = self._target()
            data = self._read(target) or _empty()
            data["tokens"][self.key] = token.to_dict()
            self._write(target, data)

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
            target = self._target()
            data = self._read(target)
            if data is None or self.key not in data["tokens"]:
                return
            del data["tokens"][self.key]
            self._write(target, data)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the cross-process lock on ``<path>.lock`` for the block.

        Re-entrant within a thread. Creates missing directories (0700) for the lock file.

        Raises:
            TokenStoreError: the lock was not free within ``lock_timeout`` seconds (the
                message names the lock file), the lock file cannot be created, or a file
                there (or a link at ``path``) is refused.
        """
        with self._lock.hold():
            yield

    # -- the file ---------------------------------------------------------------------------

    def _target(self) -> Path:
        """The file ``path`` names: itself, or where its symbolic links lead.

        Raises:
            TokenStoreError: ``path`` is a symbolic link of another user.
        """
        path = self.path
        try:
            info = os.lstat(path)
        except OSError:
            return path  # missing (or an error that opening it will report)
        if not stat.S_ISLNK(info.st_mode):
            return path
        owner = foreign_owner(info)
        if owner is not None:
            raise TokenStoreError(
                f"refusing the token file {path}: it is a symbolic link that belongs to"
                f" another user, {owner}, so where it leads is theirs to choose. Nothing was"
                f" read or written; {SHARED_DIRECTORY_HINT}",
                path=str(path),
            )
        return Path(os.path.realpath(path))

    def _read(self, target: Path) -> dict[str, Any] | None:
        """The content of ``target`` (the file ``path`` names), checked; None when there
        is no file."""
        path = self.path
        try:
            # Look before opening (opening a device can have effects), then check what
            # was opened: the path may have changed in between.
            self._check_file(os.stat(target))
            fd = os.open(target, _OPEN_FLAGS)
            with open(fd, "rb") as file:
                info = os.fstat(fd)
                self._check_file(info)
                if _POSIX:
                    self._check_permissions(info.st_mode)
                raw = file.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            return None
        except TokenStoreError:  # a refusal (an OSError too, through RequestException)
            raise
        except OSError as exc:
            raise TokenStoreError(
                f"cannot read the token file {path}: {exc.strerror or exc}."
                " Check that it is a file this user may read",
                path=str(path),
            ) from exc
        if len(raw) > MAX_FILE_SIZE:  # it grew since fstat
            raise self._too_large(len(raw))
        problem: str | None
        try:
            data = parse_stored_json(raw)
        except StoredJSONError as exc:
            problem = str(exc)
        else:
            problem = _format_problem(data)
            if problem is None and isinstance(data, dict):
                return data
        raise TokenStoreError(
            f"the token file {path} is corrupt: {problem}. It was left as it is, so that you"
            " can recover it; move it away (or delete it) and sign in again",
            path=str(path),
        )

    def _check_file(self, info: os.stat_result) -> None:
        """Refuse what is not a regular file of bounded size, or belongs to another user."""
        path = self.path
        if not stat.S_ISREG(info.st_mode):
            raise TokenStoreError(
                f"cannot read the token file {path}: it is {kind(info.st_mode)}, not a regular"
                " file. It was left as it is; give the store the path of a token file",
                path=str(path),
            )
        owner = foreign_owner(info)
        if owner is not None:
            raise TokenStoreError(
                f"refusing the token file {path}: it belongs to another user, {owner}, who"
                f" could have planted a token for you to use. It was left as it is;"
                f" {SHARED_DIRECTORY_HINT}",
                path=str(path),
            )
        if info.st_size > MAX_FILE_SIZE:
            raise self._too_large(info.st_size)

    def _too_large(self, size: int) -> TokenStoreError:
        return TokenStoreError(
            f"cannot read the token file {self.path}: it is larger than the"
            f" {MAX_FILE_SIZE:,} bytes a token file may hold ({size:,} bytes or more). It was"
            " left as it is; check that the path names a token file",
            path=str(self.path),
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

    def _write(self, target: Path, data: dict[str, Any]) -> None:
        """Replace ``target`` (the file ``path`` names) with ``data`` atomically (lock
        held): a temporary file in its directory, renamed over it."""
        path = self.path
        try:
            payload = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
        except (TypeError, ValueError, RecursionError) as exc:
            raise TokenStoreError(
                f"the token cannot be written as JSON to {path} ({type(exc).__name__}): its"
                " extra fields hold something JSON cannot represent, or are nested too"
                " deeply. Nothing was written",
                path=str(path),
            ) from exc
        if len(payload) > MAX_FILE_SIZE:
            raise TokenStoreError(
                f"cannot write the token file {path}: it would be {len(payload):,} bytes,"
                f" over the {MAX_FILE_SIZE:,} bytes a load accepts. Nothing was written;"
                " check what makes the token (or its extra fields) that large",
                path=str(path),
            )
        try:
            fd, temp = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
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
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_directory(target.parent)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write the token file {path}: {exc.strerror or exc}",
                path=str(path),
            ) from exc

    def _prepare_lock(self) -> Path:
        """Check the path, create the target's directory; the lock file to use now."""
        target = self._target()
        self._make_directory(target.parent)
        return target.with_name(target.name + ".lock")

    def _make_directory(self, directory: Path) -> None:
        try:
            make_private_directory(directory)
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
