"""Processes sharing a KeyringTokenStore make one refresh per token generation between
them, with rotating single-use refresh tokens and 1-second access tokens."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest

pytest.importorskip("keyring")  # the rest needs it: skipped where the extra is missing

from requests_refresh import KeyringTokenStore
from requests_refresh.testing import AuthorizationServer

from .keyring_backends import PATH_VARIABLE, JsonFileKeyring

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "workers" / "keyring_storm_worker.py"

PROCESSES = 4
THREADS = 8
SECONDS = 8.0
TTL = 1.0
STARTUP_TIMEOUT = 60.0


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """A queue fed with the lines of ``stream`` by a thread; None at the end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str | None], timeout: float, what: str) -> str:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"a worker did not {what} within {timeout:g} s")
    if line is None:
        pytest.fail(f"a worker exited before it could {what}")
    return line


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_processes_make_one_refresh_per_generation_through_the_keyring(tmp_path: Path) -> None:
    """4 processes x 8 threads for 8 s: no failure, no invalid_grant, refreshes not
    multiplied by the number of processes."""
    with AuthorizationServer(access_ttl=TTL) as server:
        keyring_file = tmp_path / "keyring.json"
        lock_path = tmp_path / "store.lock"
        config: dict[str, Any] = {
            "service": "requests-refresh-storm",
            "username": "storm@example.com",
            "lock_path": str(lock_path),
            "max_part_size": 128,  # every token in parts: the lock-free read is exercised
            "token_url": server.token_url,
            "resource_url": server.resource_url,
            "origin": server.url,
            "client_id": server.client_id,
            "threads": THREADS,
            "seconds": SECONDS,
        }
        KeyringTokenStore(
            config["service"],
            config["username"],
            lock_path=lock_path,
            backend=JsonFileKeyring(keyring_file),
            max_part_size=config["max_part_size"],
            allow_insecure_backend=True,  # a test backend: a JSON file
        ).save(server.login())

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHON_KEYRING_BACKEND"] = "tests.keyring_backends.JsonFileKeyring"
        env[PATH_VARIABLE] = str(keyring_file)
        workers: list[tuple[subprocess.Popen[str], queue.Queue[str | None]]] = []
        try:
            for n in range(PROCESSES):
                with (tmp_path / f"worker-{n}.err").open("w") as stderr:
                    process = subprocess.Popen(
                        [sys.executable, str(WORKER), json.dumps(config)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        text=True,
                        env=env,
                        cwd=ROOT,
                    )
                assert process.stdout is not None
                workers.append((process, _lines(process.stdout)))
            for _, lines in workers:
                assert _next_line(lines, STARTUP_TIMEOUT, "get ready") == "ready"
            for process, _ in workers:  # the start signal: all at once
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            results = []
            for n, (process, lines) in enumerate(workers):
                line = _next_line(lines, SECONDS + 90, "report")
                assert process.wait(timeout=30) == 0, (tmp_path / f"worker-{n}.err").read_text()
                results.append(json.loads(line))
        finally:
            for process, _ in workers:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
                if process.stdin is not None:
                    process.stdin.close()
                if process.stdout is not None:
                    process.stdout.close()
        served = server.stats
        revoked = server.revoked

    print(f"server: {served}; workers: {results}")  # shown by pytest -rP
    assert all(result["alive"] == 0 for result in results)
    assert sum(result["requests"] for result in results) > PROCESSES * THREADS * SECONDS
    assert [result["errors"] for result in results] == [[]] * PROCESSES
    assert sum(result["failures"] for result in results) == 0
    assert served.invalid_grant == 0
    assert not revoked
    # A token is refreshed at half its life: about 2 refreshes a second in all, however
    # many processes share it. Each process refreshing on its own would be 4 times that.
    assert served.refreshes <= SECONDS / (TTL / 2) + 4
    assert served.refreshes >= SECONDS / TTL
    assert sum(result["refreshes"] for result in results) == served.refreshes
    assert sum(result["adopted"] for result in results) > 0
