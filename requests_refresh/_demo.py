"""``requests-refresh demo``: a naive client, then RefreshAdapter, crawling through expiring
tokens against the test authorization server; then a table of what happened."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import requests
import requests.adapters

from .adapter import RefreshAdapter
from .oauth2 import RefreshTokenGrant
from .stores import MemoryTokenStore
from .testing import AuthorizationServer
from .token import Token

#: How long the demo's token endpoint takes to answer, as a real one over a network would.
DEMO_LATENCY = 0.05


@dataclasses.dataclass
class _Crawl:
    """What one crawl of the demo counted."""

    requests: int = 0
    failures: int = 0
    replays: int = 0
    waits: int | None = None
    refreshes: int = 0
    invalid_grant: int = 0
    revoked: bool = False


class _NaiveClient:
    """A hand-written client as many are: every thread that gets a 401 refreshes the
    token with the refresh token it knows, then retries once. Nothing stops two threads
    from refreshing at the same time with the same (single-use) refresh token."""

    def __init__(self, server: AuthorizationServer, token: Token) -> None:
        self._token_url, self._resource_url = server.token_url, server.resource_url
        self._client_id = server.client_id
        self.token = token  # shared by the threads, as a session's auth would be
        self.replays = 0
        self._mutex = threading.Lock()

    def get(self, session: requests.Session) -> bool:
        token = self.token
        response = self._send(session, token)
        if response.status_code != 401:
            return response.ok
        refreshed = session.post(
            self._token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": token.refresh_token or "",
                "client_id": self._client_id,
            },
            timeout=10,
        )
        if refreshed.status_code != 200:
            return False
        self.token = Token.from_response(refreshed.json())
        with self._mutex:
            self.replays += 1
        return self._send(session, self.token).ok

    def _send(self, session: requests.Session, token: Token) -> requests.Response:
        return session.get(
            self._resource_url,
            headers={"Authorization": f"Bearer {token.access_token}"},
            timeout=10,
        )


def run_demo(threads: int, seconds: float, ttl: float, leeway: float) -> int:
    """The demo: a naive client, then RefreshAdapter, each against a fresh server.

    Returns 0 when every request through RefreshAdapter succeeded and its login survived.
    """
    _say(
        f"requests-refresh demo: {threads} threads crawl a protected resource for"
        f" {seconds:g} s, twice, each time against a fresh local authorization server:"
        f" access tokens live {ttl:g} s, refresh tokens are single-use, presenting a spent"
        " one revokes the login (reuse detection), and the token endpoint answers in"
        f" {DEMO_LATENCY * 1000:.0f} ms."
    )
    if leeway > 0:
        _say(
            f"Refresh-ahead is on (--leeway {leeway:g}): the adapter refreshes {leeway:g} s"
            " before expiry (at most half the lifetime) while requests go on with the"
            " current token, so few or no 401s are replayed."
        )
    else:
        _say(
            "Refresh-ahead is off in this demo (--leeway 0), so all threads meet the"
            " expiry at once: those about to send wait for one refresh, and requests"
            " already in flight get a 401 and are replayed (see the counts). --leeway S"
            " refreshes S seconds before expiry instead (at most half the lifetime; the"
            " library's default is 30 s), while requests go on with the current token."
        )
    print("\n1/2 a naive client: each thread that gets a 401 refreshes on its own, retries once")
    with AuthorizationServer(access_ttl=ttl, latency=DEMO_LATENCY) as server:
        naive = _NaiveClient(server, server.login())
        with requests.Session() as session:
            session.mount(server.url + "/", requests.adapters.HTTPAdapter(pool_maxsize=threads))
            theirs = _crawl(session, naive.get, threads, seconds, server)
        theirs.replays = naive.replays
    print("\n2/2 RefreshAdapter: one thread refreshes, the others wait for it, 401s replay")
    with AuthorizationServer(access_ttl=ttl, latency=DEMO_LATENCY) as server:
        grant = RefreshTokenGrant(server.token_url, client_id=server.client_id)
        adapter = RefreshAdapter(
            store=MemoryTokenStore(server.login()),
            refresher=grant,
            leeway=leeway,
            pool_maxsize=threads,
        )
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")

            def get(session: requests.Session) -> bool:
                return session.get(server.resource_url, timeout=10).status_code == 200

            ours = _crawl(session, get, threads, seconds, server)
        ours.replays, ours.waits = adapter.stats.replays, adapter.stats.waits
        grant.close()
    rows: list[tuple[str, object, object]] = [
        ("requests", theirs.requests, ours.requests),
        ("failed requests", theirs.failures, ours.failures),
        ("replayed after a 401", theirs.replays, ours.replays),
        ("threads that waited for a refresh", "-", ours.waits),
        ("refreshes counted by the server", theirs.refreshes, ours.refreshes),
        ("invalid_grant answers", theirs.invalid_grant, ours.invalid_grant),
        ("login revoked", _yes(theirs.revoked), _yes(ours.revoked)),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"\n  {'':<{width}}  {'naive client':>12}  {'RefreshAdapter':>14}")
    for name, naive_value, our_value in rows:
        print(f"  {name:<{width}}  {naive_value!s:>12}  {our_value!s:>14}")
    print()
    if theirs.invalid_grant or theirs.revoked:
        _say(
            "The naive client: threads refreshed at once with the same single-use refresh"
            f" token; the server answered invalid_grant {theirs.invalid_grant} times,"
            + (" reuse detection revoked the login," if theirs.revoked else "")
            + f" and {theirs.failures} requests failed."
        )
    else:
        print("The naive client was lucky this time: no two threads refreshed together.")
    healthy = ours.failures == 0 and ours.invalid_grant == 0 and not ours.revoked
    print(
        "RefreshAdapter: every request succeeded, with one refresh per token generation."
        if healthy
        else "RefreshAdapter: something went wrong: see the counts above."
    )
    return 0 if healthy else 1


def _crawl(
    session: requests.Session,
    get: Callable[[requests.Session], bool],
    threads: int,
    seconds: float,
    server: AuthorizationServer,
) -> _Crawl:
    """``threads`` threads call ``get`` for ``seconds``, with a progress line each second."""
    live = sys.stdout.isatty()
    counts = _Crawl()
    mutex = threading.Lock()
    stop = threading.Event()

    def crawl() -> None:
        while not stop.is_set():
            try:
                ok = get(session)
            except requests.RequestException:
                ok = False
            with mutex:
                counts.requests += 1
                counts.failures += not ok

    workers = [threading.Thread(target=crawl, daemon=True) for _ in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        # A terminal gets one line, rewritten; a log, a line every second or so, 3 at most.
        while not stop.wait(0.25 if live else max(1.0, seconds / 3)):
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                stop.set()
            served = server.stats
            line = (
                f"  {elapsed:4.1f} s  requests {counts.requests:>6}"
                f"  failed {counts.failures:>6}  refreshes {served.refreshes:>3}"
                f"  invalid_grant {served.invalid_grant:>3}"
            )
            print(f"\r{line}" if live else line, end="" if live else "\n", flush=True)
    finally:  # also on Ctrl-C: no thread outlives the server
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    if live:
        print()
    served = server.stats
    counts.refreshes, counts.invalid_grant = served.refreshes, served.invalid_grant
    counts.revoked = server.revoked
    return counts


def _say(text: str) -> None:
    print(textwrap.fill(text, width=88))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
