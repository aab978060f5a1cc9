"""The ``requests-refresh`` command line (also ``python -m requests_refresh``)."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Sequence

from . import __version__
from .exceptions import RequestsRefreshError, TokenStoreError
from .oauth2 import browser_login, device_login, revoke_token
from .stores import TokenStore
from .stores.file_store import DEFAULT_KEY, FileTokenStore
from .stores.keyring_store import KeyringTokenStore
from .stores.redis_store import RedisTokenStore
from .token import Token


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="requests-refresh",
        description="Keep requests sessions authenticated when access tokens expire.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a multi-threaded crawler through expiring tokens against a local server",
        description=(
            "Crawl a protected resource with many threads through expiring tokens, twice:"
            " first with a naive client in which every thread refreshes on its own 401,"
            " then through RefreshAdapter, each against a fresh authorization server on"
            " 127.0.0.1 with short-lived access tokens, single-use refresh tokens and"
            " reuse detection; then compare what happened."
        ),
    )
    demo.add_argument("--threads", type=_positive_int, default=16, help="crawler threads (16)")
    demo.add_argument(
        "--seconds", type=_positive_float, default=4.0, help="time of each of the 2 crawls (4)"
    )
    demo.add_argument(
        "--ttl", type=_positive_float, default=2.0, help="access token lifetime in seconds (2)"
    )
    demo.add_argument(
        "--leeway",
        type=_non_negative_float,
        default=0.0,
        help=(
            "RefreshAdapter refreshes this many seconds before expiry (at most half the"
            " lifetime) while requests go on; 0, the default here (the library's is 30),"
            " turns refresh-ahead off: the threads meet the expiry together, wait for one"
            " refresh, and requests in flight get a 401 and are replayed"
        ),
    )
    _add_token_commands(commands)
    _add_login_command(commands)
    args = parser.parse_args(argv)
    if args.command == "token":
        return run_token_command(args)
    if args.command == "login":
        return run_login_command(args)
    # Imported here: the demo needs the test server, which the library never imports.
    from ._demo import run_demo  # noqa: PLC0415

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
        add_store_options(action)
        if name == "clear":
            action.add_argument(
                "--revoke",
                action="store_true",
                help=(
                    "first revoke the token at the server's revocation endpoint (RFC 7009);"
                    " needs --issuer and --client-id"
                ),
            )
            _add_client_options(action, required=False)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose a token store; :func:`_open_store` opens it."""
    where = parser.add_mutually_exclusive_group(required=True)
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
    parser.add_argument(
        "--key", help=f"the login's key in the file or in Redis (default: {DEFAULT_KEY!r})"
    )


def _add_client_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--issuer", required=required, help="the authorization server's issuer URL"
    )
    parser.add_argument("--client-id", required=required, help="the client identifier")
    parser.add_argument(
        "--client-secret-env",
        metavar="VAR",
        help="read the client secret from this environment variable (never from the command line)",
    )


