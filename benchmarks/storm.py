"""Section 2: a refresh storm. T threads hit an expired token at the same moment.

For each client and each T, against the test authorization server (in its own process;
single-use refresh tokens with reuse detection):

1. the client gets a fresh login whose token it believes valid for a few seconds more;
2. *control*: T threads released together each send one request (no refresh is due):
   the latency of T concurrent requests, and warm connections;
3. the token expires; *storm*: T threads released together each send one request.

The server counts the token endpoint calls (``refresh calls``) and ``invalid_grant``
answers; a failure is a request that raised or did not get 200. The *added wait* of a
thread is its latency from the release minus one refresh round-trip and one request
round-trip (medians measured single-threaded just before). For requests-refresh, the
time each thread spent waiting for its token is also measured directly.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import threading
import time
from collections.abc import Callable

import requests

from requests_refresh import RefreshAdapter, RefreshTokenGrant, Token

from .authserver import RemoteAuthorizationServer
from .clients import CLIENTS, Client, Unavailable
from .report import Section, Table, mark, percentile

__all__ = ["StormConfig", "run"]

ADDED_WAIT_TARGET_MS = 2.0


@dataclasses.dataclass(frozen=True)
class StormConfig:
    threads: tuple[int, ...] = (1, 8, 32, 128, 256)
    timeout: float = 30.0  # per request, and per join
    validity: float = 2.0  # seconds the token stays valid for the control phase (+10 ms/T)
    warmup: bool = True  # a first, unreported storm per client (imports, first calls)


@dataclasses.dataclass
class _Phase:
    latencies: list[float]  # seconds from the release to the response, per thread
    failures: int
    first_error: str


@dataclasses.dataclass
class StormResult:
    refresh_calls: int
    invalid_grant: int
    failures: int
    added_ms: list[float]
    control_ms: list[float]
    token_wait_ms: list[float]  # requests-refresh only
    note: str


def _round_trips(server: RemoteAuthorizationServer, samples: int = 5) -> tuple[float, float]:
    """Median single-threaded refresh and request round-trips, in seconds.

    Each refresh sample uses a new grant, hence a new connection, as the first refresh
    of every client in a storm does.
    """
    token = server.login()
    refresh, request = [], []
    for _ in range(samples):
        with RefreshTokenGrant(server.token_url, server.client_id, server.client_secret) as grant:
            started = time.perf_counter()
            token = grant(token)
            refresh.append(time.perf_counter() - started)
    headers = {"Authorization": token.authorization}
    with requests.Session() as session:
        session.get(server.resource_url, headers=headers, timeout=10)
        for _ in range(samples):
            started = time.perf_counter()
            session.get(server.resource_url, headers=headers, timeout=10)
            request.append(time.perf_counter() - started)
    return statistics.median(refresh), statistics.median(request)


def _instrument(session: requests.Session, url: str, released: list[float]) -> list[float]:
    """For a RefreshAdapter: record when each thread got its token (benchmark only)."""
    adapter = session.get_adapter(url)
    times: list[float] = []
    if not isinstance(adapter, RefreshAdapter):
        return times
    coordinator = adapter._coordinator
    acquire: Callable[[], tuple[Token, int]] = coordinator.acquire

    def timed_acquire() -> tuple[Token, int]:
        result = acquire()
        times.append(time.perf_counter() - released[0])
        return result

    coordinator.acquire = timed_acquire  # type: ignore[method-assign]  # benchmark only
    return times


def storm_once(
    client: Client,
    server: RemoteAuthorizationServer,
    threads: int,
    timeout: float,
    validity: float = 2.0,
) -> StormResult:
    """One control phase and one storm for ``client`` at ``threads`` threads."""
    assert client.storm is not None  # noqa: S101 - only clients that can refresh
    refresh_rtt, request_rtt = _round_trips(server)
    validity += 0.01 * threads
    expires_at = time.time() + validity
    session = client.storm(server, server.login(), expires_at)
    try:
        before = server.stats()
        control, _ = _release(session, server.resource_url, threads, timeout, [0.0])
        note = ""
        if time.time() >= expires_at:
            note = "control phase outlasted the token; "
        time.sleep(max(0.0, expires_at - time.time()) + 0.05)
        middle = server.stats()
        released = [0.0]
        token_times = _instrument(session, server.resource_url, released)
        storm, _ = _release(session, server.resource_url, threads, timeout, released)
        after = server.stats()
    finally:
        session.close()
    if middle.token_requests != before.token_requests:
        note += f"{middle.token_requests - before.token_requests} refresh calls in control; "
    if storm.first_error:
        note += f"first failure: {storm.first_error}"
    baseline = refresh_rtt + request_rtt
    return StormResult(
        refresh_calls=after.token_requests - middle.token_requests,
        invalid_grant=after.invalid_grant - middle.invalid_grant,
        failures=storm.failures,
        added_ms=[(x - baseline) * 1e3 for x in storm.latencies],
        control_ms=[x * 1e3 for x in control.latencies],
        token_wait_ms=[(x - refresh_rtt) * 1e3 for x in token_times],
        note=note.strip().rstrip(";"),
    )


def _release(
    session: requests.Session, url: str, threads: int, timeout: float, released: list[float]
) -> tuple[_Phase, float]:
    """Send one request from each of ``threads`` threads, released together.

    The release time is written to ``released[0]``, where instrumentation can read it.
    """
    barrier = threading.Barrier(threads + 1)
    latencies = [float("nan")] * threads
    errors: list[str] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout)
        except threading.BrokenBarrierError:
            errors.append("barrier broken")
            return
        try:
            response = session.get(url, timeout=timeout)
            latencies[index] = time.perf_counter() - released[0]
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}")
        except Exception as exc:  # counted as a failure
            latencies[index] = time.perf_counter() - released[0]
            errors.append(type(exc).__name__)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    released[0] = time.perf_counter()
    barrier.wait(timeout)
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    hung = sum(worker.is_alive() for worker in workers)
    first = errors[0] if errors else ("hung" if hung else "")
    return _Phase(
        [x for x in latencies if not math.isnan(x)], len(errors) + hung, first
    ), released[0]


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{percentile(values, 0.5):.1f} / {percentile(values, 0.99):.1f}"


def run(config: StormConfig) -> Section:
    started = time.monotonic()
    section = Section(
        "2. Refresh storm: T threads at an expired token",
        __doc__.split("\n\n", 1)[1] if __doc__ else "",
    )
    with RemoteAuthorizationServer(access_ttl=60.0, client_secret="bench-client-secret") as server:
        for client in CLIENTS:
            if client.storm is None:
                continue
            table = Table(
                client.name,
                [
                    "T",
                    "refresh calls",
                    "invalid_grant",
                    "failures",
                    "added wait p50 / p99 ms",
                    "control latency p50 / p99 ms",
                    "token wait p50 / p99 ms",
                    "targets",
                    "notes",
                ],
            )
            try:  # a first run, not reported: imports and first-call costs
                if config.warmup:
                    storm_once(client, server, 1, config.timeout, config.validity)
            except Unavailable as exc:
                table.add("–", f"n/a ({exc})", "", "", "", "", "", "", "")
                section.tables.append(table)
                continue
            for threads in config.threads:
                try:
                    result = storm_once(client, server, threads, config.timeout, config.validity)
                except Unavailable as exc:
                    table.add(threads, f"n/a ({exc})", "", "", "", "", "", "", "")
                    break
                ok = (
                    result.refresh_calls == 1
                    and result.invalid_grant == 0
                    and result.failures == 0
                )
                targets = f"1 refresh, 0 errors: {mark(ok)}"
                if client.ours:
                    added_p99 = percentile(result.added_ms, 0.99)
                    targets += f"; p99 ≤ 2 ms: {mark(added_p99 <= ADDED_WAIT_TARGET_MS)}"
                table.add(
                    threads,
                    result.refresh_calls,
                    result.invalid_grant,
                    result.failures,
                    _ms(result.added_ms),
                    _ms(result.control_ms),
                    _ms(result.token_wait_ms) if client.ours else "–",
                    targets,
                    result.note,
                )
            section.tables.append(table)
    section.seconds = time.monotonic() - started
    return section
