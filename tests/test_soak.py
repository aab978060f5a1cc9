"""A soak: many requests through short-lived tokens, with no growth in resources.

The API is a minimal keep-alive HTTP server in another process (the test
``AuthorizationServer`` is too slow for this many requests); the refresher is a local
callable that issues half-second tokens, so the token expires and is refreshed every
quarter of a second throughout. ``REQUESTS_REFRESH_SOAK`` sets the number of requests
(20,000 by default; the full soak is 100,000).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
from multiprocessing.connection import Connection

import pytest
import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, Token

REQUESTS = int(os.environ.get("REQUESTS_REFRESH_SOAK", "20000"))
THREADS = 4
WARM_UP = 2000
TOKEN_LIFETIME = 0.5
#: The most RSS may grow between warm-up and the end, in bytes.
RSS_BOUND = 16 * 1024 * 1024

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
_REFUSED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"


def _connection(conn: socket.socket) -> None:
    """Answer requests on one keep-alive connection: 200 with a bearer token, else 401."""
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            conn.sendall(_OK if b"\r\nauthorization: bearer " in head.lower() else _REFUSED)


def _serve(reply: Connection) -> None:
    """The API process: accept connections and serve each in a thread."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    reply.send(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_connection, args=(conn,), daemon=True).start()


def _resources() -> tuple[int, int, int]:
    """Threads, open file descriptors and resident memory (bytes) of this process."""
    with open("/proc/self/statm") as statm:
        rss_pages = int(statm.read().split()[1])
    return (
        threading.active_count(),
        len(os.listdir("/proc/self/fd")),
        rss_pages * os.sysconf("SC_PAGE_SIZE"),
    )


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
@pytest.mark.timeout(300)
def test_soak_keeps_threads_descriptors_and_memory_flat() -> None:
    """Requests through a token that expires every half second: nothing accumulates.

    Protects against: leaks per request or per refresh (threads, sockets, waiters,
    per-generation state, responses kept alive), and against requests failing around
    a refresh.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    api = context.Process(target=_serve, args=(child,), daemon=True)
    api.start()
    try:
        assert parent.poll(30), "the API process did not start"
        url = f"http://127.0.0.1:{parent.recv()}/"
        refreshes = [0]

        def refresher(token: Token) -> Token:
            refreshes[0] += 1
            now = time.time()
            n = refreshes[0]
            return Token(f"at-{n}", f"rt-{n}", expires_at=now + TOKEN_LIFETIME, issued_at=now)

        adapter = RefreshAdapter(
            store=MemoryTokenStore(Token("at-0", "rt-0", expires_at=time.time() - 1)),
            refresher=refresher,
            leeway=TOKEN_LIFETIME,
            pool_maxsize=THREADS,
        )
        failures: list[BaseException] = []

        def crawl(session: requests.Session, count: int) -> None:
            try:
                for _ in range(count):
                    response = session.get(url, timeout=10)
                    if response.status_code != 200:
                        raise AssertionError(f"HTTP {response.status_code}")
            except BaseException as exc:
                failures.append(exc)

        def run(total: int) -> None:
            threads = [
                threading.Thread(target=crawl, args=(session, total // THREADS))
                for _ in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=240)
            assert not any(thread.is_alive() for thread in threads), "a crawler is stuck"
            assert not failures, failures[:3]

        with requests.Session() as session:
            adapter.mount(session, url)
            run(WARM_UP)
            threads_before, fds_before, rss_before = _resources()
            started = time.monotonic()
            run(REQUESTS)
            elapsed = time.monotonic() - started
            threads_after, fds_after, rss_after = _resources()
        assert threads_after == threads_before
        assert fds_after <= fds_before + 2
        assert rss_after - rss_before < RSS_BOUND, (rss_before, rss_after)
        # The token really expired and was refreshed throughout.
        assert adapter.stats.refreshes >= elapsed / TOKEN_LIFETIME
        print(
            f"soak: {REQUESTS} requests in {elapsed:.1f} s, {adapter.stats.refreshes} refreshes,"
            f" threads {threads_before}->{threads_after}, fds {fds_before}->{fds_after},"
            f" rss {rss_before >> 20}->{rss_after >> 20} MiB"
        )
    finally:
        api.kill()
        api.join(timeout=10)
