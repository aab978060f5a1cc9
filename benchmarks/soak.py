"""Section 4: a soak. Many requests, a token that expires every second, nothing may grow.

A RefreshAdapter with a MemoryTokenStore sends keep-alive requests to the raw server from
a few threads; its refresher is a plain callable that returns a new one-second token, so
a refresh happens about every half second (ahead of expiry) for the whole run. Resident
memory, open file descriptors and the connections the pool has opened are read after a
warm-up and at the end.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
from itertools import count

import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, Token

from .rawserver import RawServer
from .report import Section, Table, mark

__all__ = ["SoakConfig", "run"]

RSS_TARGET_MIB = 5.0


@dataclasses.dataclass(frozen=True)
class SoakConfig:
    requests: int = 100_000
    threads: int = 8
    warmup: int = 2_000
    token_lifetime: float = 1.0


def _rss() -> int:
    """Resident memory of this process, in bytes."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _connections(adapter: RefreshAdapter) -> tuple[int, int]:
    """(connections opened so far, connections idle in the pool) over all pools."""
    opened = idle = 0
    for key in list(adapter.poolmanager.pools.keys()):
        pool = adapter.poolmanager.pools.get(key)
        if pool is None:
            continue
        opened += pool.num_connections
        idle += pool.pool.qsize() if pool.pool is not None else 0
    return opened, idle


def _send(session: requests.Session, url: str, total: int, threads: int) -> int:
    """Send ``total`` requests from ``threads`` threads; return how many failed."""
    tickets = count()
    failures = [0]
    mutex = threading.Lock()

    def work() -> None:
        failed = 0
        while next(tickets) < total:
            try:
                if session.get(url, timeout=10).status_code != 200:
                    failed += 1
            except requests.RequestException:
                failed += 1
        with mutex:
            failures[0] += failed

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    return failures[0]


def run(config: SoakConfig) -> Section:
    started = time.monotonic()
    section = Section("4. Soak", __doc__.split("\n\n", 1)[1] if __doc__ else "")

    def refresher(token: Token) -> Token:
        now = time.time()
        return Token(
            f"at-{now:.6f}",
            refresh_token=token.refresh_token,
            expires_at=now + config.token_lifetime,
            issued_at=now,
        )

    with RawServer() as server:
        first = refresher(Token("at-0", refresh_token="rt-soak"))
        adapter = RefreshAdapter(
            store=MemoryTokenStore(first), refresher=refresher, pool_maxsize=config.threads
        )
        session = requests.Session()
        adapter.mount(session, server.url)
        failures = _send(session, server.url, config.warmup, config.threads)
        gc.collect()
        rss0, fds0, (opened0, idle0) = _rss(), _fds(), _connections(adapter)
        refreshes0 = adapter.stats.refreshes
        soak_started = time.perf_counter()
        failures += _send(session, server.url, config.requests, config.threads)
        elapsed = time.perf_counter() - soak_started
        gc.collect()
        rss1, fds1, (opened1, idle1) = _rss(), _fds(), _connections(adapter)
        refreshes = adapter.stats.refreshes - refreshes0
        session.close()

    growth = (rss1 - rss0) / 2**20
    table = Table(
        f"{config.requests:,} requests, {config.threads} threads,"
        f" {config.token_lifetime:g} s tokens",
        ["measure", "start", "end", "target"],
    )
    table.add(
        "RSS MiB",
        f"{rss0 / 2**20:.1f}",
        f"{rss1 / 2**20:.1f}",
        f"growth {growth:+.2f} MiB ≤ {RSS_TARGET_MIB:g}: {mark(growth <= RSS_TARGET_MIB)}",
    )
    table.add("open file descriptors", fds0, fds1, f"no growth: {mark(fds1 <= fds0)}")
    table.add("pool connections opened (total)", opened0, opened1, "")
    table.add("pool connections idle", idle0, idle1, "")
    table.add("refreshes during the soak", "", refreshes, "")
    table.add("failed requests", "", failures, f"0: {mark(failures == 0)}")
    table.notes.append(
        f"{config.requests:,} requests in {elapsed:.1f} s"
        f" ({config.requests / elapsed:,.0f} requests/s)."
    )
    section.tables.append(table)
    section.seconds = time.monotonic() - started
    return section
