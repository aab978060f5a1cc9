"""Section 2b: how long blocked threads take to get the new token, without any HTTP.

The storm section measures whole requests, so its "added wait" also holds the cost of T
requests running at once (its control column). This section isolates the coordinator:
T threads released together ask a ``Coordinator`` for a token at an expired token; the
refresher holds for a fixed time, as a token endpoint would, then returns a new token.
Each blocked thread's *wake-up delay* is the time from the refresher returning to its own
``acquire()`` returning: the cost of the ``Condition`` (notify, re-taking the lock) alone.

The *floor* is the same storm with nothing but a ``threading.Event``: T threads wait on
it, one sets it after the same hold. No Python code can hand a value to blocked threads
faster than that on this machine; the ratio says how close the coordinator comes.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from requests_refresh import MemoryTokenStore, Token
from requests_refresh.coordinator import Coordinator

from .report import Section, Table, mark, percentile

TARGET_MS = 2.0


@dataclasses.dataclass(frozen=True)
class WakeupConfig:
    threads: tuple[int, ...] = (1, 8, 32, 128, 256)
    rounds: int = 5
    hold: float = 0.02  # seconds the refresher takes, like a token endpoint round trip
    timeout: float = 30.0


def wakeup_once(threads: int, hold: float, timeout: float) -> tuple[list[float], int]:
    """One storm at the coordinator: (wake-up delays in seconds, refresher calls)."""
    store = MemoryTokenStore(Token("old", "refresh", expires_at=time.time() - 1))
    finished: list[float] = []
    calls: list[Token] = []

    def refresher(token: Token) -> Token:
        calls.append(token)
        time.sleep(hold)  # stands in for the token endpoint's round trip
        finished.append(time.perf_counter())
        return Token("new", "refresh-2", expires_at=time.time() + 3600)

    coordinator = Coordinator(
        store, refresher, leeway=30, refresh_timeout=timeout, cooloff=1, max_cooloff=60
    )
    barrier = threading.Barrier(threads)
    returned: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        barrier.wait(timeout)
        coordinator.acquire()
        done = time.perf_counter()
        with lock:
            returned.append(done)

    workers = [threading.Thread(target=ask) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    if any(worker.is_alive() for worker in workers) or not finished:
        raise RuntimeError("a thread did not get its token in time")
    # The refreshing thread returns right after its own refresh: it has no wake-up.
    delays = sorted(moment - finished[0] for moment in returned)[1:] if threads > 1 else []
    return delays, len(calls)


def event_floor_once(threads: int, hold: float, timeout: float) -> list[float]:
    """The same storm with a bare ``threading.Event``: wake-up delays in seconds."""
    event = threading.Event()
    barrier = threading.Barrier(threads)
    finished: list[float] = []
    returned: list[float] = []
    lock = threading.Lock()

    def ask(first: bool) -> None:
        barrier.wait(timeout)
        if first:
            time.sleep(hold)
            finished.append(time.perf_counter())
            event.set()
            return
        event.wait(timeout)
        done = time.perf_counter()
        with lock:
            returned.append(done)

    workers = [threading.Thread(target=ask, args=(n == 0,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout)
    if any(worker.is_alive() for worker in workers) or not finished:
        raise RuntimeError("a thread did not wake in time")
    return sorted(moment - finished[0] for moment in returned)


def run(config: WakeupConfig) -> Section:
    started = time.monotonic()
    table = Table(
        f"Refresher holding {config.hold * 1000:.0f} ms, {config.rounds} rounds per T",
        [
            "T",
            "refresher calls per round",
            "blocked threads measured",
            "wake-up delay p50 / p99 ms",
            "floor: bare Event p50 / p99 ms",
            "p99 vs floor",
            f"target (p99 ≤ {TARGET_MS:g} ms)",
        ],
    )
    for threads in config.threads:
        delays: list[float] = []
        floor: list[float] = []
        calls: list[int] = []
        for _ in range(config.rounds):  # interleaved: coordinator, floor, coordinator, ...
            round_delays, round_calls = wakeup_once(threads, config.hold, config.timeout)
            delays += round_delays
            calls.append(round_calls)
            floor += event_floor_once(threads, config.hold, config.timeout)
        if delays:
            p99 = percentile(delays, 0.99) * 1000
            floor_p99 = percentile(floor, 0.99) * 1000
            table.add(
                threads,
                "/".join(map(str, calls)),
                len(delays),
                f"{percentile(delays, 0.5) * 1000:.2f} / {p99:.2f}",
                f"{percentile(floor, 0.5) * 1000:.2f} / {floor_p99:.2f}",
                f"{p99 / floor_p99:.2f}" if floor_p99 > 0 else "–",
                mark(p99 <= TARGET_MS),
            )
        else:
            table.add(threads, "/".join(map(str, calls)), 0, "– (no blocked thread)", "–", "–", "")
    return Section(
        "2b. Wake-up of blocked threads, coordinator alone",
        __doc__ or "",
        [table],
        seconds=time.monotonic() - started,
    )
