"""Section 3: P processes x 16 threads sharing one FileTokenStore, or one RedisTokenStore
(the fleet case: each process with its own Redis client), with 1 s tokens.

Every process has its own RefreshAdapter and RefreshTokenGrant on the same token file,
or the same Redis key (a local ``redis-server``, AOF on, where it is installed).
For ``duration`` seconds all threads send requests while tokens expire every second; the
store's lock makes one process refresh each generation and the others adopt its token.
The server counts token endpoint calls, successful refreshes (token generations) and
``invalid_grant``: with single-use refresh tokens and reuse detection, any second call
for one generation would show up as ``invalid_grant`` and a revoked login.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from .authserver import RemoteAuthorizationServer
from .clients import Unavailable, file_token_store
from .report import Section, Table, mark

__all__ = ["CrossProcessConfig", "run"]


@dataclasses.dataclass(frozen=True)
class CrossProcessConfig:
    processes: tuple[int, ...] = (2, 4, 8)
    stores: tuple[str, ...] = ("file", "redis")
    threads: int = 16
    duration: float = 10.0
    access_ttl: float = 1.0


def _store(where: str) -> Any:
    """The store ``where`` names: a Redis URL, or a token file's path."""
    if where.startswith("redis://"):
        from requests_refresh import RedisTokenStore

        return RedisTokenStore(where, "bench")
    return file_token_store(where)


@contextlib.contextmanager
def _redis_url() -> Iterator[str]:
    """A local redis-server for the run, stopped after it; Unavailable without one."""
    try:
        import redis  # noqa: F401 - only to say it is missing

        from tests.redis_server import REDIS_SERVER, RedisServer
    except ImportError as exc:
        raise Unavailable("redis-py is not installed (the redis extra)") from exc
    if REDIS_SERVER is None:
        raise Unavailable("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="requests-refresh-bench-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _worker(
    conn: multiprocessing.connection.Connection,
    path: str,
    server: dict[str, Any],
    threads: int,
    start_at: float,
    duration: float,
) -> None:
    """One process: ``threads`` threads sending requests until the deadline."""
    from requests_refresh import RefreshAdapter, RefreshTokenGrant

    store = _store(path)
    adapter = RefreshAdapter(
        store=store,
        refresher=RefreshTokenGrant(
            server["token_url"], server["client_id"], server["client_secret"]
        ),
        pool_maxsize=threads,
    )
    session = requests.Session()
    adapter.mount(session, server["url"] + "/")
    counts = {"requests": 0, "failures": 0}
    errors: list[str] = []
    mutex = threading.Lock()

    def work() -> None:
        time.sleep(max(0.0, start_at - time.time()))
        done = failed = 0
        while time.time() < start_at + duration:
            try:
                response = session.get(server["resource_url"], timeout=15)
                failed += response.status_code != 200
            except Exception as exc:  # counted, and the first one named
                failed += 1
                with mutex:
                    errors.append(type(exc).__name__)
            done += 1
        with mutex:
            counts["requests"] += done
            counts["failures"] += failed

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(duration + 60)
    stats = adapter.stats
    session.close()
    conn.send(
        {
            **counts,
            "refreshes": stats.refreshes,
            "adopted": stats.adopted,
            "first_error": errors[0] if errors else "",
        }
    )
    conn.close()


def run_once(
    server: RemoteAuthorizationServer,
    processes: int,
    config: CrossProcessConfig,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """One run with ``processes`` processes, on a file or ``redis_url``; figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="requests-refresh-bench-") as directory:
        path = redis_url or os.path.join(directory, "token.json")
        _store(path).save(server.login())
        info = {
            "url": server.url,
            "token_url": server.token_url,
            "resource_url": server.resource_url,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
        }
        context = multiprocessing.get_context("spawn")
        start_at = time.time() + 1.0 + 0.25 * processes  # time for the children to start
        before = server.stats()
        children = []
        for _ in range(processes):
            parent_end, child_end = context.Pipe()
            child = context.Process(
                target=_worker,
                args=(child_end, path, info, config.threads, start_at, config.duration),
                daemon=True,
            )
            child.start()
            child_end.close()
            children.append((child, parent_end))
        results = []
        for child, conn in children:
            if conn.poll(config.duration + 90):
                results.append(conn.recv())
            else:
                results.append(
                    {
                        "requests": 0,
                        "failures": 0,
                        "refreshes": 0,
                        "adopted": 0,
                        "first_error": "process hung",
                    }
                )
            child.join(10)
            if child.is_alive():
                child.kill()
        after = server.stats()
    generations = after.refreshes - before.refreshes
    calls = after.token_requests - before.token_requests
    return {
        "requests": sum(r["requests"] for r in results),
        "failures": sum(r["failures"] for r in results),
        "adopted": sum(r["adopted"] for r in results),
        "generations": generations,
        "calls": calls,
        "invalid_grant": after.invalid_grant - before.invalid_grant,
        "first_error": next((r["first_error"] for r in results if r["first_error"]), ""),
    }


def run(config: CrossProcessConfig) -> Section:
    started = time.monotonic()
    section = Section(
        f"3. Cross-process storm: P processes × {config.threads} threads, one FileTokenStore"
        " or one RedisTokenStore",
        __doc__.split("\n\n", 1)[1] if __doc__ else "",
    )
    table = Table(
        f"{config.access_ttl:g} s access tokens for {config.duration:g} s",
        [
            "store",
            "P",
            "requests",
            "token generations",
            "refresh calls",
            "refresh calls per generation",
            "adopted",
            "invalid_grant",
            "failures",
            "target",
            "notes",
        ],
    )
    with RemoteAuthorizationServer(
        access_ttl=config.access_ttl, client_secret="bench-client-secret"
    ) as server:
        for store in config.stores:
            with contextlib.ExitStack() as stack:
                try:
                    if store == "redis":
                        redis_url: str | None = stack.enter_context(_redis_url())
                    else:
                        redis_url = None
                        file_token_store(
                            os.path.join(tempfile.gettempdir(), "requests-refresh-probe.json")
                        )
                except Unavailable as exc:
                    table.add(store, "–", f"n/a ({exc})", *[""] * 8)
                    continue
                for processes in config.processes:
                    result = run_once(server, processes, config, redis_url)
                    _add_row(table, store, processes, result)
    section.tables.append(table)
    section.seconds = time.monotonic() - started
    return section


def _add_row(table: Table, store: str, processes: int, result: dict[str, Any]) -> None:
    per = result["calls"] / result["generations"] if result["generations"] else 0.0
    ok = (
        result["generations"] > 0
        and result["calls"] == result["generations"]
        and result["invalid_grant"] == 0
        and result["failures"] == 0
    )
    table.add(
        store,
        processes,
        result["requests"],
        result["generations"],
        result["calls"],
        f"{per:.2f}",
        result["adopted"],
        result["invalid_grant"],
        result["failures"],
        mark(ok),
        result["first_error"],
    )
