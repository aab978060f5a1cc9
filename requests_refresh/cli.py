"""The ``requests-refresh`` command line (also ``python -m requests_refresh``)."""

from __future__ import annotations

import argparse
import datetime
import sys
import threading
import time
from collections.abc import Sequence

import requests

from .adapter import RefreshAdapter
from .exceptions import TokenStoreError
from .oauth2 import RefreshTokenGrant
from .stores import MemoryTokenStore, TokenStore
from .stores.file_store import DEFAULT_KEY, FileTokenStore
from .stores.keyring_store import KeyringTokenStore
from .stores.redis_store import RedisTokenStore
from .testing import AuthorizationServer
from .token import Token


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
    _add_token_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "token":
        return run_token_command(args)
    return run_demo(args.threads, args.seconds, args.ttl, args.leeway)


def _add_token_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token",
        help="show or clear a stored token",
        description="Show what a token store holds (secrets masked), or remove it.",
    )
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary in (
        ("show", "print the stored token: secrets masked, expiry in human terms"),
        ("clear", "remove the stored token (one key of a token file)"),
    ):
        action = actions.add_parser(name, help=summary, description=summary)
        where = action.add_mutually_exclusive_group(required=True)
        where.add_argument("--file", metavar="PATH", help="a FileTokenStore's JSON file")
        where.add_argument(
            "--keyring",
            nargs=2,
            metavar=("SERVICE", "USERNAME"),
            help="a KeyringTokenStore's entry in the OS keyring",
        )
        where.add_argument(
            "--redis",
            metavar="URL",
            help="a RedisTokenStore's server: redis://[[user]:password@]host[:port][/db],"
            " rediss://... or unix://...",
        )
        action.add_argument(
            "--key",
            help=f"the login's key in the file or in Redis (default: {DEFAULT_KEY!r})",
        )


def run_token_command(args: argparse.Namespace) -> int:
    """``token show`` / ``token clear``: returns the exit status."""
    if args.key is not None and args.file is None and args.redis is None:
        print("requests-refresh: --key goes with --file or --redis", file=sys.stderr)
        return 2
    try:
        store, where = _open_store(args)
        if args.action == "clear":
            if store.load() is None:
                print(f"nothing to clear: no token is stored in {where}")
            else:
                store.clear()
                print(f"removed the token stored in {where}")
            return 0
        token = store.load()
    except (TokenStoreError, ImportError) as exc:
        print(f"requests-refresh: {exc}", file=sys.stderr)
        return 1
    if token is None:
        print(
            f"requests-refresh: no token is stored in {where}: sign in, then save the token"
            " with store.save(token)",
            file=sys.stderr,
        )
        return 1
    print(f"token stored in {where}")
    for name, value in describe_token(token, time.time()):
        print(f"  {name:<14} {value}")
    return 0


def _open_store(args: argparse.Namespace) -> tuple[TokenStore, str]:
    if args.file is not None:
        store = FileTokenStore(args.file, args.key)
        return store, f"{store.path} under key {store.key!r}"
    if args.redis is not None:
        # Constructing it imports redis-py: an ImportError here names the extra to install.
        try:
            redis_store = RedisTokenStore(args.redis, args.key)
        except ValueError as exc:  # a URL it cannot parse; the message never quotes it
            raise TokenStoreError(str(exc)) from None
        return redis_store, f"Redis at {redis_store.server} under key {redis_store.key!r}"
    service, username = args.keyring
    # Constructing it imports keyring: an ImportError here names the extra to install.
    return KeyringTokenStore(service, username), f"the keyring ({service!r}, {username!r})"


def describe_token(token: Token, now: float) -> list[tuple[str, str]]:
    """The rows ``token show`` prints: every field, secrets masked."""
    rows = [
        ("access_token", _mask(token.access_token)),
        ("refresh_token", _mask(token.refresh_token)),
        ("token_type", token.token_type),
        ("scope", token.scope if token.scope is not None else "<none>"),
        ("issued_at", _moment(token.issued_at, now, "issued")),
        ("expires_at", _moment(token.expires_at, now, "expires")),
    ]
    if token.extra:
        rows.append(("extra fields", ", ".join(sorted(map(str, token.extra)))))
    return rows


def _mask(secret: str | None) -> str:
    return "<none>" if secret is None else f"<set, {len(secret)} chars>"


def _moment(when: float | None, now: float, verb: str) -> str:
    if when is None:
        return "never (no expiry given)" if verb == "expires" else "<unknown>"
    iso = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    span = _duration(abs(when - now))
    if verb == "issued":
        relative = f"{span} ago" if when <= now else f"in {span} (clock skew?)"
    else:
        relative = f"expires in {span}" if when > now else f"expired {span} ago"
    return f"{iso} ({relative})"


def _duration(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``12 days``: rounded to the unit that reads best."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


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
