"""A process that uses a shared token store, driven by the multi-process tests.

Run as ``python -m tests.workers.file_store_worker MODE ...`` with the checkout on
``PYTHONPATH``. It prints one line per step (``ready``, ``locked``, ...) and waits for
a line on stdin where the test must decide what happens next; at the end of stdin it
exits. ``STORE`` is a token file's path, or a Redis URL for a RedisTokenStore with its
options in the fragment (``redis://127.0.0.1:6379/0#key=k&lease=0.5``). Modes:

* ``storm STORE ORIGIN CLIENT_ID THREADS SECONDS``: crawl ``ORIGIN/resource`` with
  THREADS threads through one RefreshAdapter for SECONDS once released; print a JSON
  report.
* ``hold-lock FILE``: take ``store.lock()`` and hold it until killed.
* ``refresh-and-hang STORE ORIGIN CLIENT_ID``: send a request whose token has expired;
  the refresher calls the token endpoint, then hangs before the new token is saved
  until the test writes a line; then print the request's outcome.
* ``save-loop FILE ROUNDS``: ROUNDS times, fork a child that saves in a tight loop and
  kill -9 it at a random moment; after each kill wait for the test to check the file.
* ``save FILE KEY``: save the token read (as JSON) from stdin under KEY.
* ``write-unlocked FILE``: replace the file with one holding the token read from stdin,
  without the lock, as a sign-in tool that knows nothing of it might.
* ``foreign-lock LOCKFILE``: hold a plain ``filelock`` on LOCKFILE until killed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

import filelock
import requests

from requests_refresh import (
    FileTokenStore,
    RedisTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
    TokenStore,
)

#: Saved by ``save-loop``: big enough that a write takes a while to be killed inside.
PADDING = "x" * 64_000


def loop_token(n: int) -> Token:
    """The ``n``-th token ``save-loop`` writes; the test checks it comes back whole."""
    return Token(
        f"access-{n}",
        f"refresh-{n}",
        expires_at=2_000_000_000.0 + n,
        extra={"n": n, "padding": PADDING},
    )


def wait_for_go() -> None:
    """Block until the test writes a line; exit if it closed stdin instead."""
    if not sys.stdin.readline():
        sys.exit(0)


def say(line: str) -> None:
    print(line, flush=True)


def open_store(where: str, lock_timeout: float = 30.0) -> TokenStore:
    """The store ``where`` names: a Redis URL (options in its fragment) or a file path."""
    if where.startswith("redis://"):
        url, _, fragment = where.partition("#")
        options = dict(urllib.parse.parse_qsl(fragment))
        return RedisTokenStore(
            url,
            options.get("key"),
            lock_timeout=lock_timeout,
            lease=float(options.get("lease", 10.0)),
        )
    return FileTokenStore(where, lock_timeout=lock_timeout)


def storm(where: str, origin: str, client_id: str, threads: int, seconds: float) -> None:
    store = open_store(where, lock_timeout=20)
    grant = RefreshTokenGrant(origin + "/token", client_id)
    adapter = RefreshAdapter(store=store, refresher=grant, pool_maxsize=threads)
    counts: Counter[str] = Counter()
    counts_lock = threading.Lock()
    with requests.Session() as session:
        adapter.mount(session, origin + "/")
        say("ready")
        wait_for_go()
        deadline = time.monotonic() + seconds

        def crawl() -> None:
            while time.monotonic() < deadline:
                try:
                    status = session.get(origin + "/resource", timeout=15).status_code
                    outcome = "ok" if status == 200 else f"status {status}"
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                with counts_lock:
                    counts[outcome] += 1

        crawlers = [threading.Thread(target=crawl) for _ in range(threads)]
        for crawler in crawlers:
            crawler.start()
        for crawler in crawlers:
            crawler.join(timeout=seconds + 60)
    stats = adapter.stats
    report: dict[str, Any] = {
        "requests": sum(counts.values()),
        "failures": sum(n for outcome, n in counts.items() if outcome != "ok"),
        "outcomes": dict(counts),
        "stats": {
            "generation": stats.generation,
            "refreshes": stats.refreshes,
            "adopted": stats.adopted,
            "failures": stats.failures,
            "replays": stats.replays,
            "waits": stats.waits,
        },
    }
    say(json.dumps(report))


def hold_lock(path: str) -> None:
    with FileTokenStore(path).lock():
        say("locked")
        wait_for_go()


def refresh_and_hang(where: str, origin: str, client_id: str) -> None:
    grant = RefreshTokenGrant(origin + "/token", client_id)

    def refresher(token: Token) -> Token:
        new = grant(token)
        say("refreshed")
        wait_for_go()
        return new

    adapter = RefreshAdapter(store=open_store(where), refresher=refresher)
    with requests.Session() as session:
        adapter.mount(session, origin + "/")
        try:
            outcome = f"status {session.get(origin + '/resource', timeout=15).status_code}"
        except requests.RequestException as exc:
            outcome = type(exc).__name__
    stats = adapter.stats
    say(json.dumps({"outcome": outcome, "adopted": stats.adopted}))


def save_loop(path: str, rounds: int) -> None:
    store = FileTokenStore(path)
    for round_ in range(rounds):
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: save as fast as it can until it is killed
            os.close(ready_read)
            os.write(ready_write, b"!")
            n = round_ * 1_000_000
            while True:
                store.save(loop_token(n))
                n += 1
        os.close(ready_write)
        os.read(ready_read, 1)  # the child is saving
        os.close(ready_read)
        time.sleep(random.uniform(0, 0.03))  # noqa: S311 - the moment of the kill, not a wait
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        say(f"killed {round_}")
        wait_for_go()


def save(path: str, key: str) -> None:
    token = Token.from_dict(json.loads(sys.stdin.readline()))
    FileTokenStore(path, key).save(token)
    say("saved")


def write_unlocked(path: str) -> None:
    token = Token.from_dict(json.loads(sys.stdin.readline()))
    temp = path + ".signin"
    with open(temp, "w") as file:
        json.dump({"version": 1, "tokens": {"default": token.to_dict()}}, file)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
    say("written")


def foreign_lock(lock_path: str) -> None:
    with filelock.FileLock(lock_path):
        say("locked")
        wait_for_go()


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "storm":
        storm(args[0], args[1], args[2], int(args[3]), float(args[4]))
    elif mode == "hold-lock":
        hold_lock(args[0])
    elif mode == "refresh-and-hang":
        refresh_and_hang(args[0], args[1], args[2])
    elif mode == "save-loop":
        save_loop(args[0], int(args[1]))
    elif mode == "save":
        save(args[0], args[1])
    elif mode == "write-unlocked":
        write_unlocked(args[0])
    elif mode == "foreign-lock":
        foreign_lock(args[0])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
