"""Single flight: work done by one thread at a time while the others wait for its outcome.

The coordinator runs two kinds of work this way: reads of the token store, and
refreshes. The thread that does the work lets go of the coordinator's lock meanwhile
(the work may be slow: a file lock, a token endpoint); the others wait on the
:class:`threading.Condition`, each for at most its own deadline, and share the outcome:
an error the work ended with reaches each of them as a fresh copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .exceptions import RefreshError, RefreshTimeoutError, raise_again

__all__ = ["Flight"]

T = TypeVar("T")


class Flight:
    """Work done by one thread at a time without the lock; the others wait and share its
    outcome. Used for store reads and for refreshes; every field is read and written
    with the coordinator's lock held.
    """

    __slots__ = ("error", "failed", "finished", "running", "what")

    def __init__(self, what: str) -> None:
        self.what = what  # for messages: "the token store read"
        self.running = False
        self.finished = 0  # runs finished
        self.failed = 0  # the number of the last one that failed
        self.error: BaseException | None = None  # its error, until one succeeds

    def run(self, cond: threading.Condition, work: Callable[[], T]) -> T:
        """Do ``work`` as the one thread of this flight, ``cond``'s lock released meanwhile.

        The lock is held on entry and on exit; waiters are woken at the end. An
        exception ``work`` raises is recorded for them (a ``KeyboardInterrupt`` as a
        :class:`RefreshError`) and raised; otherwise the caller tells the outcome
        (:meth:`record`) before it lets go of the lock.
        """
        self.running = True
        cond.release()
        failure: BaseException | None = None
        try:
            return work()
        except BaseException as exc:
            interrupted = RefreshError(f"{self.what} was interrupted")
            failure = exc if isinstance(exc, Exception) else interrupted
            raise
        finally:
            cond.acquire()
            self.running = False
            self.finished += 1
            if failure is not None:
                self.record(failure)
            cond.notify_all()

    def record(self, error: BaseException | None) -> None:
        """The outcome of the run that just finished: its error, or None for success."""
        if error is not None:
            self.failed, self.error = self.finished, error
        else:
            self.error = None  # let go of what its traceback holds

    def wait(self, cond: threading.Condition, deadline: float, gave_up: Callable[[], str]) -> None:
        """Block until the run in flight ends; raise a copy of its error if it failed.

        Raises :class:`RefreshTimeoutError` with the message ``gave_up()`` once the
        monotonic ``deadline`` passes.
        """
        number = self.finished
        while self.running and self.finished == number:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RefreshTimeoutError(gave_up())
            cond.wait(remaining)
        if self.failed > number and self.error is not None:
            raise_again(self.error)

    def abandon(self) -> None:
        """In a forked child: the run in flight belongs to a thread that is not there."""
        if self.running:
            self.running = False
            self.finished += 1
