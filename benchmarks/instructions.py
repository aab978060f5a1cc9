"""Section 1b: client CPU per request, counted in instructions by callgrind.

Timings on a shared machine wander by tens of percent from round to round, too much to
settle a 3 % target. ``valgrind --tool=callgrind`` counts the instructions the client
process executes: the same count for the same work, whatever else the machine is doing.
Each client sends ``few`` and then ``many`` keep-alive GETs to the raw server (in its
own process, not counted); the difference divided by ``many - few`` is the cost of one
request, free of start-up and import costs. Runs only where valgrind is installed.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .rawserver import RawServer
from .report import Section, Table, mark

TARGET = 1.03
CLIENTS = {
    "base": "HTTPAdapter + static header (baseline)",
    "memory": "RefreshAdapter + MemoryTokenStore",
    "file": "RefreshAdapter + FileTokenStore",
}
_ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class InstructionsConfig:
    few: int = 50
    many: int = 250
    timeout: float = 600.0


def count(valgrind: str, client: str, port: int, requests: int, timeout: float) -> int:
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
    with RawServer() as server:
        for client in CLIENTS:
            few = count(valgrind, client, server.port, config.few, config.timeout)
            many = count(valgrind, client, server.port, config.many, config.timeout)
            per_request[client] = (many - few) / (config.many - config.few)
    base = per_request["base"]
    for client, label in CLIENTS.items():
        ratio = per_request[client] / base
        verdict = "" if client == "base" else mark(ratio <= TARGET)
        table.add(label, f"{per_request[client]:,.0f}", f"{ratio:.4f}", verdict)
    return Section(
        TITLE,
        __doc__ or "",
        [table],
        seconds=time.monotonic() - started,
    )
