"""Single-flight token refresh across the threads of a process.

The coordinator owns the current token and its *generation*, a number that grows by one
each time the token is replaced. Requests ask it for a token (:meth:`acquire`) and tell
it when a token was refused (:meth:`refused`), naming the generation they sent. The rules:

* One refresh at a time. The thread that finds the token due refreshes; the others keep
  sending while the token is still valid, and wait on a :class:`threading.Condition` (at
  most ``refresh_timeout``) once it has expired. The store is read (at start, after a
  dead login) the same way: one thread reads without the lock, the others wait.
* A refusal earned by an older generation never triggers a refresh: the request is
  replayed with the current token.
* Every thread that waited gets the outcome: the new token, or the error, raised as a
  fresh copy each time (same class and attributes, the original as ``__cause__``).
* After a failure, no new attempt before a cool-off; after ``invalid_grant``, none until
  the store holds a different token. Those rules are ``_cooloff.CoolOff``'s; what a
  refresh does with the store is ``_renewal.renew``'s; which of them a request faces is
  weighed in one place, :meth:`Coordinator._next_step`.
* Durations run on :func:`time.monotonic` (a wall clock stepped back never prolongs
  them); only token expiry is wall time (``clock``).
* ``on_refresh`` runs after the new token is in use, with no lock held.
* A child forked while a thread held the lock, or while a refresh or read was in flight,
  starts with the lock free and nothing in flight (``_fork.reset_in_child``).
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
from typing import TypeVar

from ._cooloff import RETRY_AFTER_CAP, CoolOff, Moment, describe_expiry
from ._flight import Flight
from ._fork import reset_in_child
from ._login import LoginWatch
from ._renewal import AcquiringRefresher, Refresher, RefreshHook, Renewal, renew
from ._stats import RefreshStats
from .exceptions import LoginRequiredError, NoTokenError, raise_again
from .stores import TokenStore
from .token import Token

__all__ = ["RETRY_AFTER_CAP", "AcquiringRefresher", "RefreshStats", "Refresher"]

logger = logging.getLogger("requests_refresh")

_NO_EXPIRY = math.inf

_T = TypeVar("_T")
_Hooks = list[tuple[Token, Token]]  # (old, new) for on_refresh, run once no lock is held


@dataclasses.dataclass(frozen=True)
class _Current:
    """The token in use, with the moments that matter precomputed for the fast path."""

    token: Token
    generation: int
    refresh_due_at: float  # when to start refreshing ahead; inf for never
    expires_at: float  # inf when unknown


class _Step(enum.Enum):
    """What a request does next, as :meth:`Coordinator._next_step` decides."""

    USE = "send the current token"
    WAIT = "wait for the refresh in flight"
    GIVE_BACK = "return the refusal to the caller as it is"
    # Refresh, for this reason:
    FIRST = "nothing stored"
    AHEAD = "token expiring"
    EXPIRED = "token expired"
    REFUSED = "token refused"


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
        login_end_warning: float = 0.0,
    ) -> None:
        self._store = store
        self._refresher = refresher
        self._can_start = isinstance(refresher, AcquiringRefresher)
        self._leeway = leeway
        self._refresh_timeout = refresh_timeout
        self._on_refresh: RefreshHook = _no_hook if on_refresh is None else on_refresh
        self._clock = clock
        self._login_watch = LoginWatch(login_end_warning)  # told of each token installed
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography

        self._cond = threading.Condition(threading.Lock())
        reset_in_child(self)
        # Read without the lock on the fast path: it is replaced whole, never mutated.
        self._current: _Current | None = None
        self._generation = -1
        self._basis: Token | None = None  # the token last read from or written to the store
        self._reads = Flight("the token store read")  # by _load_if_needed
        self._refreshes = Flight("the token refresh")  # its error: the last attempt's
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
        handed = self._with_hooks(lambda hooks: self._take_steps(None, hooks))
        assert handed is not None  # noqa: S101 - only a refusal is given back
        return handed

    def refused(self, generation: int) -> tuple[Token, int] | None:
        """A request sent with ``generation`` was refused (401). What to replay it with.

        Returns the token to replay with, or None when the refusal should go back to the
        caller as it is (the token was just refreshed because of a refusal and is refused
        again: a refresh would not help).

        Raises:
            LoginRequiredError: the login is gone (``invalid_grant``) or nothing is stored.
            RefreshError: the refresh failed, or a recent failure is cooling off.
        """
        return self._with_hooks(lambda hooks: self._take_steps(generation, hooks))

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

    # -- the slow paths ---------------------------------------------------------------

    def _take_steps(self, refused: int | None, hooks: _Hooks) -> tuple[Token, int] | None:
        """The slow path of :meth:`acquire` (``refused`` None) and of :meth:`refused`."""
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed(deadline)
                step = self._next_step(current, refused)
                if step is _Step.USE and current is not None:
                    return current.token, current.generation
                if refused is not None and current is not None:
                    refused = current.generation  # the generation _next_step weighed
                if step is _Step.GIVE_BACK:
                    return None
                if step is _Step.WAIT:
                    self._wait_for_refresh(deadline)
                    continue
                error, refreshed = self._refresh(current, step, hooks)
                if current is None:  # a first token: the next round hands it out
                    if error is not None:
                        raise_again(error)
                elif error is not None:
                    # A refresh ahead of expiry took time: the token may have expired.
                    if refused is not None or self._clock() >= current.expires_at:
                        raise_again(error)
                    logger.warning(
                        "refresh ahead of expiry failed (%s); the current token is still"
                        " valid for %.1f s and stays in use",
                        type(error).__name__,
                        current.expires_at - self._clock(),
                    )
                    return current.token, current.generation
                elif refused is not None:
                    self._cooloff = self._cooloff.refreshed_on_refusal(
                        refused, self._generation, self._now(), self._random.random()
                    )
                # The request that refreshed uses the new token even if it is due already
                # (CoolOff.arrived): an adopted one is checked like any other.
                elif refreshed and self._current is not None:
                    return self._current.token, self._current.generation

    def _next_step(self, current: _Current | None, refused: int | None) -> _Step:  # noqa: PLR0911 - one decision, read top to bottom
        """What a request does now: the one place that weighs the token's due time, a
        refresh in flight, a dead login and a cool-off against each other. ``current``
        is None when nothing is stored and the refresher can start from nothing;
        ``refused`` is the generation a refusal was earned by (None for :meth:`acquire`).
        Raises (a copy of) the error the request must report.
        """
        now = self._now()
        cooloff = self._cooloff
        cooling = cooloff.cooling(now)
        if current is None:  # a dead login is no obstacle to a first token
            return self._obstacle(cooling, None) or _Step.FIRST
        if refused is None:
            if now.wall < current.refresh_due_at:
                return _Step.USE
            still_valid = now.wall < current.expires_at
            if not (self._refreshes.running or cooloff.dead is not None or cooling):
                return _Step.AHEAD if still_valid else _Step.EXPIRED
            if still_valid:
                return _Step.USE
            # Expired. A token that was due on arrival is used until its cool-off ends.
            return self._obstacle(cooling, cooloff.dead) or _Step.USE
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
            return _Step.USE
        obstacle = self._obstacle(cooling, cooloff.dead)
        if obstacle is not None:
            return obstacle
        if not due and cooloff.refused_again_too_soon(current.generation, now):
            logger.debug(
                "generation %d was obtained for a refused request and is refused again:"
                " returning the 401 without a refresh",
                current.generation,
            )
            return _Step.GIVE_BACK
        return _Step.REFUSED

    def _obstacle(self, cooling: bool, dead: LoginRequiredError | None) -> _Step | None:
        """What stands before a refresh: one in flight (wait for it), a dead login or a
        failure cooling off (raised, as copies); None when nothing does."""
        if self._refreshes.running:
            return _Step.WAIT
        if dead is not None:
            raise_again(dead)
        if cooling and self._refreshes.error is not None:
            raise_again(self._refreshes.error)
        return None

    def _load_if_needed(self, deadline: float) -> _Current | None:
        """The current token; reads the store at start, and (each call) after a dead login.

        None when nothing is stored and the refresher can start from nothing. One thread
        reads, without the lock (a store may be slow); the others wait, at most until
        ``deadline``, and share the outcome (its error included).
        """
        current = self._current
        if current is not None and self._cooloff.dead is None:
            return current
        if self._reads.running:
            self._reads.wait(
                self._cond,
                deadline,
                lambda: (
                    f"gave up after waiting {self._refresh_timeout:g} s for another"
                    f" thread to read the token store ({self._store!r}): check that the store"
                    " is reachable, or raise refresh_timeout"
                ),
            )
            return self._current
        generation = self._generation
        stored = self._reads.run(self._cond, self._store.load)
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
        self, current: _Current | None, why: _Step, hooks: _Hooks
    ) -> tuple[BaseException | None, bool]:
        """Refresh ``current`` (None: get a first token), letting go of the lock meanwhile.

        Returns ``(error, refreshed)``: with no error the new token is in use, made by this
        process (``refreshed``; ``(old, new)`` added to ``hooks``) or adopted from the store.
        """
        logger.debug("refreshing generation %d: %s", self._generation, why.value)
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

    def _succeed(self, renewal: Renewal, basis: Token | None, hooks: _Hooks) -> None:
        """Put the token a renewal brought in use, as a new generation."""
        new = renewal.new
        assert new is not None  # noqa: S101 - a renewal brings an error or a token
        self._refreshes.record(None)
        self._count(**{"adopted" if renewal.adopted else "refreshes": 1})
        self._install(new, basis=new if renewal.saved else basis)
        if renewal.adopted:
            logger.info("adopted a token stored by another process or login")
        else:
            logger.info(
                "token refreshed: generation %d, expires in %s",
                self._generation,
                describe_expiry(new, self._clock()),
            )
            if renewal.old is not None:  # None for a first token: no old one
                hooks.append((renewal.old, new))
        self._cooloff = self._cooloff.arrived(
            new,
            fresh=not renewal.adopted,
            leeway=self._leeway,
            now=self._now(),
            jitter=self._random.random(),
        )

    def _fail(self, error: BaseException) -> None:
        """Record a failed attempt: its waiters get ``error``; cool off, or mark dead."""
        self._count(failures=1)
        self._refreshes.record(error)
        if isinstance(error, NoTokenError):
            self._current = None
            self._basis = None
        else:
            self._cooloff = self._cooloff.failed(error, self._now(), self._random.random())

    def _keep_rotated(self, rotated: Token, *, saved: bool) -> None:
        """Present ``rotated``'s refresh token next time; keep the access token in use
        (the answer that rotated the refresh token was unusable: nothing else of it is)."""
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
        due, expires_at = token.refresh_due_at(self._leeway), token.expires_at
        self._current = _Current(
            token,
            self._generation,
            refresh_due_at=_NO_EXPIRY if due is None else due,
            expires_at=_NO_EXPIRY if expires_at is None else expires_at,
        )
        self._login_watch.installed(token, self._clock())
        return self._current

    # -- helpers --------------------------------------------------------------------

    def _now(self) -> Moment:
        return Moment.now(self._clock)

    def _is_due(self, token: Token) -> bool:
        """Whether ``token`` has reached the point where it is refreshed ahead of expiry."""
        due = token.refresh_due_at(self._leeway)
        return due is not None and self._clock() >= due

    def _with_hooks(self, work: Callable[[_Hooks], _T]) -> _T:
        """``work(hooks)``, then ``on_refresh`` for each refresh it added, no lock held."""
        hooks: _Hooks = []
        try:
            return work(hooks)
        finally:
            for old, new in hooks:
                try:
                    self._on_refresh(old, new)
                except Exception as exc:  # a hook must not fail the request that refreshed
                    logger.error("the on_refresh hook raised %s; ignored", type(exc).__name__)

    def _after_fork_in_child(self) -> None:
        """Start the child with the lock free and no refresh or store read in flight: the
        threads that held or ran them are not in the child. The condition is reset in
        place, for a thread of the child that holds it (one forking inside a refresher).
        """
        threading.Condition.__init__(self._cond, threading.Lock())
        self._refreshes.abandon()
        self._reads.abandon()
        self._random.seed()  # the parent's jitter sequence is not the child's

    def _count(self, **increments: int) -> None:
        self._stats = self._stats.plus(**increments)


def _no_hook(old: Token, new: Token) -> None:
    """The ``on_refresh`` of a coordinator given none."""
