"""A cross-process lock with a bounded wait, for stores shared between processes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import filelock

from .exceptions import TokenStoreError

#: How long a store waits for another process's refresh by default, in seconds.
DEFAULT_LOCK_TIMEOUT = 30.0


@contextlib.contextmanager
def hold_file_lock(path: str | os.PathLike[str], timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600 if missing) for the block.

    The lock is an ``flock``/``LockFileEx`` lock through ``filelock``: the kernel frees it
    when its holder dies, even by ``kill -9``, so a crashed process never wedges the others.

    Raises:
        TokenStoreError: the lock was not free within ``timeout`` seconds, or the lock
            file cannot be created. The error names the lock file.
    """
    lock_path = os.fspath(path)
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
        raise TokenStoreError(
            f"could not create the lock file {lock_path}: {exc.strerror or exc}",
            path=lock_path,
        ) from exc
    try:
        yield
    finally:
        lock.release()
