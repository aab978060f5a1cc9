"""Single-flight token refresh across the threads of a process. No HTTP in here.

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
* After a failure, no new attempt before a cool-off (backoff with jitter, at least the
  server's ``Retry-After``); after ``invalid_grant`` (any :class:`LoginRequiredError` from
  the refresher), none at all until the store holds a different token (a new login). A
  refreshed token that is already due counts as a failure for the cool-off.
* Around each refresh the store's lock is held, the store reloaded, and a token someone
  else stored is adopted instead of calling the token endpoint. A refresh token rotated
  by a failed refresh (:attr:`RefreshError.rotated_token`) is saved before the error is
  reported, and presented next time.
* The store is read (at start, and after a dead login) by one thread at a time, without
  the lock: the others wait for that read, at most ``refresh_timeout``, and share its
  outcome, so that a slow store never holds them beyond it.
* Durations (cool-offs, wait deadlines) run on :func:`time.monotonic`: a wall clock
  stepped back never prolongs them. Only token expiry is wall time (``clock``).
* ``on_refresh`` runs after the new token is in use, with no lock held.
* A child process forked while a thread held the lock, or while a refresh was in flight,
  starts with the lock free and no refresh in flight (``_fork.reset_in_child``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import NoReturn

import requests

from ._fork import reset_in_child
from ._login import LoginWatch
from .exceptions import (
    LoginRequiredError,
    NoTokenError,
    RefreshError,
    RefreshTimeoutError,
    RequestsRefreshError,
    TokenEndpointUnavailableError,
    TokenStoreConflictError,
)
from .stores import TokenStore
from .token import Token

__all__ = ["RefreshStats", "Refresher"]

logger = logging.getLogger("requests_refresh")

#: Turns a token into a new one; raises on failure. :class:`RefreshTokenGrant` is one. A
#: refresher reports a dead login by raising :class:`InvalidGrantError`: requests then fail
#: with it (a :class:`LoginRequiredError`) until a new login is stored.
#: A refresher that also has an ``acquire()`` method returning a :class:`Token` can
#: start from nothing: with the store empty, the coordinator calls ``acquire()`` (one
#: call for all waiting threads, like a refresh) instead of raising NoTokenError.
#: :class:`ClientCredentialsGrant` is one.
Refresher = Callable[[Token], Token]
#: Called as ``on_refresh(old, new)`` once per refresh this process made, after the new
#: token is in use, with no lock held.
RefreshHook = Callable[[Token, Token], None]

#: The longest ``Retry-After`` honoured, in seconds; a larger one is cut to this.
RETRY_AFTER_CAP = 3600.0

_NO_EXPIRY = math.inf

#: The longest text of a type name quoted in an error message.
_MAX_NAME = 200


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


@dataclasses.dataclass(frozen=True)
class _Until:
    """The end of a duration (a cool-off), on the monotonic clock and on ``clock``.

    It has passed once either clock says so: a wall clock stepped back (NTP, a VM resume)
    never prolongs it, and a clock moved forward (a test's) ends it without waiting.
    """

    monotonic: float
    wall: float


_PASSED = _Until(-math.inf, -math.inf)


@dataclasses.dataclass
class _Attempt:
    """What one refresh attempt brought; filled in without the lock by its one thread."""

    refreshed: Token | None = None  # the token the refresher was given
    new: Token | None = None
    adopted: bool = False
    saved: bool = False
    error: RequestsRefreshError | None = None
    rotated: Token | None = None  # a refresh token rotated by a failed refresh
    rotated_saved: bool = False


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
        acquire = getattr(refresher, "acquire", None)
        self._acquire_first: Callable[[], object] | None = acquire if callable(acquire) else None
        self._leeway = leeway
        self._refresh_timeout = refresh_timeout
        self._cooloff = cooloff
        self._max_cooloff = max_cooloff
        self._on_refresh = on_refresh
        self._clock = clock
        self._login_watch = LoginWatch(login_end_warning)  # told of each token installed
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography

        self._cond = threading.Condition(threading.Lock())
        reset_in_child(self)
        # Read without the lock on the fast path: it is replaced whole, never mutated.
        self._current: _Current | None = None
        self._generation = -1
        self._basis: Token | None = None  # the token last read from or written to the store
        self._refreshing = False
        self._loading = False  # a thread is reading the store for _load_if_needed
        self._loads = 0  # such reads finished
        self._failed_load = 0  # the number of the last one that failed
        self._load_error: BaseException | None = None  # its error
        self._attempt = 0  # attempts finished
        self._failed_attempt = 0  # the number of the last attempt that failed
        self._error: BaseException | None = None  # its error
        self._dead: LoginRequiredError | None = None  # the current login was refused
        # Attempts in a row that brought no usable token: failures, and tokens due on arrival.
        self._failures_in_a_row = 0
        self._cooloff_until = _PASSED
        self._reactive_generation = -1  # a generation obtained because a token was refused
        self._refused_until = _PASSED  # ... and refused again: no refresh on 401 before
        self._refused_in_a_row = 0
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
        return self._acquire_slow()

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

    def _refused(
        self, generation: int, hooks: list[tuple[Token, Token]]
    ) -> tuple[Token, int] | None:
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed(deadline)
                if current is None:
                    self._first_token(deadline, hooks)
                    continue
                # A token past its refresh point is renewed whatever refused it (unless a
                # failure is cooling off): a replay with it could arrive after it expired,
                # and a refusal of it may be that expiry, not a refusal to retry.
                now = self._clock()
                cooling = self._pending(self._cooloff_until, now)
                due = now >= current.refresh_due_at and not cooling and self._dead is None
                if current.generation != generation:
                    if not due:
                        logger.debug(
                            "generation %d was refused but %d is current: replaying"
                            " without refresh",
                            generation,
                            current.generation,
                        )
                        return current.token, current.generation
                    generation = current.generation
                if self._refreshing:
                    self._wait_for_refresh(deadline)
                    continue
                if self._dead is not None:
                    _raise_again(self._dead)
                if cooling and self._error is not None:
                    _raise_again(self._error)
                if (
                    generation == self._reactive_generation
                    and self._pending(self._refused_until, now)
                    and not due
                ):
                    logger.debug(
                        "generation %d was obtained for a refused request and is refused"
                        " again: returning the 401 without a refresh",
                        generation,
                    )
                    return None
                # A token obtained for a refused request and refused again after its
                # cool-off gets one more refresh, and a longer cool-off after that.
                streak = (
                    self._refused_in_a_row + 1 if generation == self._reactive_generation else 0
                )
                error, _ = self._refresh(current, "token refused", hooks)
                if error is not None:
                    _raise_again(error)
                self._reactive_generation = self._generation
                self._refused_in_a_row = streak
                self._refused_until = self._until(self._backoff(streak + 1))

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
            if self._refreshing:
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

    # -- the slow path ----------------------------------------------------------------

    def _acquire_slow(self) -> tuple[Token, int]:
        hooks: list[tuple[Token, Token]] = []
        try:
            return self._acquire_locked(hooks)
        finally:
            self._call_hooks(hooks)

    def _acquire_locked(self, hooks: list[tuple[Token, Token]]) -> tuple[Token, int]:
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed(deadline)
                if current is None:
                    self._first_token(deadline, hooks)
                    continue
                now = self._clock()
                if now < current.refresh_due_at:
                    return current.token, current.generation
                still_valid = now < current.expires_at
                if self._refreshing:
                    if still_valid:
                        return current.token, current.generation
                    self._wait_for_refresh(deadline)
                    continue
                if self._dead is not None:
                    if still_valid:
                        return current.token, current.generation
                    _raise_again(self._dead)
                if self._pending(self._cooloff_until, now):
                    # A token that was due on arrival is used until its cool-off ends.
                    if still_valid or self._error is None:
                        return current.token, current.generation
                    _raise_again(self._error)
                error, refreshed = self._refresh(
                    current, "token expiring" if still_valid else "token expired", hooks
                )
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
                # already (see _install): checking again could refresh without end.
                # A token adopted from the store is checked like any other.
                if refreshed and self._current is not None:
                    return self._current.token, self._current.generation

    def _load_if_needed(self, deadline: float) -> _Current | None:
        """The current token; loads the store at start, and after a dead login.

        Called with the lock held. After ``invalid_grant`` it reads the store on each
        call, so that a new login (saved by this process or another) is picked up.
        None when nothing is stored and the refresher can start from nothing.

        The store is read without the lock (its I/O may be slow: a file lock, Redis
        during an outage), by one thread at a time; the others wait for that read, at
        most until ``deadline``, and take its outcome (its error included).
        """
        current = self._current
        if current is not None and self._dead is None:
            return current
        if self._loading:
            self._wait_for_load(deadline)
            return self._current
        generation = self._generation
        stored = self._read_store()
        if self._generation != generation:
            # A first token was installed meanwhile: it is newer than what was read.
            return self._current
        current = self._current
        if stored is not None and (current is None or stored != self._basis):
            logger.info("loaded a token from the store")
            self._dead = None
            self._error = None
            self._failures_in_a_row = 0
            self._cooloff_until = _PASSED
            return self._install(stored, basis=stored)
        if current is None and self._acquire_first is None:
            error = NoTokenError(
                "no token is stored: sign in and save the token to the store"
                f" ({self._store!r}) before sending requests"
            )
            self._failed_load, self._load_error = self._loads, error  # for its waiters
            raise error
        return current

    def _read_store(self) -> Token | None:
        """``store.load()`` without the lock (held on entry and exit); waiters are told."""
        self._loading = True
        self._cond.release()
        try:
            stored = self._store.load()
        except BaseException as exc:
            self._cond.acquire()
            interrupted = RefreshError("the token store read was interrupted")
            self._end_load(exc if isinstance(exc, Exception) else interrupted)
            raise
        self._cond.acquire()
        self._end_load(None)
        return stored

    def _end_load(self, error: Exception | None) -> None:
        """Record the end of a store read (lock held) and wake the threads waiting on it."""
        self._loading = False
        self._loads += 1
        if error is not None:
            self._failed_load, self._load_error = self._loads, error
        elif self._load_error is not None:
            self._load_error = None  # let go of what its traceback holds
        self._cond.notify_all()

    def _wait_for_load(self, deadline: float) -> None:
        """Block until the store read in flight ends; raise its error if it failed."""
        number = self._loads
        while self._loading and self._loads == number:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RefreshTimeoutError(
                    f"gave up after waiting {self._refresh_timeout:g} s for another thread"
                    f" to read the token store ({self._store!r}): check that the store is"
                    " reachable, or raise refresh_timeout"
                )
            self._cond.wait(remaining)
        if self._failed_load > number and self._load_error is not None:
            _raise_again(self._load_error)

    def _first_token(self, deadline: float, hooks: list[tuple[Token, Token]]) -> None:
        """Nothing is stored and the refresher can start from nothing: get a first token.

        Lock held. One thread calls ``refresher.acquire()`` while the others wait, as for
        a refresh; a failure cools off and reaches every waiter the same way.
        """
        if self._refreshing:
            self._wait_for_refresh(deadline)
            return
        if self._pending(self._cooloff_until, self._clock()) and self._error is not None:
            _raise_again(self._error)
        error, _ = self._refresh(None, "nothing stored", hooks)
        if error is not None:
            _raise_again(error)

    def _wait_for_refresh(self, deadline: float) -> None:
        """Block until the refresh in flight ends; raise its error if it failed."""
        attempt = self._attempt
        self._count(waits=1)
        while self._refreshing and self._attempt == attempt:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RefreshTimeoutError(
                    f"gave up after waiting {self._refresh_timeout:g} s for another thread's"
                    " token refresh; raise refresh_timeout if the token endpoint is that slow"
                )
            self._cond.wait(remaining)
        if self._failed_attempt > attempt and self._error is not None:
            _raise_again(self._error)

    def _refresh(
        self, current: _Current | None, reason: str, hooks: list[tuple[Token, Token]]
    ) -> tuple[BaseException | None, bool]:
        """Refresh ``current``, with the lock held on entry and exit (not in between).

        Returns ``(error, refreshed)``. On success the error is None and the new token is
        installed; ``refreshed`` says whether this process made it (True, and ``(old,
        new)`` is added to ``hooks`` for the caller to run once it holds no lock) or
        adopted one another process stored (False). Otherwise the caller raises (a copy
        of) the error; waiters get copies of it from :meth:`_wait_for_refresh`.
        """
        logger.debug("refreshing generation %d: %s", self._generation, reason)
        self._refreshing = True
        basis = self._basis
        attempt = _Attempt()
        finished = False
        self._cond.release()
        try:
            self._obtain(None if current is None else current.token, basis, attempt)
            finished = True
        finally:
            self._cond.acquire()
            self._refreshing = False
            self._attempt += 1
            self._cond.notify_all()
            if attempt.rotated is not None:
                self._keep_rotated(attempt.rotated, saved=attempt.rotated_saved)
            if not finished:  # a BaseException such as KeyboardInterrupt is on its way
                self._fail(RefreshError("the token refresh was interrupted"))
        if attempt.error is not None:
            self._fail(attempt.error)
            return attempt.error, False
        new = attempt.new
        assert new is not None  # noqa: S101 - _obtain sets an error or a token
        if attempt.adopted:
            self._count(adopted=1)
            logger.info("adopted a token stored by another process or login")
        else:
            self._count(refreshes=1)
        self._error = None
        self._install(new, basis=new if attempt.saved else basis)
        if not attempt.adopted:
            logger.info(
                "token refreshed: generation %d, expires in %s",
                self._generation,
                _describe_expiry(new, self._clock()),
            )
            if attempt.refreshed is not None:  # None for a first token: no old one
                hooks.append((attempt.refreshed, new))
        self._check_due_on_arrival(new, fresh=not attempt.adopted)
        return None, not attempt.adopted

    def _obtain(self, token: Token | None, basis: Token | None, attempt: _Attempt) -> None:
        """Reload, then refresh and save, under the store's lock. Runs without our lock.

        With ``token`` None, or the store found empty, a refresher that can start from
        nothing is asked for a first token. Fills in ``attempt``: the new token (adopted,
        saved) or the error (wrapped in a library error), and a refresh token rotated by
        a failed refresh, saved at once.
        """
        try:
            with self._store.lock():
                stored = self._store.load()
                if stored is None:
                    if self._acquire_first is None:
                        attempt.error = NoTokenError(
                            "the token store was cleared (signed out?): sign in again and"
                            " save the new token to the store"
                        )
                        return
                    token = None  # start from nothing
                elif stored != basis:
                    if not self._is_due(stored):
                        attempt.new, attempt.adopted, attempt.saved = stored, True, True
                        return
                    # Another process stored a token that is already due (its holder
                    # went quiet): adopting it would send a token about to be refused.
                    # Its refresh token is the newest one, so refresh that instead.
                    token = stored
                attempt.refreshed = token
                try:
                    result = self._call_refresher(token)
                except RefreshError as exc:
                    self._save_rotated(exc, attempt)
                    if isinstance(exc, LoginRequiredError):
                        # Not a reason to give up yet: a new login may have been stored
                        # meanwhile by something that does not take the lock.
                        again = self._store.load()
                        if again is not None and again not in (stored, attempt.rotated):
                            attempt.new, attempt.adopted, attempt.saved = again, True, True
                            return
                    raise
                if not isinstance(result, Token):
                    attempt.error = RefreshError(
                        f"the refresher returned {_type_name(result)}, not a Token"
                    )
                    return
                attempt.new = result
                self._save_new(result, attempt)
        except RequestsRefreshError as exc:
            attempt.error = exc
        except Exception as exc:  # any refresher failure reaches every waiter
            attempt.error = _wrap_refresher_failure(exc)
        if attempt.error is not None:
            attempt.new = None

    def _save_new(self, new: Token, attempt: _Attempt) -> None:
        """Save a token the refresher just made (store lock held, not ours)."""
        try:
            self._store.save(new)
        except TokenStoreConflictError as exc:
            self._adopt_newer(exc, attempt)
        except RequestsRefreshError as exc:
            # The old refresh token may be spent already: keep the new token in memory
            # rather than lose the login, and try to save again next time.
            logger.error("the new token could not be saved (%s); it is kept in memory only", exc)
        else:
            attempt.saved = True

    def _call_refresher(self, token: Token | None) -> object:
        """Refresh ``token``; with None, ask the refresher for a first token."""
        if token is not None:
            return self._refresher(token)
        assert self._acquire_first is not None  # noqa: S101 - None only when it can start
        return self._acquire_first()

    def _save_rotated(self, error: RefreshError, attempt: _Attempt) -> None:
        """Save the refresh token a failed refresh rotated (store lock held, not ours).

        The server may have spent the refresh token we presented: the rotated one is the
        login now, so it goes to the store before anything else can fail. The error stops
        carrying it, so that no secret travels with what callers see.
        """
        rotated, error.rotated_token = error.rotated_token, None
        if not isinstance(rotated, Token) or rotated.refresh_token is None:
            return
        attempt.rotated = rotated
        try:
            self._store.save(rotated)
        except RequestsRefreshError as exc:
            logger.error(
                "the refresh token rotated by a failed refresh could not be saved (%s);"
                " it is kept in memory only",
                exc,
            )
        else:
            attempt.rotated_saved = True
        logger.warning(
            "the token endpoint rotated the refresh token in an answer that could not be"
            " used (%s); the new refresh token is kept for the next attempt",
            type(error).__name__,
        )

    def _keep_rotated(self, rotated: Token, *, saved: bool) -> None:
        """Present ``rotated``'s refresh token next time; keep the access token (lock held).

        The current access token stays in use while it is valid: the answer that rotated
        the refresh token was unusable, so nothing else of it is trusted.
        """
        current = self._current
        if current is not None:
            token = dataclasses.replace(current.token, refresh_token=rotated.refresh_token)
            self._current = dataclasses.replace(current, token=token)
        if saved:
            self._basis = rotated

    def _adopt_newer(self, conflict: TokenStoreConflictError, attempt: _Attempt) -> None:
        """Adopt the stored token after our save lost to it (store lock held, not ours).

        A newer token was stored while ours was in flight (our lease on the lock ran out,
        or a new sign-in): the stored one wins, so that every process sharing the store
        goes on with the same token.
        """
        logger.warning("adopting the stored token: %s", conflict)
        newer = self._store.load()
        if newer is None:
            attempt.error = NoTokenError(
                "the token store was cleared (signed out?) during a refresh: sign in again"
                " and save the new token to the store"
            )
            return
        attempt.new, attempt.adopted, attempt.saved = newer, True, True

    def _is_due(self, token: Token) -> bool:
        """Whether ``token`` has reached the point where it is refreshed ahead of expiry."""
        due = token.refresh_due_at(self._leeway)
        return due is not None and self._clock() >= due

    def _call_hooks(self, hooks: list[tuple[Token, Token]]) -> None:
        """Run ``on_refresh`` for each refresh this thread made; no lock is held here."""
        if self._on_refresh is None:
            return
        for old, new in hooks:
            try:
                self._on_refresh(old, new)
            except Exception as exc:  # a hook must not fail the request that refreshed
                logger.error("the on_refresh hook raised %s; ignored", type(exc).__name__)

    def _fail(self, error: BaseException) -> None:
        """Record a failed attempt (lock held)."""
        self._count(failures=1)
        self._failed_attempt = self._attempt
        self._error = error
        if isinstance(error, NoTokenError):
            self._current = None
            self._basis = None
            return
        if isinstance(error, LoginRequiredError):
            self._dead = error
            logger.error(
                "the login is gone (%s: the refresh token was refused): sign in again and"
                " save the new token to the store",
                type(error).__name__,
            )
            return
        self._failures_in_a_row += 1
        delay = self._backoff(self._failures_in_a_row)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP))
        self._cooloff_until = self._until(delay)
        logger.warning(
            "token refresh failed (%s: %s); next attempt in %.1f s",
            type(error).__name__,
            error,
            delay,
        )

    def _backoff(self, attempt: int) -> float:
        """Cool-off after the ``attempt``-th failure in a row: doubling, with jitter."""
        ceiling = min(self._max_cooloff, self._cooloff * 2 ** min(attempt - 1, 30))
        return self._random.uniform(ceiling / 2, ceiling)

    def _until(self, seconds: float) -> _Until:
        """The end of a duration of ``seconds`` that starts now."""
        return _Until(time.monotonic() + seconds, self._clock() + seconds)

    @staticmethod
    def _pending(until: _Until, now: float) -> bool:
        """Whether ``until`` is still ahead; ``now`` is the time on ``clock``."""
        return now < until.wall and time.monotonic() < until.monotonic

    def _check_due_on_arrival(self, token: Token, *, fresh: bool) -> None:
        """Start a cool-off when a fresh token is already due (lock held), else end one.

        A token that arrives due (our clock ahead of the server's, absolute expiry
        times, a lifetime shorter than the leeway without ``issued_at``) is used until
        the cool-off ends: refreshing it at once would refresh on every request. It
        counts as a failure, so the cool-off grows with each one in a row.
        """
        if not fresh:
            self._failures_in_a_row = 0
            self._cooloff_until = _PASSED
            return
        due = token.refresh_due_at(self._leeway)
        now = self._clock()
        if due is None or due > now:
            self._failures_in_a_row = 0
            self._cooloff_until = _PASSED
            return
        self._failures_in_a_row += 1
        delay = self._backoff(self._failures_in_a_row)
        self._cooloff_until = self._until(delay)
        logger.warning(
            "the new token is already due for refresh (expires in %s, leeway %g s),"
            " %d in a row: using it for %.1f s before the next refresh; check the clock"
            " (ours against the server's), the token's issued_at and expires_in (or"
            " expires_at, if your refresher computes it), or lower leeway",
            _describe_expiry(token, now),
            self._leeway,
            self._failures_in_a_row,
            delay,
        )

    def _install(self, token: Token, *, basis: Token | None) -> _Current:
        """Make ``token`` the current one, as a new generation (lock held)."""
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
        self._login_watch.installed(token, self._clock())
        return current

    def _after_fork_in_child(self) -> None:
        """Start the child with the lock free and no refresh or store read in flight.

        The threads that held the lock or ran the refresh do not exist in the child.
        The condition is re-initialised in place, so that a thread of the child that
        already holds a reference to it (one forking from inside a refresher) uses the
        new lock too.
        """
        threading.Condition.__init__(self._cond, threading.Lock())
        if self._refreshing:
            self._refreshing = False
            self._attempt += 1
        if self._loading:
            self._loading = False
            self._loads += 1
        self._random.seed()  # the parent's jitter sequence is not the child's

    def _count(self, **increments: int) -> None:
        self._stats = dataclasses.replace(
            self._stats,
            **{name: getattr(self._stats, name) + n for name, n in increments.items()},
        )


def _describe_expiry(token: Token, now: float) -> str:
    remaining = token.expires_in(now)
    return "never (no expiry given)" if remaining is None else f"{remaining:.0f} s"


def _type_name(value: object) -> str:
    """The qualified name of ``value``'s type, bounded: code, never data."""
    kind = type(value)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    return name[:_MAX_NAME]


def _wrap_refresher_failure(exc: Exception) -> RequestsRefreshError:
    """A library error for what a refresher raised, with ``exc`` as its cause.

    The message names the type, never the message: that of an ``HTTPError`` holds the
    URL, whose query may carry a token. Only the HTTP status is quoted besides.
    """
    error: RequestsRefreshError
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        error = TokenEndpointUnavailableError(
            f"the refresher could not reach its server ({type(exc).__name__})"
        )
    else:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = f" (HTTP {status})" if type(status) is int else ""
        error = RefreshError(
            f"the refresher raised {_type_name(exc)}{detail}; its message is not repeated"
            " here (it may hold a secret): see this error's __cause__. A refresher reports"
            " a dead login by raising InvalidGrantError: requests then fail with"
            " LoginRequiredError until a new login is stored"
        )
    error.__cause__ = exc
    return error


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
