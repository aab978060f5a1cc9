"""Token endpoint faults, the transient failure policy, invalid_grant and endless 401s.

Every test runs real threads against the local :class:`AuthorizationServer` and bounds
every wait: a hang fails the test instead of wedging the suite.
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from requests_refresh import (
    InvalidGrantError,
    InvalidTokenResponseError,
    MemoryTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    RequestsRefreshError,
    Token,
    TokenEndpointUnavailableError,
)
from requests_refresh.coordinator import Coordinator, Refresher
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession

THREADS = 16
#: The longest any thread may take to get its answer in a fault case.
BOUND = 10.0
#: The grant's timeout in the timeout case; the server answers later than this.
GRANT_TIMEOUT = 0.5


def expired(token: Token, now: float | None = None) -> Token:
    """``token`` as if it had been issued a minute ago and expired 5 seconds ago."""
    now = time.time() if now is None else now
    return dataclasses.replace(token, expires_at=now - 5, issued_at=now - 65)


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class CountingRefresher:
    """Wraps a refresher and counts its calls: one per refresh attempt."""

    def __init__(self, inner: Refresher) -> None:
        self.inner = inner
        self.calls = 0
        self._mutex = threading.Lock()

    def __call__(self, token: Token) -> Token:
        with self._mutex:
            self.calls += 1
        return self.inner(token)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def run_threads(
    target: Callable[[], object], count: int = THREADS, bound: float = BOUND
) -> tuple[list[object], float]:
    """Run ``target`` in ``count`` threads released together by a barrier.

    Returns every thread's result or exception, and the slowest thread's time. Fails
    the test when a thread has not finished within ``bound`` seconds.
    """
    barrier = threading.Barrier(count)
    outcomes: list[object] = [None] * count
    durations = [0.0] * count

    def work(i: int) -> None:
        barrier.wait(timeout=bound)
        started = time.monotonic()
        try:
            outcomes[i] = target()
        except BaseException as exc:
            outcomes[i] = exc
        durations[i] = time.monotonic() - started

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + bound + 5
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still waiting after {bound} s: {stuck}"
    return outcomes, max(durations)


# -- 1. token endpoint faults -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fault:
    """One way the token endpoint can fail, and the error every thread must get."""

    status: int = 500
    body: bytes | str | dict[str, Any] = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    refused: bool = False
    error: type[Exception] = TokenEndpointUnavailableError
    retry_after: float | None = None


FAULTS = {
    "http-500": Fault(500),
    "http-502": Fault(502, body="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"}),
    "http-503-retry-after": Fault(503, headers={"Retry-After": "7"}, retry_after=7.0),
    "http-429-retry-after": Fault(
        429, body={"error": "slow_down"}, headers={"Retry-After": "12"}, retry_after=12.0
    ),
    "timeout": Fault(200, delay=GRANT_TIMEOUT * 4),
    "connection-reset": Fault(reset=True),
    "connection-refused": Fault(refused=True),
    "html-page": Fault(
        200,
        body="<!doctype html><html><body>Sign in</body></html>",
        headers={"Content-Type": "text/html"},
        error=InvalidTokenResponseError,
    ),
    "invalid-json": Fault(
        200,
        body='{"access_token": "at-x", ',
        headers={"Content-Type": "application/json"},
        error=InvalidTokenResponseError,
    ),
    "no-access-token": Fault(
        200, body={"token_type": "Bearer", "expires_in": 60}, error=InvalidTokenResponseError
    ),
    **{
        f"expires_in-{name}": Fault(
            200,
            body={"access_token": "at-new", "token_type": "Bearer", "expires_in": value},
            error=InvalidTokenResponseError,
        )
        for name, value in (
            ("negative", -60),
            ("negative-string", "-1"),
            ("string", "one hour"),
            ("absurd", 10**12),
        )
    },
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_fault_reaches_every_thread_once(
    server: AuthorizationServer, make_session: MakeSession, fault: Fault
) -> None:
    """16 threads on an expired token, one failing refresh: one call, one typed error.

    Protects against: a refresh per thread (a stampede on a failing endpoint), threads
    hanging on a refresh that failed, untyped or differing errors per thread, and a
    broken answer being saved over the stored login.
    """
    original = expired(server.login())
    store = MemoryTokenStore(original)
    token_url = f"http://127.0.0.1:{closed_port()}/token" if fault.refused else server.token_url
    refresher = CountingRefresher(
        RefreshTokenGrant(token_url, server.client_id, timeout=GRANT_TIMEOUT)
    )
    if not fault.refused:
        server.fail_next(
            fault.status,
            body=fault.body,
            headers=fault.headers,
            delay=fault.delay,
            reset=fault.reset,
        )
    session, adapter = make_session(store=store, refresher=refresher)

    outcomes, slowest = run_threads(lambda: session.get(server.resource_url, timeout=BOUND))

    assert all(isinstance(outcome, fault.error) for outcome in outcomes), outcomes
    causes = {id(getattr(outcome, "__cause__", None)) for outcome in outcomes}
    assert len(causes) == 1, "threads got different errors"
    error = outcomes[0]
    if fault.retry_after is not None:
        assert isinstance(error, TokenEndpointUnavailableError)
        assert error.retry_after == fault.retry_after
    assert refresher.calls == 1
    assert server.stats.token_requests == (0 if fault.refused else 1)
    assert server.stats.refreshes == 0
    assert server.stats.resource_requests == 0, "a request went out with the expired token"
    assert store.load() == original
    assert adapter.stats.failures == 1
    assert slowest < BOUND


# -- 2. the transient failure policy ----------------------------------------------------


def test_retry_after_is_honoured_before_the_next_attempt(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """No new attempt before the server's Retry-After, then one, which succeeds.

    Protects against: hammering a token endpoint that asked us to back off, and against
    a cool-off that never ends.
    """
    clock = Clock()
    store = MemoryTokenStore(expired(server.login()))
    session, adapter = make_session(store=store, clock=clock, cooloff=1.0)
    server.fail_next(503, headers={"Retry-After": "30"})

    with pytest.raises(TokenEndpointUnavailableError) as first:
        session.get(server.resource_url, timeout=BOUND)
    for step in (1.0, 10.0, 18.9):  # 29.9 s after the failure: still cooling off
        clock.advance(step)
        with pytest.raises(TokenEndpointUnavailableError) as later:
            session.get(server.resource_url, timeout=BOUND)
        assert later.value.__cause__ is first.value.__cause__  # the same error, again
    assert server.stats.token_requests == 1

    clock.advance(0.2)
    assert session.get(server.resource_url, timeout=BOUND).status_code == 200
    assert server.stats.token_requests == 2
    assert adapter.stats.refreshes == 1


def test_a_request_storm_on_a_failing_endpoint_is_one_attempt_per_cooloff(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """Hundreds of requests during a cool-off make no token endpoint call.

    Protects against: a thousand requests a second turning into a thousand refreshes a
    second while the token endpoint is down.
    """
    clock = Clock()
    store = MemoryTokenStore(expired(server.login()))
    session, _ = make_session(store=store, clock=clock, cooloff=5.0)
    server.fail_next(500, times=1000)

    def storm() -> int:
        errors = 0
        for _ in range(25):
            try:
                session.get(server.resource_url, timeout=BOUND)
            except TokenEndpointUnavailableError:
                errors += 1
        return errors

    outcomes, _ = run_threads(storm, count=8)
    assert outcomes == [25] * 8
    assert server.stats.token_requests == 1

    clock.advance(5.01)  # past the longest first cool-off
    outcomes, _ = run_threads(storm, count=8)
    assert outcomes == [25] * 8
    assert server.stats.token_requests == 2


def attempt_times(cooloff: float, max_cooloff: float, attempts: int) -> list[float]:
    """When a coordinator on an expired token makes its attempts, on a fake clock.

    The clock moves in steps of 1/100 of the cool-off; a request at each step.
    """
    now = [1_000_000.0]
    calls: list[float] = []

    def refresher(token: Token) -> Token:
        calls.append(now[0])
        raise TokenEndpointUnavailableError("down")

    coordinator = Coordinator(
        MemoryTokenStore(expired(Token("at", "rt"), now=now[0])),
        refresher,
        leeway=30.0,
        refresh_timeout=5.0,
        cooloff=cooloff,
        max_cooloff=max_cooloff,
        clock=lambda: now[0],
    )
    while len(calls) < attempts:
        with pytest.raises(TokenEndpointUnavailableError):
            coordinator.acquire()
        now[0] += cooloff / 100
    return calls


def test_cooloff_backs_off_with_jitter_up_to_its_cap() -> None:
    """Each failure in a row doubles the cool-off (with jitter), up to max_cooloff.

    Protects against: retrying a failing endpoint at a fixed rate, clients retrying in
    lock-step (no jitter), and a cool-off that grows without bound.
    """
    attempts = attempt_times(1.0, 8.0, 7)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for n, gap in enumerate(gaps, start=1):
        ceiling = min(8.0, 2.0 ** (n - 1))
        assert ceiling / 2 - 0.02 <= gap <= ceiling + 0.02, (n, gaps)
    assert gaps[3] > gaps[0]
    first_gaps = {round(b - a, 2) for a, b in (attempt_times(1.0, 8.0, 2) for _ in range(8))}
    assert len(first_gaps) > 1, "no jitter: every client would retry in lock-step"


def test_a_still_valid_token_stays_in_use_when_an_early_refresh_fails(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """Inside the refresh-ahead window a failed refresh costs nothing: requests go on.

    Protects against: failing requests whose token is still good because the refresh
    ahead of expiry failed, and against retrying that refresh on every request.
    """
    clock = Clock()
    session, adapter = make_session(clock=clock, leeway=30.0)
    clock.advance(45.0)  # 60 s tokens: due at 30 s, still valid for 15 s
    server.fail_next(500, times=1000)

    outcomes, _ = run_threads(
        lambda: [session.get(server.resource_url, timeout=BOUND).status_code for _ in range(10)]
    )
    assert outcomes == [[200] * 10] * THREADS
    assert server.stats.token_requests == 1
    assert adapter.stats.failures == 1

    clock.advance(1.01)  # the first cool-off (at most 1 s) is over: one more attempt
    assert session.get(server.resource_url, timeout=BOUND).status_code == 200
    assert server.stats.token_requests == 2


@pytest.mark.parametrize("lifetime", [10.0, -5.0], ids=["shorter-than-leeway", "born-expired"])
def test_a_refreshed_token_that_is_already_due_is_not_refreshed_per_request(
    server: AuthorizationServer, lifetime: float
) -> None:
    """A refresher whose tokens are due at once (clock skew, short life): no storm.

    Protects against: a request refreshing without end inside one ``send()`` (each new
    token is due again, so the loop never exits), and a refresh per request after it,
    e.g. a custom refresher passing on the server's ``expiresAt`` from a clock that is
    behind ours, or 10-second tokens with the default 30-second leeway.
    """
    calls: list[float] = []

    def refresher(token: Token) -> Token:
        calls.append(time.time())
        if len(calls) > 50:
            raise RuntimeError("refreshing without end")
        return Token(server.login().access_token, "rt", expires_at=time.time() + lifetime)

    store = MemoryTokenStore(Token("at-start", "rt", expires_at=time.time() - 1))
    adapter = RefreshAdapter(store=store, refresher=refresher, cooloff=5.0)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        outcomes, _ = run_threads(
            lambda: [
                session.get(server.resource_url, timeout=BOUND).status_code for _ in range(10)
            ]
        )
    assert outcomes == [[200] * 10] * THREADS
    assert len(calls) == 1


# -- 3. invalid_grant --------------------------------------------------------------------


def test_invalid_grant_fails_fast_until_a_new_login_is_stored(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """After invalid_grant, requests fail at once; a new login in the store revives them.

    Protects against: calling the token endpoint again with a refresh token it refused
    (which some servers count as an attack), and against needing a restart after the
    user signs in again.
    """
    original = expired(server.login())
    store = MemoryTokenStore(original)
    session, adapter = make_session(store=store)
    server.revoke()

    with pytest.raises(InvalidGrantError):
        session.get(server.resource_url, timeout=BOUND)
    assert server.stats.token_requests == 1

    outcomes, slowest = run_threads(lambda: session.get(server.resource_url, timeout=BOUND))
    assert all(isinstance(outcome, InvalidGrantError) for outcome in outcomes)
    assert slowest < 1.0
    store.save(original)  # the same login saved again is not a new login
    with pytest.raises(InvalidGrantError):
        session.get(server.resource_url, timeout=BOUND)
    assert server.stats.token_requests == 1

    # The user signs in again, in another thread (or process) that shares the store.
    relogin = threading.Thread(target=lambda: store.save(server.login()))
    relogin.start()
    relogin.join(timeout=BOUND)
    assert session.get(server.resource_url, timeout=BOUND).status_code == 200
    assert server.stats.token_requests == 1
    assert adapter.stats.generation == 1


def test_invalid_grant_during_refresh_ahead_keeps_the_valid_token_until_expiry(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A refused early refresh does not break requests while the token is valid.

    Protects against: failing requests early because the login died, and against
    retrying the dead refresh token on every request until then.
    """
    clock = Clock()
    session, _ = make_session(clock=clock, leeway=30.0)
    clock.advance(45.0)
    server.fail_next(400, body={"error": "invalid_grant"}, times=1000)
    statuses = [session.get(server.resource_url, timeout=BOUND).status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert server.stats.token_requests == 1
    clock.advance(16.0)  # now expired: the dead login shows
    with pytest.raises(InvalidGrantError):
        session.get(server.resource_url, timeout=BOUND)
    assert server.stats.token_requests == 1


# -- 4. a resource server that refuses everything ----------------------------------------


def test_endless_401_makes_at_most_two_refreshes_in_ten_requests(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A 401 to everything: no loop, no refresh per request, every 401 comes back.

    Protects against: a refresh (and a rotated refresh token) per request, and an
    endless refresh-and-replay loop, when a 401 really means "no permission".
    """
    server.always_refuse = True
    session, adapter = make_session()
    statuses = [session.get(server.resource_url, timeout=BOUND).status_code for _ in range(10)]
    assert statuses == [401] * 10
    assert server.stats.refreshes <= 2
    assert server.stats.resource_requests <= 20, "a request was replayed more than once"
    assert adapter.stats.refreshes <= 2


def test_endless_401_from_many_threads_makes_one_refresh(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """16 threads getting 401 on every request share one refresh, then stop refreshing.

    Protects against: a refresh per thread or per request when the resource server
    refuses every token.
    """
    clock = Clock()
    server.always_refuse = True
    session, _ = make_session(clock=clock)
    outcomes, _ = run_threads(
        lambda: [session.get(server.resource_url, timeout=BOUND).status_code for _ in range(5)]
    )
    assert outcomes == [[401] * 5] * THREADS
    assert server.stats.refreshes == 1


def test_endless_401_refreshes_again_only_after_a_growing_cooloff(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A token refused right after a 401-triggered refresh is refreshed again only later.

    Protects against: giving up forever on refusals (a real revocation must still be
    recovered from), and against refreshing again at a fixed, short interval.
    """
    clock = Clock()
    server.always_refuse = True
    session, _ = make_session(clock=clock, cooloff=1.0, max_cooloff=60.0)
    for _ in range(3):
        assert session.get(server.resource_url, timeout=BOUND).status_code == 401
    assert server.stats.refreshes == 1
    clock.advance(2.01)  # past the first cool-off (at most 2 s): one more refresh
    for _ in range(3):
        assert session.get(server.resource_url, timeout=BOUND).status_code == 401
    assert server.stats.refreshes == 2
    clock.advance(1.01)  # the second cool-off is at least 2 s: none yet
    assert session.get(server.resource_url, timeout=BOUND).status_code == 401
    assert server.stats.refreshes == 2


def test_endless_401_never_loops_on_a_token_from_an_unknown_refresher(
    server: AuthorizationServer,
) -> None:
    """A custom refresher whose tokens are always refused: one replay per request.

    Protects against: a replay loop when the refresher hands back tokens the resource
    server never accepts.
    """
    server.always_refuse = True
    counter = iter(range(1_000_000))

    def refresher(token: Token) -> Token:
        return Token(f"at-{next(counter)}", "rt", expires_at=time.time() + 600)

    adapter = RefreshAdapter(store=MemoryTokenStore(Token("at-start", "rt")), refresher=refresher)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        statuses = [session.get(server.resource_url, timeout=BOUND).status_code for _ in range(10)]
    assert statuses == [401] * 10
    assert adapter.stats.refreshes <= 2
    assert server.stats.resource_requests <= 20


def test_errors_are_request_exceptions() -> None:
    """Every fault above surfaces as a requests.RequestException subclass."""
    for fault in FAULTS.values():
        assert issubclass(fault.error, RequestsRefreshError)
        assert issubclass(fault.error, requests.RequestException)
