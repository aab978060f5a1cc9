"""A stateful property test of the refresh coordinator, on a fake clock with real threads.

Hypothesis interleaves requests (some of them refused with a 401), clock jumps past
refresh-ahead and expiry, refresh successes and failures (transient and
``invalid_grant``) and new logins saved by someone else. Requests run in real threads;
the refresher blocks until a rule decides its outcome, so a refresh can be in flight
while more requests arrive. After every step the threads are settled (each one finished,
blocked in the refresher, or waiting for it) and the invariants are checked.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from requests_refresh import (
    InvalidGrantError,
    MemoryTokenStore,
    RefreshTimeoutError,
    RequestsRefreshError,
    Token,
    TokenEndpointUnavailableError,
)
from requests_refresh.coordinator import Coordinator

TTL = 100.0
LEEWAY = 10.0
REFRESH_TIMEOUT = 5.0
#: How long a step may take to settle, and slack on top of REFRESH_TIMEOUT for waiters.
SETTLE = 5.0

Outcome = Literal["ok", "transient", "invalid_grant"]


class Harness:
    """The fake clock, the controllable refresher and the bookkeeping of threads."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.cond = threading.Condition()
        self.in_flight = 0
        self.max_in_flight = 0
        self.decision: Outcome | None = None
        self.closing = False
        self.issued = 0
        self.refreshed: list[Token] = []  # the tokens each successful refresh replaced
        self.live = 0
        self.waiting = 0

    def clock(self) -> float:
        return self.now

    def token(self, name: str) -> Token:
        self.issued += 1
        return Token(
            f"at-{name}-{self.issued}",
            f"rt-{name}-{self.issued}",
            expires_at=self.now + TTL,
            issued_at=self.now,
        )

    def refresher(self, token: Token) -> Token:
        with self.cond:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.cond.notify_all()
            decided = self.cond.wait_for(
                lambda: self.decision is not None or self.closing, timeout=30
            )
            outcome, self.decision = self.decision, None
            self.in_flight -= 1
            self.cond.notify_all()
        if not decided or outcome is None or outcome == "transient":
            raise TokenEndpointUnavailableError("the token endpoint is down")
        if outcome == "invalid_grant":
            raise InvalidGrantError("refused", error="invalid_grant")
        with self.cond:
            self.refreshed.append(token)
            return self.token("refreshed")

    def note_wait(self, delta: int) -> None:
        with self.cond:
            self.waiting += delta
            self.cond.notify_all()

    def settled(self) -> bool:
        """Every live thread is blocked in the refresher or waiting on it."""
        blocked = 1 if self.in_flight and self.decision is None else 0
        return self.live == blocked + self.waiting and (self.waiting == 0 or blocked == 1)

    def settle(self) -> None:
        with self.cond:
            assert self.cond.wait_for(self.settled, timeout=SETTLE), "threads did not settle"


class ObservedCoordinator(Coordinator):
    """A coordinator that tells the harness when a thread starts and stops waiting."""

    harness: Harness

    def _wait_for_refresh(self, deadline: float) -> None:
        self.harness.note_wait(+1)
        try:
            super()._wait_for_refresh(deadline)
        finally:
            self.harness.note_wait(-1)


class CoordinatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.store = MemoryTokenStore(self.h.token("login"))
        self.coordinator = ObservedCoordinator(
            self.store,
            self.h.refresher,
            leeway=LEEWAY,
            refresh_timeout=REFRESH_TIMEOUT,
            cooloff=1.0,
            max_cooloff=8.0,
            clock=self.h.clock,
        )
        self.coordinator.harness = self.h
        self.threads: list[threading.Thread] = []
        self.results: list[tuple[str, object, float, float]] = []  # kind, value, at, took
        self.logins = 1

    def _run(self, refused: bool) -> None:
        started = time.monotonic()
        kind: str = "error"
        value: object = None
        try:
            token, generation = self.coordinator.acquire()
            kind, value = "token", token
            if token.expires_at is not None:
                assert self.h.now < token.expires_at, "acquire() handed out an expired token"
            if refused:
                replacement = self.coordinator.refused(generation)
                kind, value = "replay", replacement
        except BaseException as exc:
            kind, value = "error", exc
        finally:
            with self.h.cond:
                self.results.append((kind, value, self.h.now, time.monotonic() - started))
                self.h.live -= 1
                self.h.cond.notify_all()

    @rule(refused=st.booleans(), count=st.integers(min_value=1, max_value=3))
    def request(self, refused: bool, count: int) -> None:
        """Requests arrive; with ``refused`` each one's token is then refused (a 401)."""
        for _ in range(count):
            thread = threading.Thread(target=self._run, args=(refused,), daemon=True)
            with self.h.cond:
                self.h.live += 1
            self.threads.append(thread)
            thread.start()
        self.h.settle()

    @rule(seconds=st.sampled_from([0.5, 2.0, 9.0, 45.0, 91.0, 100.0, 500.0]))
    def time_passes(self, seconds: float) -> None:
        """The clock moves: into the refresh-ahead window, past a cool-off, past expiry."""
        self.h.now += seconds

    @precondition(lambda self: self.h.in_flight == 1 and self.h.decision is None)
    @rule(outcome=st.sampled_from(["ok", "ok", "transient", "invalid_grant"]))
    def refresh_ends(self, outcome: Outcome) -> None:
        """The refresh in flight succeeds or fails."""
        with self.h.cond:
            self.h.decision = outcome
            self.h.cond.notify_all()
        self.h.settle()

    @rule()
    def new_login(self) -> None:
        """Someone signs in again and saves the new token to the shared store."""
        self.logins += 1
        self.store.save(self.h.token("login"))

    @invariant()
    def at_most_one_refresh_in_flight(self) -> None:
        assert self.h.max_in_flight <= 1

    @invariant()
    def one_refresh_per_generation(self) -> None:
        refreshed = [token.refresh_token for token in self.h.refreshed]
        assert len(refreshed) == len(set(refreshed)), "a token was refreshed twice"
        stats = self.coordinator.stats
        assert stats.refreshes == len(self.h.refreshed)
        assert stats.generation <= stats.refreshes + stats.adopted + self.logins

    @invariant()
    def every_error_is_ours(self) -> None:
        with self.h.cond:
            errors = [value for kind, value, *_ in self.results if kind == "error"]
        for error in errors:
            assert isinstance(error, RequestsRefreshError), repr(error)

    def teardown(self) -> None:
        with self.h.cond:
            self.h.closing = True
            self.h.cond.notify_all()
        deadline = time.monotonic() + REFRESH_TIMEOUT + SETTLE
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in self.threads), "a request never ended"
        for kind, value, _, took in self.results:
            if kind == "error" and isinstance(value, RefreshTimeoutError):
                assert took <= REFRESH_TIMEOUT + SETTLE, "a waiter outlived its bound"


CoordinatorMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoordinator = CoordinatorMachine.TestCase


def test_a_waiter_gives_up_at_its_bound() -> None:
    """A request waiting on a stuck refresh raises RefreshTimeoutError after the bound.

    Protects against: requests hanging for as long as a token endpoint hangs.
    """
    h = Harness()
    coordinator = ObservedCoordinator(
        MemoryTokenStore(Token("at", "rt", expires_at=h.now - 1, issued_at=h.now - 100)),
        h.refresher,
        leeway=LEEWAY,
        refresh_timeout=0.3,
        cooloff=1.0,
        max_cooloff=8.0,
        clock=h.clock,
    )
    coordinator.harness = h

    def refresh() -> None:
        with pytest.raises(TokenEndpointUnavailableError):
            coordinator.acquire()

    refreshing = threading.Thread(target=refresh)
    refreshing.start()
    with h.cond:
        assert h.cond.wait_for(lambda: h.in_flight == 1, timeout=SETTLE)
    started = time.monotonic()
    with pytest.raises(RefreshTimeoutError):
        coordinator.acquire()
    assert 0.25 <= time.monotonic() - started < 0.3 + SETTLE
    with h.cond:
        h.closing = True
        h.cond.notify_all()
    refreshing.join(timeout=SETTLE)
    assert not refreshing.is_alive()
