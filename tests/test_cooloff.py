"""The cool-off and refusal rules, as a frozen value: no threads, no server, no sleeping.

Time is given explicitly as a ``Moment`` (monotonic and wall clock), and jitter as a
number in [0, 1), so every case below is exact.
"""

from __future__ import annotations

import dataclasses

import pytest

from requests_refresh import (
    InvalidGrantError,
    NoTokenError,
    RefreshError,
    Token,
    TokenEndpointUnavailableError,
)
from requests_refresh._cooloff import PASSED, RETRY_AFTER_CAP, CoolOff, Moment

START = Moment(monotonic=1_000.0, wall=1_700_000_000.0)
EARLY = 0.0  # jitter: the shortest cool-off, half the ceiling
LATE = 0.999  # jitter: nearly the whole ceiling


def fresh() -> CoolOff:
    return CoolOff(base=1.0, cap=60.0)


def test_a_new_value_allows_a_refresh_at_once() -> None:
    """Nothing has failed yet: no cool-off, no dead login, no refused generation."""
    cooloff = fresh()
    assert not cooloff.cooling(START)
    assert cooloff.dead is None
    assert not cooloff.refused_again_too_soon(0, START)


def test_a_failure_cools_off_for_the_backoff_then_allows_a_refresh() -> None:
    """After one failure, no refresh for base/2..base seconds (by jitter), then one."""
    cooloff = fresh().failed(RefreshError("boom"), START, EARLY)
    assert cooloff.failures_in_a_row == 1
    assert cooloff.cooling(START.later(0.49))
    assert not cooloff.cooling(START.later(0.5))
    late = fresh().failed(RefreshError("boom"), START, LATE)
    assert late.cooling(START.later(0.99))


def test_methods_return_new_values_and_leave_the_old_one_as_it_was() -> None:
    """The value is frozen: a method returns a new one, like urllib3's Retry.increment()."""
    before = fresh()
    after = before.failed(RefreshError("boom"), START, EARLY)
    assert after is not before
    assert before == fresh()
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.failures_in_a_row = 3  # type: ignore[misc]


def test_the_backoff_doubles_with_each_failure_in_a_row_up_to_the_cap() -> None:
    """1, 2, 4, 8... seconds of ceiling, never more than cap, half of it at least."""
    cooloff = CoolOff(base=1.0, cap=5.0)
    assert all(cooloff.backoff(n, LATE) < min(5.0, 2 ** (n - 1)) for n in (1, 2, 3, 50))
    assert [cooloff.backoff(n, EARLY) for n in (1, 2, 3, 4, 50)] == [0.5, 1.0, 2.0, 2.5, 2.5]


def test_failures_in_a_row_grow_the_cool_off() -> None:
    """Each failure in a row lengthens the next cool-off."""
    cooloff = fresh()
    delays = []
    now = START
    for _ in range(4):
        cooloff = cooloff.failed(RefreshError("boom"), now, EARLY)
        delays.append(cooloff.seconds_left(now))
        now = cooloff.until
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_retry_after_is_honoured_and_capped() -> None:
    """A server's Retry-After lengthens the cool-off, up to RETRY_AFTER_CAP seconds."""
    asked = TokenEndpointUnavailableError("busy", retry_after=30)
    assert fresh().failed(asked, START, EARLY).seconds_left(START) == 30
    greedy = TokenEndpointUnavailableError("busy", retry_after=10 * RETRY_AFTER_CAP)
    assert fresh().failed(greedy, START, EARLY).seconds_left(START) == RETRY_AFTER_CAP


def test_a_refused_login_is_dead_without_a_cool_off() -> None:
    """invalid_grant marks the login dead; no time ends that, only a new login does."""
    error = InvalidGrantError("refresh token revoked")
    cooloff = fresh().failed(error, START, EARLY)
    assert cooloff.dead is error
    assert not cooloff.cooling(START)
    assert cooloff.failures_in_a_row == 0
    revived = cooloff.signed_in()
    assert revived.dead is None


def test_an_empty_store_changes_nothing() -> None:
    """NoTokenError is no failure of the token endpoint: no cool-off, no dead login."""
    cooloff = fresh()
    assert cooloff.failed(NoTokenError("nothing stored"), START, EARLY) is cooloff


def test_a_wall_clock_stepped_back_never_prolongs_a_cool_off() -> None:
    """The cool-off ends once either clock says so: monotonic time passing is enough."""
    cooloff = fresh().failed(RefreshError("boom"), START, EARLY)
    stepped_back = Moment(START.monotonic + 0.5, START.wall - 3600)
    assert not cooloff.cooling(stepped_back)


def test_a_wall_clock_moved_forward_ends_a_cool_off_without_waiting() -> None:
    """A test's clock advanced past the end ends it, with no monotonic time spent."""
    cooloff = fresh().failed(RefreshError("boom"), START, EARLY)
    assert not cooloff.cooling(Moment(START.monotonic, START.wall + 0.5))


def test_a_fresh_token_already_due_cools_off_and_counts_as_a_failure() -> None:
    """A token due on arrival is used until a cool-off ends, which grows in a row."""
    due_now = Token("at", "rt", expires_at=START.wall + 10)  # leeway 30 > 10 s left
    cooloff = fresh().arrived(due_now, fresh=True, leeway=30, now=START, jitter=EARLY)
    assert cooloff.failures_in_a_row == 1
    assert cooloff.cooling(START)
    again = cooloff.arrived(due_now, fresh=True, leeway=30, now=START, jitter=EARLY)
    assert again.seconds_left(START) == 1.0


@pytest.mark.parametrize(
    ("token", "is_fresh"),
    [
        (Token("at", "rt", expires_at=START.wall + 3600), True),
        (Token("at", "rt"), True),
        (Token("at", "rt", expires_at=START.wall + 10), False),
    ],
    ids=["not-due", "no-expiry", "adopted"],
)
def test_a_usable_or_adopted_token_ends_the_cool_off(token: Token, *, is_fresh: bool) -> None:
    """A token not due, or one adopted from the store, resets the failures in a row."""
    cooling = fresh().failed(RefreshError("boom"), START, EARLY)
    after = cooling.arrived(token, fresh=is_fresh, leeway=30, now=START, jitter=EARLY)
    assert after.failures_in_a_row == 0
    assert after.until == PASSED


def test_a_token_refreshed_on_refusal_and_refused_again_soon_is_given_back() -> None:
    """Generation 1, obtained because 0 was refused, is not refreshed again at once."""
    cooloff = fresh().refreshed_on_refusal(0, 1, START, EARLY)
    assert cooloff.refused_again_too_soon(1, START)
    assert not cooloff.refused_again_too_soon(2, START)  # another generation
    assert not cooloff.refused_again_too_soon(1, START.later(0.5))  # after the cool-off


def test_refusals_again_in_a_row_lengthen_the_refusal_cool_off() -> None:
    """Each generation refused again after its cool-off waits longer before the next."""
    first = fresh().refreshed_on_refusal(0, 1, START, EARLY)
    later = START.later(0.5)
    second = first.refreshed_on_refusal(1, 2, later, EARLY)
    assert (first.refused_in_a_row, second.refused_in_a_row) == (0, 1)
    assert second.refused_again_too_soon(2, later.later(0.99))
    assert not second.refused_again_too_soon(2, later.later(1.0))
