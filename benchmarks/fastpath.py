"""Section 1: what a request costs the client when the token is valid (the fast path).

Every client sends keep-alive GETs to the raw server (another process, so that only the
client's CPU is counted). Configurations are interleaved within each round, the order
rotating from round to round, and each figure is a ratio to the baseline *of the same
round*, so that drift of the machine (frequency, other load) cancels out.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time

import requests

from .clients import CLIENTS, Unavailable
from .rawserver import RawServer
from .report import Section, Table, mark, spread

__all__ = ["FastpathConfig", "run"]

CPU_TARGET = 1.03
THROUGHPUT_TARGET = 0.97


@dataclasses.dataclass(frozen=True)
class FastpathConfig:
    rounds: int = 7
    requests_1: int = 500  # per configuration and round, 1 thread
    threads: int = 32
    requests_per_thread: int = 20  # per configuration and round, at `threads` threads


@dataclasses.dataclass
class _Sample:
    cpu: float  # client CPU seconds per request (sum over client threads)
    wall: float  # wall seconds per request (1 thread) or for the whole batch (N threads)
    throughput: float  # requests per second


def _one_thread(session: requests.Session, url: str, count: int) -> _Sample:
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(count):
        session.get(url, timeout=10)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return _Sample(cpu / count, wall / count, count / wall)


def _many_threads(session: requests.Session, url: str, threads: int, count: int) -> _Sample:
    barrier = threading.Barrier(threads + 1)
    cpu_times = [0.0] * threads
    errors: list[BaseException] = []

    def work(index: int) -> None:
        barrier.wait(30)
        cpu0 = time.thread_time()
        try:
            for _ in range(count):
                session.get(url, timeout=10)
        except Exception as exc:  # reported after the join
            errors.append(exc)
        cpu_times[index] = time.thread_time() - cpu0

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait(30)
    wall0 = time.perf_counter()
    for worker in workers:
        worker.join(120)
    wall = time.perf_counter() - wall0
    if errors:
        raise RuntimeError(f"{len(errors)} threads failed: {errors[0]!r}")
    total = threads * count
    return _Sample(sum(cpu_times) / total, wall / total, total / wall)


def _check(session: requests.Session, url: str) -> None:
    response = session.get(url, timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"the raw server answered {response.status_code}")


def run(config: FastpathConfig) -> Section:
    """Measure every client at 1 thread and at ``config.threads`` threads."""
    started = time.monotonic()
    section = Section(
        "1. Fast path: client cost per request",
        f"""
Keep-alive GETs to a raw loopback HTTP/1.1 server in another process, with a valid token
(no refresh). Client CPU is `time.thread_time()` summed over the client threads; the
server's CPU is not included. {config.rounds} rounds, configurations interleaved (order
rotated each round); each figure is a ratio to the baseline of the same round, shown as
median (min–max) over the rounds. Baseline: `requests.Session` + `HTTPAdapter` with a
static `Authorization` header. Every client has a pool of the same size.
""",
    )
    with RawServer() as server:
        url = server.url
        sessions: dict[str, requests.Session] = {}
        unavailable: dict[str, str] = {}
        for client in CLIENTS:
            try:
                session = client.fast(url)
                _check(session, url)
            except Unavailable as exc:
                unavailable[client.name] = str(exc)
                continue
            sessions[client.name] = session
        try:
            section.tables += _measure(config, url, sessions, unavailable)
        finally:
            for session in sessions.values():
                session.close()
    section.seconds = time.monotonic() - started
    return section


def _measure(
    config: FastpathConfig,
    url: str,
    sessions: dict[str, requests.Session],
    unavailable: dict[str, str],
) -> list[Table]:
    names = list(sessions)
    baseline = CLIENTS[0].name
    single: dict[str, list[_Sample]] = {name: [] for name in names}
    multi: dict[str, list[_Sample]] = {name: [] for name in names}
    # Warm up: connections open, code paths imported and cached.
    for name in names:
        _one_thread(sessions[name], url, max(10, config.requests_1 // 10))
        _many_threads(
            sessions[name], url, config.threads, max(2, config.requests_per_thread // 10)
        )
    for round_number in range(config.rounds):
        shift = round_number % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            single[name].append(_one_thread(sessions[name], url, config.requests_1))
        for name in order:
            multi[name].append(
                _many_threads(sessions[name], url, config.threads, config.requests_per_thread)
            )

    def ratios(samples: dict[str, list[_Sample]], name: str, field: str) -> list[float]:
        return [
            getattr(mine, field) / getattr(base, field)
            for mine, base in zip(samples[name], samples[baseline], strict=True)
        ]

    one = Table(
        f"1 thread ({config.requests_1} requests per configuration and round)",
        [
            "client",
            "CPU µs/request",
            "CPU vs baseline",
            "wall µs/request",
            "wall vs baseline",
            "target (ours: CPU ≤ 1.03)",
        ],
    )
    many = Table(
        f"{config.threads} threads ({config.requests_per_thread} requests per thread,"
        " configuration and round)",
        [
            "client",
            "requests/s",
            "throughput vs baseline",
            "CPU µs/request",
            "CPU vs baseline",
            "target (ours: throughput ≥ 0.97)",
        ],
    )
    ours = {client.name for client in CLIENTS if client.ours}
    for client in CLIENTS:
        name = client.name
        if name not in sessions:
            reason = f"n/a ({unavailable.get(name, 'not run')})"
            one.add(name, reason, "", "", "", "")
            many.add(name, reason, "", "", "", "")
            continue
        cpu = [s.cpu * 1e6 for s in single[name]]
        wall = [s.wall * 1e6 for s in single[name]]
        cpu_ratio = ratios(single, name, "cpu")
        target_1 = ""
        if name in ours:
            target_1 = f"{mark(statistics.median(cpu_ratio) <= CPU_TARGET)}"
        one.add(
            name,
            f"{statistics.median(cpu):.1f}",
            spread(cpu_ratio, 3),
            f"{statistics.median(wall):.1f}",
            spread(ratios(single, name, "wall"), 3),
            target_1,
        )
        throughput = [s.throughput for s in multi[name]]
        throughput_ratio = ratios(multi, name, "throughput")
        target_n = ""
        if name in ours:
            target_n = f"{mark(statistics.median(throughput_ratio) >= THROUGHPUT_TARGET)}"
        many.add(
            name,
            f"{statistics.median(throughput):.0f}",
            spread(throughput_ratio, 3),
            f"{statistics.median([s.cpu * 1e6 for s in multi[name]]):.1f}",
            spread(ratios(multi, name, "cpu"), 3),
            target_n,
        )
    return [one, many]
