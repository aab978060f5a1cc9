"""A 401 near the end of a token's life is met with a refresh, never a doomed replay."""

from __future__ import annotations

from requests_refresh import MemoryTokenStore, Token
from requests_refresh.coordinator import Coordinator


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> tuple[Coordinator, list[Token]]:
    """A coordinator over 1-second tokens whose refresher issues t1, t2, ..."""
    issued: list[Token] = []

    def refresher(token: Token) -> Token:
        n = len(issued) + 1
        issued.append(Token(f"t{n}", f"r{n}", expires_at=clock.now + 1, issued_at=clock.now))
        return issued[-1]

    store = MemoryTokenStore(Token("t0", "r0", expires_at=clock.now + 1, issued_at=clock.now))
    coordinator = Coordinator(
        store,
        refresher,
        leeway=30,
        refresh_timeout=5,
        cooloff=4,
        max_cooloff=60,
        clock=clock,
    )
    return coordinator, issued


def test_refused_again_after_its_refresh_point_refreshes_instead_of_giving_up() -> None:
    """A reactive token refused once past half its life is refreshed, not returned as 401."""
    clock = Clock(1000.0)
    coordinator, issued = make(clock)
    assert coordinator.acquire() == (Token("t0", "r0", 1001.0, issued_at=1000.0), 0)
    replay = coordinator.refused(0)  # refused: refreshed for the replay
    assert replay is not None
    assert replay[0].access_token == "t1"
    clock.now += 0.1
    assert coordinator.refused(1) is None  # a fresh token refused again: give up
    clock.now += 0.5  # past t1's refresh point, still within the refusal cool-off
    replay = coordinator.refused(1)
    assert replay is not None
    assert replay[0].access_token == "t2"
    assert len(issued) == 2


def test_replay_never_uses_a_current_token_past_its_refresh_point() -> None:
    """A refusal of an old generation refreshes a current token that is due itself."""
    clock = Clock(1000.0)
    coordinator, issued = make(clock)
    coordinator.acquire()
    clock.now += 0.6  # t0 is due
    assert coordinator.acquire()[0].access_token == "t1"
    clock.now += 0.6  # t1 is due as well, and a request sent with t0 comes back 401
    replay = coordinator.refused(0)
    assert replay is not None
    assert replay[0].access_token == "t2"
    assert len(issued) == 2
