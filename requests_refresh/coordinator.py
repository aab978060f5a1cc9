"""Single-flight token refresh across the threads of a process. No HTTP in here.

The coordinator owns the current token and its *generation*, a number that grows by one
each time the token is replaced. Requests ask it for a token (:meth:`acquire`) and tell
it when a token was refused (:meth:`refused`), naming the generation they sent. The rules:

* One refresh at a time. The thread that finds the token due becomes the refresher; the
  others keep sending while the current token is still valid, and block on a
  :class:`threading.Condition` (for at most ``refresh_timeout``) once it has expired.
* A refusal earned by an older generation never triggers a refresh: the request is
  replayed with the current token.
* Every thread that waited on a refresh gets its outcome: the new token, or the very
  error the refresher got. Nobody retries on their own.
* After a failure, no new attempt before a cool-off (backoff with jitter, at least the
  server's ``Retry-After``); after ``invalid_grant``, none at all until the store holds a
  different token (a new login).
* Around each refresh the store's lock is held, the store reloaded, and a token someone
  else stored is adopted instead of calling the token endpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Callable

import requests

from .exceptions import (
    InvalidGrantError,
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

#: Turns a token into a new one; raises on failure. :class:`RefreshTokenGrant` is one.
Refresher = Callable[[Token], Token]
#: Called as ``on_refresh(old, new)`` once per refresh this process made.
RefreshHook = Callable[[Token, Token], None]

#: The longest ``Retry-After`` honoured, in seconds; a larger one is cut to this.
RETRY_AFTER_CAP = 3600.0

_NO_EXPIRY = math.inf


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
        self._leeway = leeway
        self._refresh_timeout = refresh_timeout
        self._cooloff = cooloff
        self._max_cooloff = max_cooloff
        self._on_refresh = on_refresh
        self._clock = clock
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography

        self._cond = threading.Condition(threading.Lock())
        # Read without the lock on the fast path: it is replaced whole, never mutated.
        self._current: _Current | None = None
        self._generation = -1
        self._basis: Token | None = None  # the token last read from or written to the store
        self._refreshing = False
        self._attempt = 0  # attempts finished
        self._failed_attempt = 0  # the number of the last attempt that failed
        self._error: BaseException | None = None  # its error
        self._dead: InvalidGrantError | None = None  # the current login was refused
        self._failures_in_a_row = 0
        self._cooloff_until = -math.inf
        self._reactive_generation = -1  # a generation obtained because a token was refused
        self._refused_until = -math.inf  # ... and refused again: no refresh on 401 before
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
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed()
                # A token past its refresh point is renewed whatever refused it (unless a
                # failure is cooling off): a replay with it could arrive after it expired,
                # and a refusal of it may be that expiry, not a refusal to retry.
                now = self._clock()
                due = (
                    now >= current.refresh_due_at
                    and now >= self._cooloff_until
                    and self._dead is None
                )
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
                    raise self._dead
                if now < self._cooloff_until and self._error is not None:
                    raise self._error
                if (
                    generation == self._reactive_generation
                    and now < self._refused_until
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
                error, _ = self._refresh(current, reason="token refused")
                if error is not None:
                    raise error
                self._reactive_generation = self._generation
                self._refused_in_a_row = streak
                self._refused_until = self._clock() + self._backoff(streak + 1)

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
        deadline = time.monotonic() + self._refresh_timeout
        with self._cond:
            while True:
                current = self._load_if_needed()
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
                    raise self._dead
                if now < self._cooloff_until:
                    if still_valid or self._error is None:
                        return current.token, current.generation
                    raise self._error
                error, refreshed = self._refresh(
                    current, reason="token expiring" if still_valid else "token expired"
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
                    raise error
                # The request that refreshed uses the new token even if it is due
                # already (see _install): checking again could refresh without end.
                # A token adopted from the store is checked like any other.
                if refreshed and self._current is not None:
                    return self._current.token, self._current.generation

    def _load_if_needed(self) -> _Current:
        """The current token; loads the store at start, and after a dead login.

        Called with the lock held. After ``invalid_grant`` it reads the store on each
        call, so that a new login (saved by this process or another) is picked up.
        """
        current = self._current
        if current is not None and self._dead is None:
            return current
        stored = self._store.load()
        if current is None and stored is None:
            raise NoTokenError(
                "no token is stored: sign in and save the token to the store"
                f" ({type(self._store).__name__}) before sending requests"
            )
        if stored is not None and stored != self._basis:
            logger.info("loaded a token from the store")
            self._dead = None
            self._error = None
            self._failures_in_a_row = 0
            self._cooloff_until = -math.inf
            return self._install(stored, basis=stored)
        assert current is not None  # noqa: S101 - stored is None or stored == basis
        return current

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
            raise self._error

    def _refresh(self, current: _Current, reason: str) -> tuple[BaseException | None, bool]:
        """Refresh ``current``, with the lock held on entry and exit (not in between).

        Returns ``(error, refreshed)``. On success the error is None and the new token is
        installed; ``refreshed`` says whether this process made it (True) or adopted one
        another process stored (False). Otherwise the caller raises the error; waiters
        get the same one from :meth:`_wait_for_refresh`.
        """
        logger.debug("refreshing generation %d: %s", current.generation, reason)
        self._refreshing = True
        basis = self._basis
        outcome: tuple[Token, bool, bool] | BaseException | None = None
        self._cond.release()
        try:
            outcome = self._obtain(current.token, basis)
        finally:
            self._cond.acquire()
            self._refreshing = False
            self._attempt += 1
            self._cond.notify_all()
            if outcome is None:  # a BaseException such as KeyboardInterrupt is on its way
                self._fail(RefreshError("the token refresh was interrupted"))
        if isinstance(outcome, BaseException):
            self._fail(outcome)
            return outcome, False
        new, adopted, saved = outcome
        self._failures_in_a_row = 0
        self._cooloff_until = -math.inf
        self._error = None
        if adopted:
            self._count(adopted=1)
            logger.info("adopted a token stored by another process or login")
        else:
            self._count(refreshes=1)
        self._install(new, basis=new if saved else basis, fresh=not adopted)
        if not adopted:
            logger.info(
                "token refreshed: generation %d, expires in %s",
                self._generation,
                _describe_expiry(new, self._clock()),
            )
        return None, not adopted

    def _obtain(  # noqa: PLR0911 - one return per outcome reads best here
        self, token: Token, basis: Token | None
    ) -> tuple[Token, bool, bool] | RequestsRefreshError:
        """Reload, then refresh and save, under the store's lock. Runs without our lock.

        Returns ``(token, adopted, saved)`` or the error (wrapped in a library error).
        """
        try:
            with self._store.lock():
                stored = self._store.load()
                if stored is None:
                    return NoTokenError(
                        "the token store was cleared (signed out?): sign in again and save"
                        " the new token to the store"
                    )
                if stored != basis:
                    if not self._is_due(stored):
                        return stored, True, True
                    # Another process stored a token that is already due (its holder
                    # went quiet): adopting it would send a token about to be refused.
                    # Its refresh token is the newest one, so refresh that instead.
                    token = stored
                try:
                    result: object = self._refresher(token)
                except InvalidGrantError:
                    # Not a reason to give up yet: a new login may have been stored
                    # meanwhile by something that does not take the lock.
                    again = self._store.load()
                    if again is not None and again != stored:
                        return again, True, True
                    raise
                if not isinstance(result, Token):
                    return RefreshError(
                        f"the refresher returned {type(result).__name__}, not a Token"
                    )
                new = result
                try:
                    self._store.save(new)
                except TokenStoreConflictError as exc:
                    return self._adopt_newer(exc)
                except RequestsRefreshError as exc:
                    # The old refresh token may be spent already: keep the new token in
                    # memory rather than lose the login, and try to save again next time.
                    logger.error(
                        "the new token could not be saved (%s); it is kept in memory only",
                        exc,
                    )
                    saved = False
                else:
                    saved = True
        except RequestsRefreshError as exc:
            return exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            error: RequestsRefreshError = TokenEndpointUnavailableError(
                f"the refresher could not reach its server ({type(exc).__name__})"
            )
            error.__cause__ = exc
            return error
        except Exception as exc:  # any refresher failure reaches every waiter
            error = RefreshError(f"the refresher raised {type(exc).__name__}")
            error.__cause__ = exc
            return error
        self._call_hook(token, new)
        return new, False, saved

    def _adopt_newer(
        self, conflict: TokenStoreConflictError
    ) -> tuple[Token, bool, bool] | RequestsRefreshError:
        """Adopt the stored token after our save lost to it. Store's lock held.

        A newer token was stored while ours was in flight (our lease on the lock ran out,
        or a new sign-in): the stored one wins, so that every process sharing the store
        goes on with the same token.
        """
        logger.warning("adopting the stored token: %s", conflict)
        newer = self._store.load()
        if newer is None:
            return NoTokenError(
                "the token store was cleared (signed out?) during a refresh: sign in again"
                " and save the new token to the store"
            )
        return newer, True, True

    def _is_due(self, token: Token) -> bool:
        """Whether ``token`` has reached the point where it is refreshed ahead of expiry."""
        due = token.refresh_due_at(self._leeway)
        return due is not None and self._clock() >= due

    def _call_hook(self, old: Token, new: Token) -> None:
        if self._on_refresh is None:
            return
        try:
            self._on_refresh(old, new)
        except Exception as exc:  # a hook must not lose a refreshed token
            logger.error("the on_refresh hook raised %s; ignored", type(exc).__name__)

    def _fail(self, error: BaseException) -> None:
        """Record a failed attempt (lock held)."""
        self._count(failures=1)
        self._failed_attempt = self._attempt
        self._error = error
        if isinstance(error, InvalidGrantError):
            self._dead = error
            logger.error(
                "the token endpoint refused the refresh token (invalid_grant): sign in again"
            )
            return
        if isinstance(error, NoTokenError):
            self._current = None
            self._basis = None
            return
        self._failures_in_a_row += 1
        delay = self._backoff(self._failures_in_a_row)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP))
        self._cooloff_until = self._clock() + delay
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

    def _install(self, token: Token, *, basis: Token | None, fresh: bool = False) -> _Current:
        """Make ``token`` the current one, as a new generation (lock held).

        A ``fresh`` token (just refreshed) that is already due, because our clock is
        ahead of the server's or it lives shorter than the leeway without saying when
        it was issued, is used for a cool-off before the next refresh: refreshing it at
        once would refresh on every request, or forever within one.
        """
        self._generation += 1
        self._basis = basis
        due = token.refresh_due_at(self._leeway)
        now = self._clock()
        if fresh and due is not None and due <= now:
            delay = self._backoff(1)
            logger.warning(
                "the new token is already due for refresh (expires in %s): using it for"
                " %.1f s; check the clock, or lower leeway",
                _describe_expiry(token, now),
                delay,
            )
            due = now + delay
        current = _Current(
            token=token,
            generation=self._generation,
            refresh_due_at=_NO_EXPIRY if due is None else due,
            expires_at=_NO_EXPIRY if token.expires_at is None else token.expires_at,
        )
        self._current = current
        return current

    def _count(self, **increments: int) -> None:
        self._stats = dataclasses.replace(
            self._stats,
            **{name: getattr(self._stats, name) + n for name, n in increments.items()},
        )


def _describe_expiry(token: Token, now: float) -> str:
    remaining = token.expires_in(now)
    return "never (no expiry given)" if remaining is None else f"{remaining:.0f} s"
