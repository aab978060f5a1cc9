"""Single-flight token refresh across the threads of a process.

The coordinator owns the current token and its *generation*, a number that grows by one
each time the token is replaced. Requests ask it for a token (:meth:`acquire`) and tell
it when a token was refused (:meth:`refused`), naming the generation they sent. The rules:

* One refresh at a time. The thread that finds the token due becomes the refresher; the
  others keep sending while the current token is still valid, and block on a
  :class:`threading.Condition` (for at most ``refresh_timeout``) once it has expired.
* A refusal earned by an older generation never triggers a refresh: the request is
  replayed with the current token.
* Every thread that waited on a refresh gets its outcome: the new token, or the error
  the refresher got. Nobody retries on their own. A remembered error is raised as a fresh
  copy each time (same class and attributes, the original as ``__cause__``), so that no
  traceback grows with each request.
* After a failure, no new attempt before a cool-off; after ``invalid_grant``, none at all
  until the store holds a different token (a new login). The rules of when to try again
  are :class:`~requests_refresh._cooloff.CoolOff`'s; what one refresh does with the store
  (its lock, reload, adoption, rotated refresh tokens, conflicts) is
  :func:`~requests_refresh._renewal.renew`'s. Which of these a request faces is weighed
  in one place, :meth:`Coordinator._next_step`.
* The store is read (at start, and after a dead login) by one thread at a time, without
  the lock: the others wait for that read, at most ``refresh_timeout``, and share its
  outcome, so that a slow store never holds them beyond it. Reads and refreshes share
  one single-flight helper, :class:`_Flight`.
* Durations (cool-offs, wait deadlines) run on :func:`time.monotonic`: a wall clock
  stepped back never prolongs them. Only token expiry is wall time (``clock``).
* ``on_refresh`` runs after the new token is in use, with no lock held.
* A child process forked while a thread held the lock, or while a refresh or read was in
  flight, starts with the lock free and nothing in flight (``_fork.reset_in_child``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, NoReturn, TypeVar

from ._cooloff import RETRY_AFTER_CAP, CoolOff, Moment
from ._fork import reset_in_child
from ._renewal import AcquiringRefresher, Refresher, Renewal, renew
from .exceptions import (
    LoginRequiredError,
    NoTokenError,
    RefreshError,
    RefreshTimeoutError,
)
from .stores import TokenStore
from .token import Token

__all__ = ["RETRY_AFTER_CAP", "AcquiringRefresher", "RefreshStats", "Refresher"]

logger = logging.getLogger("requests_refresh")

#: Called as ``on_refresh(old, new)`` once per refresh this process made, after the new
#: token is in use, with no lock held.
RefreshHook = Callable[[Token, Token], None]

_NO_EXPIRY = math.inf

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class RefreshStats:
    """Counters of one adapter, read with :attr:`RefreshAdapter.stats`.

    Attributes:
        generation: the current token generation (0 for the first token loaded).
        refreshes: refreshes this process made (token endpoint calls that succeeded).
        adopted: tokens taken from the store because another process (or a new
            login) had stored a newer one: refreshes saved.
        failures: refresh attempts that failed.
        replays: requests sent again after their token was refused.
        waits: times a request blocked until another thread's refresh finished.
    """

    generation: int = 0
    refreshes: int = 0
    adopted: int = 0
    failures: int = 0
    replays: int = 0
    waits: int = 0


@dataclasses.dataclass(frozen=True)
class _Current:
    """The token in use, with the moments that matter precomputed for the fast path."""

    token: Token
    generation: int
    refresh_due_at: float  # when to start refreshing ahead; inf for never
    expires_at: float  # inf when unknown


class _Flight:
    """Work done by one thread at a time without the lock; the others wait and share its
    outcome. Used for store reads and for refreshes; every field is read and written
    with the coordinator's lock held.
    """

    __slots__ = ("error", "failed", "finished", "running")

    def __init__(self) -> None:
        self.running = False
        self.finished = 0  # runs finished
        self.failed = 0  # the number of the last one that failed
        self.error: BaseException | None = None  # its error, until one succeeds

    def run(self, cond: threading.Condition, work: Callable[[], _T]) -> _T:
        """Do ``work`` as the one thread of this flight, ``cond``'s lock released meanwhile.

        The lock is held on entry and on exit; waiters are woken at the end. The caller
        then tells the outcome (:meth:`record`) before it lets go of the lock.
        """
        self.running = True
        cond.release()
        try:
            return work()
        finally:
            cond.acquire()
            self.running = False
            self.finished += 1
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
            _raise_again(self.error)

    def abandon(self) -> None:
        """In a forked child: the run in flight belongs to a thread that is not there."""
        if self.running:
            self.running = False
            self.finished += 1


class _Do(enum.Enum):
    """What a request does next (see :meth:`Coordinator._next_step`)."""

    USE = "send the current token"
    WAIT = "wait for the refresh in flight"
    REFRESH = "refresh"
    GIVE_BACK = "return the refusal to the caller as it is"


class _Step(NamedTuple):
    do: _Do
    reason: str = ""  # why, for a refresh


_USE = _Step(_Do.USE)
_WAIT = _Step(_Do.WAIT)


class Coordinator:
    """Hands out tokens and runs refreshes, one at a time, for one store."""

    def __init__(
        self,
        store: TokenStore,
        refresher: Refresher,
        *,
        leeway: float,
        refresh_timeout: float,
        cooloff: float,
        max_cooloff: float,
        on_refresh: RefreshHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._can_start = isinstance(refresher, AcquiringRefresher)
        self._leeway = leeway
        self._refresh_timeout = refresh_timeout
        self._on_refresh = on_refresh
        self._clock = clock
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography

        self._cond = threading.Condition(threading.Lock())
        reset_in_child(self)
        # Read without the lock on the fast path: it is replaced whole, never mutated.
        self._current: _Current | None = None
        self._generation = -1
        self._basis: Token | None = None  # the token last read from or written to the store
        self._reads = _Flight()  # store reads by _load_if_needed
        self._refreshes = _Flight()  # its error: the last failed attempt's, until a token
        self._cooloff = CoolOff(base=cooloff, cap=max_cooloff)  # replaced whole
        self._stats = RefreshStats()

    # -- what requests call ---------------------------------------------------------

    def acquire(self) -> tuple[Token, int]:
        """Return the token to send and its generation, refreshing it when due.

        Raises:
            NoTokenError: nothing stored.
            RefreshError: the token has expired and could not be refreshed (the same
                error for every thread that waited on that refresh).
            TokenStoreError: the store could not be read.
        """
        current = self._current
        if current is not None and self._clock() < current.refresh_due_at:
            return current.token, current.generation
        hooks: list[tuple[Token, Token]] = []
        try:
            return self._acquire_locked(hooks)
        finally:
            self._call_hooks(hooks)

    def refused(self, generation: int) -> tuple[Token, int] | None:
        """A request sent with ``generation`` was refused (401). What to replay it with.

        Returns the token to replay with, or None when the refusal should go back to the
        caller as it is (the token was just refreshed because of a refusal and is refused
        again: a refresh would not help).

        Raises:
            LoginRequiredError: the login is gone (``invalid_grant``) or nothing is stored.
            RefreshError: the refresh failed, or a recent failure is cooling off.
        """
        hooks: list[tuple[Token, Token]] = []
        try:
            return self._refused(generation, hooks)
        finally:
            self._call_hooks(hooks)

    def settled(self) -> tuple[Token, int] | None:
        """The current token once the refresh in flight, if any, has ended; None if none.

        Starts no refresh. For a refusal that is no reason to refresh but may have been
        earned by a token that a refresh in flight is replacing: the caller compares the
        generation it sent with the one returned.

        Raises:
            RefreshError: the refresh in flight failed, or outlasted ``refresh_timeout``.
        """
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            if self._refreshes.running:
                self._wait_for_refresh(deadline)
            current = self._current
            return None if current is None else (current.token, current.generation)

    def note_replay(self) -> None:
        """Count a request sent again after a refusal."""
        with self._cond:
            self._count(replays=1)

    @property
    def stats(self) -> RefreshStats:
        with self._cond:
            return dataclasses.replace(self._stats, generation=max(self._generation, 0))

    # -- the slow paths, lock held --------------------------------------------------

    def _acquire_locked(self, hooks: list[tuple[Token, Token]]) -> tuple[Token, int]:
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed(deadline)
                step = self._next_step(current, None)
                if step.do is _Do.USE and current is not None:
                    return current.token, current.generation
                if step.do is _Do.WAIT:
                    self._wait_for_refresh(deadline)
                    continue
                error, refreshed = self._refresh(current, step.reason, hooks)
                if current is None:  # a first token: the next round hands it out
                    if error is not None:
                        _raise_again(error)
                    continue
                if error is not None:
                    # The refresh took time: the token may have expired meanwhile.
                    if self._clock() < current.expires_at:
                        logger.warning(
                            "refresh ahead of expiry failed (%s); the current token is"
                            " still valid for %.1f s and stays in use",
                            type(error).__name__,
                            current.expires_at - self._clock(),
                        )
                        return current.token, current.generation
                    _raise_again(error)
                # The request that refreshed uses the new token even if it is due
                # already (see _check_due_on_arrival): checking again could refresh
                # without end. A token adopted from the store is checked like any other.
                if refreshed and self._current is not None:
                    return self._current.token, self._current.generation

    def _refused(
        self, generation: int, hooks: list[tuple[Token, Token]]
    ) -> tuple[Token, int] | None:
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed(deadline)
                step = self._next_step(current, generation)
                if step.do is _Do.USE and current is not None:
                    return current.token, current.generation
                if current is not None:
                    generation = current.generation  # what _next_step weighed
                if step.do is _Do.GIVE_BACK:
                    return None
                if step.do is _Do.WAIT:
                    self._wait_for_refresh(deadline)
                    continue
                error, _ = self._refresh(current, step.reason, hooks)
                if error is not None:
                    _raise_again(error)
                if current is not None:
                    self._cooloff = self._cooloff.refreshed_on_refusal(
                        generation, self._generation, self._now(), self._random.random()
                    )

    def _next_step(self, current: _Current | None, refused: int | None) -> _Step:  # noqa: PLR0911 - one decision, read top to bottom
        """What a request does now: the one place that weighs the token's due time, a
        refresh in flight, a dead login and a cool-off against each other (lock held).

        ``current`` is None when nothing is stored and the refresher can start from
        nothing; ``refused`` is None for :meth:`acquire`, else the generation that a
        refusal was earned by. Raises (a copy of) the error the request must report.
        """
        now = self._now()
        cooloff = self._cooloff
        cooling = cooloff.cooling(now)
        if current is None:  # a dead login is no obstacle to a first token
            return self._obstacle(cooling, None) or _Step(_Do.REFRESH, "nothing stored")
        if refused is None:
            if now.wall < current.refresh_due_at:
                return _USE
            still_valid = now.wall < current.expires_at
            if not (self._refreshes.running or cooloff.dead is not None or cooling):
                return _Step(_Do.REFRESH, "token expiring" if still_valid else "token expired")
            if still_valid:
                return _USE
            # Expired. A token that was due on arrival is used until its cool-off ends.
            return self._obstacle(cooling, cooloff.dead) or _USE
        # A token past its refresh point is renewed whatever refused it (unless a failure
        # is cooling off): a replay with it could arrive after it expired, and a refusal
        # of it may be that expiry, not a refusal to retry.
        due = now.wall >= current.refresh_due_at and not cooling and cooloff.dead is None
        if current.generation != refused and not due:
            logger.debug(
                "generation %d was refused but %d is current: replaying without refresh",
                refused,
                current.generation,
            )
            return _USE
        obstacle = self._obstacle(cooling, cooloff.dead)
        if obstacle is not None:
            return obstacle
        if not due and cooloff.refused_again_too_soon(current.generation, now):
            logger.debug(
                "generation %d was obtained for a refused request and is refused again:"
                " returning the 401 without a refresh",
                current.generation,
            )
            return _Step(_Do.GIVE_BACK)
        return _Step(_Do.REFRESH, "token refused")

    def _obstacle(self, cooling: bool, dead: LoginRequiredError | None) -> _Step | None:
        """What stands before a refresh: one in flight (wait for it), a dead login or a
        failure cooling off (raised, as copies); None when nothing does."""
        if self._refreshes.running:
            return _WAIT
        if dead is not None:
            _raise_again(dead)
        if cooling and self._refreshes.error is not None:
            _raise_again(self._refreshes.error)
        return None

    def _load_if_needed(self, deadline: float) -> _Current | None:
        """The current token; loads the store at start, and after a dead login.

        After ``invalid_grant`` it reads the store on each call, so that a new login
        (saved by this process or another) is picked up. None when nothing is stored
        and the refresher can start from nothing. The store is read without the lock
        (its I/O may be slow: a file lock, Redis during an outage), by one thread at a
        time; the others wait for that read, at most until ``deadline``, and take its
        outcome (its error included).
        """
        current = self._current
        if current is not None and self._cooloff.dead is None:
            return current
        if self._reads.running:
            self._reads.wait(self._cond, deadline, self._gave_up_reading)
            return self._current
        generation = self._generation
        try:
            stored = self._reads.run(self._cond, self._store.load)
        except BaseException as exc:
            interrupted = RefreshError("the token store read was interrupted")
            self._reads.record(exc if isinstance(exc, Exception) else interrupted)
            raise
        self._reads.record(None)
        if self._generation != generation:
            # A first token was installed meanwhile: it is newer than what was read.
            return self._current
        current = self._current
        if stored is not None and (current is None or stored != self._basis):
            logger.info("loaded a token from the store")
            self._cooloff = self._cooloff.signed_in()
            self._refreshes.error = None  # a new login: earlier failures are history
            return self._install(stored, basis=stored)
        if current is None and not self._can_start:
            error = NoTokenError(
                "no token is stored: sign in and save the token to the store"
                f" ({self._store!r}) before sending requests"
            )
            self._reads.record(error)  # for the threads that waited on this read
            raise error
        return current

    def _gave_up_reading(self) -> str:
        return (
            f"gave up after waiting {self._refresh_timeout:g} s for another thread to read"
            f" the token store ({self._store!r}): check that the store is reachable, or"
            " raise refresh_timeout"
        )

    def _wait_for_refresh(self, deadline: float) -> None:
        """Block until the refresh in flight ends; raise its error if it failed."""
        self._count(waits=1)
        self._refreshes.wait(
            self._cond,
            deadline,
            lambda: (
                f"gave up after waiting {self._refresh_timeout:g} s for another thread's"
                " token refresh; raise refresh_timeout if the token endpoint is that slow"
            ),
        )

    def _refresh(
        self, current: _Current | None, reason: str, hooks: list[tuple[Token, Token]]
    ) -> tuple[BaseException | None, bool]:
        """Refresh ``current`` (None: get a first token); the lock is let go meanwhile.

        Returns ``(error, refreshed)``. On success the error is None and the new token is
        installed; ``refreshed`` says whether this process made it (True, and ``(old,
        new)`` is added to ``hooks`` for the caller to run once it holds no lock) or
        adopted one another process stored (False). Otherwise the caller raises (a copy
        of) the error; waiters get copies of it from :meth:`_wait_for_refresh`.
        """
        logger.debug("refreshing generation %d: %s", self._generation, reason)
        basis = self._basis
        token = None if current is None else current.token
        renewal = self._refreshes.run(
            self._cond,
            lambda: renew(self._store, self._refresher, token, basis=basis, is_due=self._is_due),
        )
        if renewal.rotated is not None:
            self._keep_rotated(renewal.rotated, saved=renewal.rotated_saved)
        if renewal.error is not None:
            self._fail(renewal.error)
            if renewal.interrupted is not None:
                raise renewal.interrupted
            return renewal.error, False
        self._succeed(renewal, basis, hooks)
        return None, not renewal.adopted

    def _succeed(
        self, renewal: Renewal, basis: Token | None, hooks: list[tuple[Token, Token]]
    ) -> None:
        """Put the token a renewal brought in use, as a new generation."""
        new = renewal.new
        assert new is not None  # noqa: S101 - a renewal brings an error or a token
        self._refreshes.record(None)
        if renewal.adopted:
            self._count(adopted=1)
            logger.info("adopted a token stored by another process or login")
        else:
            self._count(refreshes=1)
        self._install(new, basis=new if renewal.saved else basis)
        if not renewal.adopted:
            logger.info(
                "token refreshed: generation %d, expires in %s",
                self._generation,
                _describe_expiry(new, self._clock()),
            )
            if renewal.old is not None:  # None for a first token: no old one
                hooks.append((renewal.old, new))
        self._check_due_on_arrival(new, fresh=not renewal.adopted)

    def _fail(self, error: BaseException) -> None:
        """Record a failed attempt: its waiters get ``error``; cool off, or mark dead."""
        self._count(failures=1)
        self._refreshes.record(error)
        if isinstance(error, NoTokenError):
            self._current = None
            self._basis = None
            return
        now = self._now()
        self._cooloff = self._cooloff.failed(error, now, self._random.random())
        if isinstance(error, LoginRequiredError):
            logger.error(
                "the login is gone (%s: the refresh token was refused): sign in again and"
                " save the new token to the store",
                type(error).__name__,
            )
            return
        logger.warning(
            "token refresh failed (%s: %s); next attempt in %.1f s",
            type(error).__name__,
            error,
            self._cooloff.seconds_left(now),
        )

    def _check_due_on_arrival(self, token: Token, *, fresh: bool) -> None:
        """Start a cool-off when a fresh token is already due, else end one.

        A token that arrives due (our clock ahead of the server's, absolute expiry
        times, a lifetime shorter than the leeway without ``issued_at``) is used until
        the cool-off ends: refreshing it at once would refresh on every request.
        """
        now = self._now()
        due = fresh and self._is_due(token, now.wall)
        self._cooloff = self._cooloff.arrived(due=due, now=now, jitter=self._random.random())
        if due:
            logger.warning(
                "the new token is already due for refresh (expires in %s, leeway %g s),"
                " %d in a row: using it for %.1f s before the next refresh; check the clock"
                " (ours against the server's), the token's issued_at and expires_in (or"
                " expires_at, if your refresher computes it), or lower leeway",
                _describe_expiry(token, now.wall),
                self._leeway,
                self._cooloff.failures_in_a_row,
                self._cooloff.seconds_left(now),
            )

    def _keep_rotated(self, rotated: Token, *, saved: bool) -> None:
        """Present ``rotated``'s refresh token next time; keep the access token.

        The current access token stays in use while it is valid: the answer that rotated
        the refresh token was unusable, so nothing else of it is trusted.
        """
        current = self._current
        if current is not None:
            token = dataclasses.replace(current.token, refresh_token=rotated.refresh_token)
            self._current = dataclasses.replace(current, token=token)
        if saved:
            self._basis = rotated

    def _install(self, token: Token, *, basis: Token | None) -> _Current:
        """Make ``token`` the current one, as a new generation."""
        self._generation += 1
        self._basis = basis
        due = token.refresh_due_at(self._leeway)
        current = _Current(
            token=token,
            generation=self._generation,
            refresh_due_at=_NO_EXPIRY if due is None else due,
            expires_at=_NO_EXPIRY if token.expires_at is None else token.expires_at,
        )
        self._current = current
        return current

    # -- helpers --------------------------------------------------------------------

    def _now(self) -> Moment:
        return Moment.now(self._clock)

    def _is_due(self, token: Token, now: float | None = None) -> bool:
        """Whether ``token`` has reached the point where it is refreshed ahead of expiry."""
        due = token.refresh_due_at(self._leeway)
        return due is not None and (self._clock() if now is None else now) >= due

    def _call_hooks(self, hooks: list[tuple[Token, Token]]) -> None:
        """Run ``on_refresh`` for each refresh this thread made; no lock is held here."""
        if self._on_refresh is None:
            return
        for old, new in hooks:
            try:
                self._on_refresh(old, new)
            except Exception as exc:  # a hook must not fail the request that refreshed
                logger.error("the on_refresh hook raised %s; ignored", type(exc).__name__)

    def _after_fork_in_child(self) -> None:
        """Start the child with the lock free and no refresh or store read in flight.

        The threads that held the lock or ran the refresh do not exist in the child.
        The condition is re-initialised in place, so that a thread of the child that
        already holds a reference to it (one forking from inside a refresher) uses the
        new lock too.
        """
        threading.Condition.__init__(self._cond, threading.Lock())
        self._refreshes.abandon()
        self._reads.abandon()
        self._random.seed()  # the parent's jitter sequence is not the child's

    def _count(self, **increments: int) -> None:
        self._stats = dataclasses.replace(
            self._stats,
            **{name: getattr(self._stats, name) + n for name, n in increments.items()},
        )


def _describe_expiry(token: Token, now: float) -> str:
    remaining = token.expires_in(now)
    return "never (no expiry given)" if remaining is None else f"{remaining:.0f} s"


def _raise_again(error: BaseException) -> NoReturn:
    """Raise a fresh copy of a remembered error: same class and attributes.

    Raising the remembered object itself again would add this raise's frames to its
    traceback every time, and keep alive whatever those frames hold (request bodies).
    The copy has its own traceback and the original as its ``__cause__``.
    """
    kind = type(error)
    fresh = kind.__new__(kind, *error.args)  # no __init__: it may want other arguments
    fresh.args = error.args  # OSError.__new__ (requests' errors) leaves them to __init__
    for name in ("errno", "strerror", "filename", "filename2"):  # OSError's own fields
        value = getattr(error, name, None)
        if value is not None:
            setattr(fresh, name, value)
    fresh.__dict__.update(vars(error))
    raise fresh from error