def _add_login_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "sign in (device code or browser) and save the token to a store"
    login = commands.add_parser(
        "login",
        help=summary,
        description=(
            "Sign in at an OAuth 2.0 authorization server found by discovery, and save the"
            " token to the store. --device shows a code to enter on any device (RFC 8628);"
            " --browser opens the sign-in page in a browser ($BROWSER, as Python's"
            " webbrowser module chooses) and receives the answer on 127.0.0.1 (RFC 8252,"
            " PKCE). The URL is always printed too."
        ),
    )
    flow = login.add_mutually_exclusive_group(required=True)
    flow.add_argument("--device", action="store_true", help="the device code flow")
    flow.add_argument("--browser", action="store_true", help="the browser flow")
    _add_client_options(login, required=True)
    login.add_argument("--scope", help="the scope to ask for (space-separated)")
    login.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        help="give up after this many seconds (300)",
    )
    add_store_options(login)


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of options argparse cannot check, or None."""
    if args.key is not None and args.file is None and args.redis is None:
        return "--key goes with --file or --redis"
    if getattr(args, "revoke", False) and (args.issuer is None or args.client_id is None):
        return "--revoke needs --issuer and --client-id"
    return None


def _client_secret(args: argparse.Namespace) -> str | None:
    """The client secret from ``--client-secret-env``; raises ValueError if unset."""
    if args.client_secret_env is None:
        return None
    secret = os.environ.get(args.client_secret_env)
    if not secret:
        raise ValueError(
            f"--client-secret-env names {args.client_secret_env}, which is not set: export"
            " the client secret in that variable"
        )
    return secret


def run_login_command(args: argparse.Namespace) -> int:
    """``login``: returns the exit status."""
    problem = _usage_problem(args)
    if problem is not None:
        return _fail(problem, 2)
    try:
        secret = _client_secret(args)
        store, where = _open_store(args)
        options = {
            "issuer": args.issuer,
            "client_secret": secret,
            "scope": args.scope,
            "timeout": args.timeout,
        }
        if args.device:
            token = device_login(args.client_id, **options)
        else:
            token = browser_login(args.client_id, **options)
        store.save(token)
    except ValueError as exc:
        return _fail(exc, 2)
    except (RequestsRefreshError, ImportError) as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        return _fail("login cancelled", 130)
    _print_token(f"signed in; the token is saved in {where}", token)
    return 0


def run_token_command(args: argparse.Namespace) -> int:
    """``token show`` / ``token clear``: returns the exit status."""
    problem = _usage_problem(args)
    if problem is not None:
        return _fail(problem, 2)
    try:
        store, where = _open_store(args)
        if args.action == "clear":
            return _clear(args, store, where)
        token = store.load()
    except ValueError as exc:
        return _fail(exc, 2)
    except (RequestsRefreshError, ImportError) as exc:
        return _fail(exc, 1)
    if token is None:
        return _fail(
            f"no token is stored in {where}: sign in, then save the token with store.save(token)",
            1,
        )
    _print_token(f"token stored in {where}", token)
    return 0


def _fail(message: object, status: int) -> int:
    """Print ``message`` as the command's error, on stderr; return the exit ``status``."""
    print(f"requests-refresh: {message}", file=sys.stderr)
    return status


def _print_token(heading: str, token: Token) -> None:
    """``heading``, then what :func:`describe_token` says about ``token``, indented."""
    print(heading)
    for name, value in describe_token(token, time.time()):
        print(f"  {name:<14} {value}")


def _clear(args: argparse.Namespace, store: TokenStore, where: str) -> int:
    """``token clear [--revoke]``: revoke first if asked; keep the token if that fails."""
    stored = store.load()
    if stored is None:
        print(f"nothing to clear: no token is stored in {where}")
        return 0
    if args.revoke:
        try:
            revoke_token(
                stored, args.client_id, issuer=args.issuer, client_secret=_client_secret(args)
            )
        except RequestsRefreshError as exc:
            print(
                f"requests-refresh: {exc}\nthe token was not revoked and is still stored in"
                f" {where}: try again, or clear it without --revoke",
                file=sys.stderr,
            )
            return 1
        print(f"revoked the token at {args.issuer}")
    store.clear()
    print(f"removed the token stored in {where}")
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
    # Any backend: showing (masked) or removing what is already stored exposes nothing.
    entry = KeyringTokenStore(service, username, allow_insecure_backend=True)
    return entry, f"the keyring ({service!r}, {username!r})"


def describe_token(token: Token, now: float) -> list[tuple[str, str]]:
    """The rows ``token show`` prints: every field, secrets masked."""
    rows = [
        ("access_token", _mask(token.access_token)),
        ("refresh_token", _mask(token.refresh_token)),
        ("token_type", token.token_type),
        ("scope", token.scope if token.scope is not None else "<none>"),
        ("issued_at", _moment(token.issued_at, now, "issued")),
        ("expires_at", _moment(token.expires_at, now, "expires")),
        ("login ends", _moment(token.refresh_expires_at, now, "ends")),
    ]
    if token.refresh_at is not None:
        rows.append(("refresh_at", _moment(token.refresh_at, now, "due")))
    if token.extra:
        rows.append(("extra fields", ", ".join(sorted(map(str, token.extra)))))
    return rows


def _mask(secret: str | None) -> str:
    return "<none>" if secret is None else f"<set, {len(secret)} chars>"


def _moment(when: float | None, now: float, verb: str) -> str:
    if when is None:
        return "never (no expiry given)" if verb == "expires" else "<unknown>"
    try:
        iso = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
    except (OverflowError, ValueError, OSError):  # a stored number past any calendar
        return f"{when!r} (epoch seconds, outside the calendar)"
    span = _duration(abs(when - now))
    if verb == "issued":
        relative = f"{span} ago" if when <= now else f"in {span} (clock skew?)"
    elif verb == "ends":
        relative = f"ends in {span}" if when > now else f"ended {span} ago: sign in again"
    elif verb == "due":
        relative = f"due in {span}" if when > now else f"due {span} ago"
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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
