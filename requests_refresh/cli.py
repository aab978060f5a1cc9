"""The ``requests-refresh`` command line (also ``python -m requests_refresh``)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence

import requests

from .adapter import RefreshAdapter
from .oauth2 import RefreshTokenGrant
from .store import MemoryTokenStore
from .testing import AuthorizationServer


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="requests-refresh",
        description="Keep requests sessions authenticated when access tokens expire.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a multi-threaded crawler through expiring tokens against a local server",
        description=(
            "Start an authorization server on 127.0.0.1 with short-lived access tokens,"
            " single-use refresh tokens and reuse detection, then crawl its protected"
            " resource with many threads through RefreshAdapter, and count what happened."
        ),
    )
    demo.add_argument("--threads", type=_positive_int, default=16, help="crawler threads (16)")
    demo.add_argument("--seconds", type=_positive_float, default=6.0, help="crawl time (6)")
    demo.add_argument(
        "--ttl", type=_positive_float, default=2.0, help="access token lifetime in seconds (2)"
    )
    demo.add_argument(
        "--leeway",
        type=float,
        default=0.0,
        help=(
            "refresh this many seconds before expiry; 0 (the default here) waits for the"
            " expiry itself, so the threads hit it together: the storm case"
        ),
    )
    args = parser.parse_args(argv)
    return run_demo(args.threads, args.seconds, args.ttl, args.leeway)


def run_demo(threads: int, seconds: float, ttl: float, leeway: float) -> int:
    """The demo: returns 0 when every request succeeded and the login survived."""
    live = sys.stdout.isatty()
    with AuthorizationServer(access_ttl=ttl) as server:
        print(
            f"authorization server on {server.url}: access tokens live {ttl:g} s,"
            " refresh tokens are single-use, reuse revokes the login"
        )
        store = MemoryTokenStore(server.login())
        grant = RefreshTokenGrant(server.token_url, client_id=server.client_id)
        adapter = RefreshAdapter(store=store, refresher=grant, leeway=leeway, pool_maxsize=threads)
        counts = {"requests": 0, "failures": 0}
        counts_lock = threading.Lock()
        stop = threading.Event()

        def crawl(session: requests.Session) -> None:
            while not stop.is_set():
                try:
                    ok = session.get(server.resource_url, timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                with counts_lock:
                    counts["requests"] += 1
                    counts["failures"] += not ok

        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            print(f"crawling with {threads} threads for {seconds:g} s ...")
            workers = [
                threading.Thread(target=crawl, args=(session,), daemon=True)
                for _ in range(threads)
            ]
            started = time.monotonic()
            for worker in workers:
                worker.start()
            while not stop.wait(0.25 if live else 1.0):
                elapsed = time.monotonic() - started
                if elapsed >= seconds:
                    stop.set()
                line = _progress(elapsed, counts, adapter, server)
                print(f"\r{line}" if live else line, end="" if live else "\n", flush=True)
            for worker in workers:
                worker.join(timeout=30)
            if live:
                print()
        stats, served = adapter.stats, server.stats
        revoked = server.revoked
    rows = [
        ("requests", counts["requests"]),
        ("failed requests", counts["failures"]),
        ("replayed after a 401", stats.replays),
        ("threads that waited for a refresh", stats.waits),
        ("refreshes counted by the server", served.refreshes),
        ("token generations", stats.generation),
        ("invalid_grant answers", served.invalid_grant),
        ("login revoked", "yes" if revoked else "no"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\nsummary")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    healthy = counts["failures"] == 0 and served.invalid_grant == 0 and not revoked
    print(
        "\nevery request succeeded with one refresh per token generation"
        if healthy
        else "\nsomething went wrong: see the counts above"
    )
    return 0 if healthy else 1


def _progress(
    elapsed: float, counts: dict[str, int], adapter: RefreshAdapter, server: AuthorizationServer
) -> str:
    return (
        f"{elapsed:5.1f} s  requests {counts['requests']:>7}  failed {counts['failures']}"
        f"  refreshes {server.stats.refreshes}  replays {adapter.stats.replays}"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
