"""The multi-process storm the shared-store tests run: P worker processes x T threads on
one store, 1-second tokens, rotation and reuse detection on, and what must hold after."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from requests_refresh import Token
from requests_refresh.testing import AuthorizationServer

from .process import Worker

PROCESSES = 8
THREADS = 16
SECONDS = 10.0
TTL = 1.0


def run_storm(where: str, save: Callable[[Token], None], workers: list[Worker]) -> None:
    """Storm the store ``where`` names (see file_store_worker) and check the outcome.

    ``save`` stores the first login; ``workers`` collects the processes started, for the
    caller's fixture to end. Fails the test unless every request succeeded, no
    ``invalid_grant`` was answered, and each token generation was made by exactly one
    process (one refresh call per generation).
    """
    with AuthorizationServer(access_ttl=TTL) as server:
        save(server.login())
        for _ in range(PROCESSES):
            workers.append(
                Worker("storm", where, server.url, server.client_id, str(THREADS), str(SECONDS))
            )
        for worker in workers:
            worker.expect("ready", timeout=60)
        started = time.monotonic()
        for worker in workers:
            worker.send("go")
        reports = [worker.result(timeout=SECONDS + 60) for worker in workers]
        elapsed = time.monotonic() - started
        served, revoked = server.stats, server.revoked

    failures: dict[str, Any] = {
        outcome: n
        for report in reports
        for outcome, n in report["outcomes"].items()
        if outcome != "ok"
    }
    assert failures == {}, (reports, served, elapsed)
    assert sum(report["requests"] for report in reports) > PROCESSES * THREADS
    assert served.invalid_grant == 0
    assert not revoked
    # Each generation was made by exactly one process; the others adopted it.
    assert served.token_requests == served.refreshes, served
    assert sum(report["stats"]["refreshes"] for report in reports) == served.refreshes
    assert all(report["stats"]["generation"] <= served.refreshes for report in reports)
    # One refresh per half lifetime at most (the refresh-ahead point), not per process.
    assert served.refreshes >= SECONDS / TTL
    assert served.refreshes <= elapsed / (TTL / 2) + 3
