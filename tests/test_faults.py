"""Token endpoint faults, the transient failure policy, invalid_grant and endless 401s.

Every test runs real threads against the local :class:`AuthorizationServer` and bounds
every wait: a hang fails the test instead of wedging the suite.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests

from requests_refresh import (
    MemoryTokenStore,
    RefreshAdapter,
    Token,
)
from requests_refresh.coordinator import Refresher
from requests_refresh.testing import AuthorizationServer

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


# -- 2. the transient failure policy ----------------------------------------------------


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
