"""When a refresh may be attempted: the cool-off and refusal bookkeeping, as one value.

A :class:`CoolOff` is immutable. The coordinator holds one and replaces it whole, under
its lock, with what a method returns (as urllib3's ``Retry.increment()`` does); the
questions ("is a failure cooling off?", "was this token refused again too soon?") are
methods of the value, so every rule here can be tested without threads or a server.

Durations end at a :class:`Moment` on two clocks: a wall clock stepped back never
prolongs them, and one moved forward (a test's) ends them without waiting.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable

from .exceptions import LoginRequiredError, NoTokenError
from .token import Token

__all__ = ["PASSED", "RETRY_AFTER_CAP", "CoolOff", "Moment", "describe_expiry"]

#: The longest ``Retry-After`` honoured, in seconds; a larger one is cut to this.
RETRY_AFTER_CAP = 3600.0

logger = logging.getLogger("requests_refresh")


@dataclasses.dataclass(frozen=True, slots=True)
class Moment:
    """A point in time on :func:`time.monotonic` and on the wall clock (``clock``)."""

    monotonic: float
    wall: float

    @classmethod
    def now(cls, clock: Callable[[], float]) -> Moment:
        """This moment; ``clock`` gives the wall time (``time.time`` or a test's)."""
        return cls(time.monotonic(), clock())

    def later(self, seconds: float) -> Moment:
        """The moment ``seconds`` after this one, on both clocks."""
        return Moment(self.monotonic + seconds, self.wall + seconds)

    def before(self, end: Moment) -> bool:
        """Whether ``end`` is still ahead: it has passed once either clock says so."""
        return self.wall < end.wall and self.monotonic < end.monotonic


#: A moment every duration has passed.
PASSED = Moment(-math.inf, -math.inf)


@dataclasses.dataclass(frozen=True, slots=True)
class CoolOff:
    """Whether, and from when, the coordinator may try to refresh again.

    Attributes:
        base: the first cool-off after a failure, in seconds; it doubles with each
            failure in a row, with jitter.
        cap: the longest cool-off (``Retry-After`` aside).
        failures_in_a_row: attempts in a row that brought no usable token: failures,
            and tokens already due on arrival.
        until: no refresh before this moment (after a failure).
        dead: the error that refused the login (``invalid_grant``): no refresh at all
            until a different token is stored.
        reactive_generation: the generation obtained because a token was refused.
        refused_until: ... and refused again before this moment: no refresh for it.
        refused_in_a_row: how many times in a row such a generation was refused again.
    """

    base: float
    cap: float
    failures_in_a_row: int = 0
    until: Moment = PASSED
    dead: LoginRequiredError | None = None
    reactive_generation: int = -1
    refused_until: Moment = PASSED
    refused_in_a_row: int = 0

    def cooling(self, now: Moment) -> bool:
        """Whether a failure is cooling off at ``now``: no refresh until it ends."""
        return now.before(self.until)

    def seconds_left(self, now: Moment) -> float:
        """How long the cool-off lasts from ``now`` on the monotonic clock (for messages)."""
        return max(0.0, self.until.monotonic - now.monotonic)

    def backoff(self, attempt: int, jitter: float) -> float:
        """The cool-off after the ``attempt``-th failure in a row: doubling, with jitter.

        ``jitter`` in [0, 1) picks a point between half the ceiling and the ceiling.
        """
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt - 1, 30))
        low = ceiling / 2
        return low + (ceiling - low) * jitter

    def failed(self, error: BaseException, now: Moment, jitter: float) -> CoolOff:
        """After a refresh that failed with ``error`` at ``now``; logs what follows.

        :class:`NoTokenError` starts no cool-off (there is nothing to refresh); another
        :class:`LoginRequiredError` marks the login dead; anything else cools off, for
        at least the error's ``retry_after`` (at most :data:`RETRY_AFTER_CAP`).
        """
        if isinstance(error, NoTokenError):
            return self
        if isinstance(error, LoginRequiredError):
            logger.error(
                "the login is gone (%s: the refresh token was refused): sign in again and"
                " save the new token to the store",
                type(error).__name__,
            )
            return dataclasses.replace(self, dead=error)
        failures = self.failures_in_a_row + 1
        delay = self.backoff(failures, jitter)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), RETRY_AFTER_CAP))
        logger.warning(
            "token refresh failed (%s: %s); next attempt in %.1f s",
            type(error).__name__,
            error,
            delay,
        )
        return dataclasses.replace(self, failures_in_a_row=failures, until=now.later(delay))

    def arrived(
        self, token: Token, *, fresh: bool, leeway: float, now: Moment, jitter: float
    ) -> CoolOff:
        """After a renewal brought ``token``: ``fresh`` if the refresher just made it.

        A fresh token that is already due for refresh (our clock ahead of the server's,
        absolute expiry times, a lifetime shorter than the leeway without ``issued_at``)
        is used until a cool-off ends: refreshing it at once would refresh on every
        request. It counts as a failure, so that the cool-off grows with each one in a
        row. Any other token ends the cool-off.
        """
        due = token.refresh_due_at(leeway)
        if not fresh or due is None or due > now.wall:
            return dataclasses.replace(self, failures_in_a_row=0, until=PASSED)
        failures = self.failures_in_a_row + 1
        delay = self.backoff(failures, jitter)
        logger.warning(
            "the new token is already due for refresh (expires in %s, leeway %g s),"
            " %d in a row: using it for %.1f s before the next refresh; check the clock"
            " (ours against the server's), the token's issued_at and expires_in (or"
            " expires_at, if your refresher computes it), or lower leeway",
            describe_expiry(token, now.wall),
            leeway,
            failures,
            delay,
        )
        return dataclasses.replace(self, failures_in_a_row=failures, until=now.later(delay))

    def signed_in(self) -> CoolOff:
        """After a different token was found in the store (a new login): start afresh."""
        return dataclasses.replace(self, dead=None, failures_in_a_row=0, until=PASSED)

    def refused_again_too_soon(self, generation: int, now: Moment) -> bool:
        """Whether ``generation``, obtained because a token was refused, is refused again
        before its cool-off ends: the refusal then goes back to the caller, unrefreshed.
        """
        return generation == self.reactive_generation and now.before(self.refused_until)

    def refreshed_on_refusal(
        self, refused: int, obtained: int, now: Moment, jitter: float
    ) -> CoolOff:
        """After a refresh because generation ``refused`` was refused, which brought
        generation ``obtained``.

        A token obtained for a refused request and refused again after its cool-off gets
        one more refresh, and a longer cool-off after that.
        """
        streak = self.refused_in_a_row + 1 if refused == self.reactive_generation else 0
        return dataclasses.replace(
            self,
            reactive_generation=obtained,
            refused_in_a_row=streak,
            refused_until=now.later(self.backoff(streak + 1, jitter)),
        )


def describe_expiry(token: Token, now: float) -> str:
    """When ``token`` expires, for a log message: ``"42 s"``, or that it never does."""
    remaining = token.expires_in(now)
    return "never (no expiry given)" if remaining is None else f"{remaining:.0f} s"
