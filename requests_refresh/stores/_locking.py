"""A cross-process lock with a bounded wait, for stores shared between processes."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

from .._fork import reset_in_child
from ..exceptions import TokenStoreError
from ._files import SHARED_DIRECTORY_HINT, foreign_owner, kind

#: How long a store waits for another process's refresh by default, in seconds.
DEFAULT_LOCK_TIMEOUT = 30.0


@contextlib.contextmanager
def hold_file_lock(path: str | os.PathLike[str], timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600 if missing) for the block.

    The lock is an ``flock``/``LockFileEx`` lock through ``filelock``: the kernel frees it
    when its holder dies, even by ``kill -9``, so a crashed process never wedges the others.

    Taking the lock opens the file for writing (and older ``filelock`` releases truncate
    it), so a lock file that could be another file is refused: a symbolic link (``filelock``
    also opens with ``O_NOFOLLOW``, which closes the race with this check), a file with
    several names (hard links), anything but a regular file, and on POSIX a file of
    another user (who could hold it for ever).

    Raises:
        TokenStoreError: the lock was not free within ``timeout`` seconds, the lock file
            cannot be created, or it is refused as above. The error names the lock file.
    """
    lock_path = os.fspath(path)
    _check_lock_file(lock_path)
    lock = filelock.FileLock(lock_path, timeout=timeout, mode=0o600)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise TokenStoreError(
            f"could not lock {lock_path} within {timeout:g} s: another process is holding it"
            " (a refresh in progress, or a stuck program); try again, or raise lock_timeout",
            path=lock_path,
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link planted since _check_lock_file looked
            raise _refused(lock_path, "is a symbolic link") from exc
        raise TokenStoreError(
            f"could not create the lock file {lock_path}: {exc.strerror or exc}",
            path=lock_path,
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _check_lock_file(lock_path: str) -> None:
    """Refuse a lock file that could be another file, or that another user owns."""
    try:
        info = os.lstat(lock_path)
    except OSError:
        return  # missing (created by the lock), or an error the lock will report
    if not stat.S_ISREG(info.st_mode):
        raise _refused(lock_path, f"is {kind(info.st_mode)}, not a regular file")
    if info.st_nlink > 1:
        raise _refused(
            lock_path, f"has {info.st_nlink} names (hard links): it may be another file"
        )
    owner = foreign_owner(info)
    if owner is not None:
        raise _refused(
            lock_path,
            f"belongs to another user, {owner}, who could hold it to block every refresh",
        )


def _refused(lock_path: str, problem: str) -> TokenStoreError:
    return TokenStoreError(
        f"refusing the lock file {lock_path}: it {problem}. Taking the lock opens it for"
        f" writing, which could damage a file it leads to; {SHARED_DIRECTORY_HINT}",
        path=lock_path,
    )


class SharedLock:
    """A lock shared between processes, re-entrant within a thread.

    Threads of this process queue on a thread lock first, so that at most one of them
    waits on (and holds) the shared lock at a time; the thread holding it may enter again
    (a store's ``save()`` inside the adapter's ``with store.lock()``). Both waits are
    bounded by ``timeout``. In a child forked while another thread held it, the lock
    starts free (that thread does not exist there); the shared lock is outside the
    process (the kernel's file lock, a Redis key), so the child still waits for the
    parent's refresh to end.

    Args:
        name: what is locked, for the message of a thread that waited too long.
        timeout: the longest wait, in seconds, for a thread or for another process.
        hold_shared: holds the shared lock for a ``with`` block; bounds its own wait by
            ``timeout`` and raises :class:`TokenStoreError` when it cannot take it.
        path: the ``path`` of that error, for a lock file.
    """

    def __init__(
        self,
        name: str,
        timeout: float,
        hold_shared: Callable[[], contextlib.AbstractContextManager[object]],
        path: str | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._hold_shared = hold_shared
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0  # how many hold() blocks the owning thread is in
        self._owner: int | None = None  # the thread holding the lock, for fork
        reset_in_child(self)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the block.

        Raises:
            TokenStoreError: the lock was not free within ``timeout`` seconds, or
                ``hold_shared`` raised it.
        """
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise TokenStoreError(
                f"could not lock {self.name} within {self.timeout:g} s: another thread of"
                " this process is holding it (a refresh in progress, or a stuck thread);"
                " try again, or raise lock_timeout",
                path=self._path,
            )
        try:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._owner = threading.get_ident()
            try:
                with self._hold_shared():
                    self._depth = 1
                    try:
                        yield
                    finally:
                        self._depth = 0
            finally:
                self._owner = None
        finally:
            self._thread_lock.release()

    def _after_fork_in_child(self) -> None:
        """Free the thread lock if a thread the child does not have was holding it."""
        if self._owner != threading.get_ident():  # the forking thread keeps its ident
            self._thread_lock = threading.RLock()
            self._depth = 0
            self._owner = None


class StoreLock(SharedLock):
    """The :class:`SharedLock` of a store whose shared lock is a lock file.

    Args:
        path: the lock file.
        timeout: the longest wait, in seconds, for a thread or for another process.
        prepare: called before the file lock is taken, e.g. to create its directory; when
            it returns a path, that is the lock file this time (``path`` names it in the
            error of a thread that waited too long).
    """

    def __init__(
        self, path: Path, timeout: float, prepare: Callable[[], Path | None] | None = None
    ) -> None:
        super().__init__(str(path), timeout, self._hold_file, path=str(path))
        self.path = path
        self._prepare = prepare

    @contextlib.contextmanager
    def _hold_file(self) -> Iterator[None]:
        path = self.path
        if self._prepare is not None:
            path = self._prepare() or path
        with hold_file_lock(path, self.timeout):
            yield
