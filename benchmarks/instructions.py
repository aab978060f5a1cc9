"""Section 1b: client CPU per request, counted in instructions by callgrind.

Timings on a shared machine wander by tens of percent from round to round, too much to
settle a 3 % target. ``valgrind --tool=callgrind`` counts the instructions the client
process executes: the same count for the same work, whatever else the machine is doing.
Each client sends ``few`` and then ``many`` keep-alive GETs to the raw server (in its
own process, not counted); the difference divided by ``many - few`` is the cost of one
request, free of start-up and import costs. Runs only where valgrind is installed; the
RedisTokenStore row also needs redis-server and redis-py (the server runs in its own
process, not counted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .rawserver import RawServer
from .report import Section, Table, mark

TARGET = 1.03
CLIENTS = {
    "base": "HTTPAdapter + static header (baseline)",
    "memory": "RefreshAdapter + MemoryTokenStore",
    "file": "RefreshAdapter + FileTokenStore",
    "redis": "RefreshAdapter + RedisTokenStore",
}
_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class InstructionsConfig:
    few: int = 50
    many: int = 250
    timeout: float = 600.0


def count(
    valgrind: str, client: str, port: int, requests: int, timeout: float, redis_url: str = ""
) -> int:
    """Instructions the client process executes to send ``requests`` requests."""
    result = subprocess.run(  # noqa: S603 - valgrind running our own interpreter and module
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks._instructions_client",
            client,
            str(port),
            str(requests),
            redis_url,
        ],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed: {result.stderr[-500:]}")
    return int(found.group(1))


TITLE = "1b. Fast path, counted: client instructions per request"


@contextlib.contextmanager
def _redis_url() -> Iterator[str | None]:
    """A local redis-server for the RedisTokenStore row, or None where there is none."""
    try:
        import redis  # noqa: F401 - only to see that it is there

        from tests.redis_server import REDIS_SERVER, RedisServer
    except ImportError:
        yield None
        return
    if REDIS_SERVER is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="requests-refresh-bench-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def skipped_in_quick_mode() -> Section:
    """The section's place in a ``--quick`` report: callgrind runs take minutes."""
    return Section(TITLE, "Skipped with `--quick`: the callgrind runs take a few minutes.")


def run(config: InstructionsConfig) -> Section:
    started = time.monotonic()
    table = Table(
        f"Instructions per request ({config.many} − {config.few} requests, 1 thread)",
        ["client", "instructions/request", "vs baseline", f"target (ours ≤ {TARGET:.2f})"],
    )
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        table.notes.append("n/a: valgrind is not installed (Debian: `apt-get install valgrind`).")
        return Section(
            "1b. Fast path, counted: client instructions per request", __doc__ or "", [table]
        )
    per_request: dict[str, float] = {}
    with RawServer() as server, _redis_url() as redis_url:
        for client in CLIENTS:
            if client == "redis" and redis_url is None:
                table.notes.append("RedisTokenStore: n/a (needs redis-server and redis-py).")
                continue
            runs = [
                count(valgrind, client, server.port, n, config.timeout, redis_url or "")
                for n in (config.few, config.many)
            ]
            per_request[client] = (runs[1] - runs[0]) / (config.many - config.few)
    base = per_request["base"]
    for client, label in CLIENTS.items():
        if client not in per_request:
            continue
        ratio = per_request[client] / base
        verdict = "" if client == "base" else mark(ratio <= TARGET)
        table.add(label, f"{per_request[client]:,.0f}", f"{ratio:.4f}", verdict)
    return Section(
        TITLE,
        __doc__ or "",
        [table],
        seconds=time.monotonic() - started,
    )
