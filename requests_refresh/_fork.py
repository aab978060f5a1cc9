"""Fork safety: objects that reset their per-process state in a forked child.

A child forked while other threads ran has only the forking thread. A lock one of the
others held stays held for ever, work they had in flight never ends, and what the
process shares with the world (pooled sockets, a lease on a Redis lock) would be used by
two processes at once. An object with such state registers with :func:`reset_in_child`;
in each child forked from then on, its ``_after_fork_in_child()`` runs (one
:func:`os.register_at_fork` hook for all, in the order they registered) before ``fork``
returns. The registry holds its objects weakly: it keeps none of them alive.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None:
        """Reset what belongs to the parent process; runs in the child, one thread."""


_registered: weakref.WeakValueDictionary[int, ForkAware] = weakref.WeakValueDictionary()


def reset_in_child(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _registered[id(obj)] = obj  # by id: objects that define __eq__ may not be hashable


def _after_fork_in_child() -> None:
    failure: BaseException | None = None
    for obj in list(_registered.values()):
        try:
            obj._after_fork_in_child()
        except BaseException as exc:  # the others are reset all the same
            failure = failure or exc
    if failure is not None:
        raise failure  # reported by the interpreter; fork() still returns in the child


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
