"""Before a replay, a refusal's body is read only a little, for a little while."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from requests_refresh import (
    InvalidGrantError,
    MemoryTokenStore,
    RefreshAdapter,
    Token,
    TokenEndpointUnavailableError,
    TokenStoreError,
)
from requests_refresh.adapter import DRAIN_LIMIT, DRAIN_TIME

WAIT = 30  # seconds: the bound on every wait in this module
OLD = Token("at-old", "rt-old", expires_at=time.time() + 3600)
NEW = Token("at-new", "rt-new", expires_at=time.time() + 3600)
HUGE = 50 * 1024 * 1024
SMALL_BODY = b'{"error": "invalid_token"}'
OVER_BODY = b"x" * (2 * DRAIN_LIMIT)
GZIP_BODY = gzip.compress(SMALL_BODY)


class RefusingServer:
    """Refuses the old token on ``/huge`` (50 MB body), ``/stall`` (a body that stops
    coming) and ``/small``; answers 200 to the new token. Counts connections and the
    bytes of the huge body it managed to send."""

    def __init__(self) -> None:
        self.connections = 0
        self.huge_sent = 0
        self.huge_done = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = WAIT

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def setup(self) -> None:
                super().setup()
                outer.connections += 1

            def do_GET(self) -> None:
                if self.headers.get("Authorization") == NEW.authorization:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    return
                body = {"/small": SMALL_BODY, "/over": OVER_BODY, "/gzip": GZIP_BODY}.get(
                    self.path
                )
                length = {"/huge": HUGE, "/stall": 1000}.get(self.path, len(body or b""))
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                self.send_header("Content-Length", str(length))
                if self.path == "/gzip":
                    self.send_header("Content-Encoding", "gzip")
                self.end_headers()
                if body is not None:
                    self.wfile.write(body)
                elif self.path == "/stall":
                    self.wfile.write(b"x" * 10)
                    self.wfile.flush()
                    outer.release.wait(WAIT)
                    self.close_connection = True
                else:
                    self._send_huge()

            def _send_huge(self) -> None:
                chunk = b"x" * 65536
                try:
                    while outer.huge_sent < HUGE:
                        self.wfile.write(chunk)
                        outer.huge_sent += len(chunk)
                except OSError:
                    self.close_connection = True
                finally:
                    outer.huge_done.set()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> RefusingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=WAIT)


@pytest.fixture
def refusing() -> Iterator[RefusingServer]:
    with RefusingServer() as running:
        yield running


@pytest.fixture
def session(refusing: RefusingServer) -> Iterator[requests.Session]:
    """A session whose adapter holds the old token; its refresher returns the new one."""
    adapter = RefreshAdapter(store=MemoryTokenStore(OLD), refresher=lambda token: NEW)
    with requests.Session() as opened:
        adapter.mount(opened, refusing.url + "/")
        yield opened


@pytest.mark.parametrize("stream", [True, False])
def test_a_huge_refusal_is_not_read_before_the_replay(
    refusing: RefusingServer, session: requests.Session, stream: bool
) -> None:
    """A 401 with a 50 MB body: the replay follows without reading it; history stays small.

    Protects against: +50 MiB of memory per refused request (the whole body read, then
    kept in ``history``).
    """
    tracemalloc.start()
    try:
        response = session.get(refusing.url + "/huge", stream=stream, timeout=WAIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    assert response.content == b"ok"
    (refusal,) = response.history
    assert refusal.status_code == 401
    assert refusal.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert refusal.content == b""  # too big to keep: status and headers only
    assert peak < 8 * 1024 * 1024
    assert refusing.huge_done.wait(WAIT)
    assert refusing.huge_sent < HUGE  # the connection was dropped, not drained


def test_a_stalled_refusal_does_not_hold_the_replay_even_without_timeout(
    refusing: RefusingServer, session: requests.Session
) -> None:
    """A 401 whose body stops coming, with timeout=None: replayed within DRAIN_TIME.

    Protects against: a request that blocks for ever before its replay.
    """
    result: dict[str, Any] = {}

    def send() -> None:
        started = time.monotonic()
        try:
            result["response"] = session.get(refusing.url + "/stall", timeout=None)
        except requests.RequestException as exc:  # what the old code got once released
            result["error"] = exc
        result["elapsed"] = time.monotonic() - started

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    sender.join(DRAIN_TIME + 10)
    stuck = sender.is_alive()
    refusing.release.set()
    sender.join(WAIT)
    assert not stuck, "the request was still draining the refusal"
    assert "error" not in result
    assert result["response"].status_code == 200
    assert result["elapsed"] < DRAIN_TIME + 5
    assert [r.status_code for r in result["response"].history] == [401]


def test_a_small_refusal_is_kept_and_its_connection_reused(
    refusing: RefusingServer, session: requests.Session
) -> None:
    """The usual small 401: its body stays in history, the replay reuses the connection."""
    response = session.get(refusing.url + "/small", timeout=WAIT)
    assert response.status_code == 200
    assert response.history[0].content == SMALL_BODY
    assert response.history[0].json() == {"error": "invalid_token"}
    assert refusing.connections == 1


def test_a_refusal_over_the_limit_is_dropped_with_its_connection(
    refusing: RefusingServer, session: requests.Session
) -> None:
    """Twice DRAIN_LIMIT: not kept in history, not read on: the replay opens a connection."""
    response = session.get(refusing.url + "/over", timeout=WAIT)
    assert response.status_code == 200
    assert response.history[0].content == b""
    assert refusing.connections == 2


def test_a_compressed_refusal_is_kept_decoded(
    refusing: RefusingServer, session: requests.Session
) -> None:
    """A small gzip 401 reads in history as the caller would read it: decoded."""
    response = session.get(refusing.url + "/gzip", timeout=WAIT)
    assert response.history[0].json() == {"error": "invalid_token"}
    assert refusing.connections == 1


class BrokenLockStore(MemoryTokenStore):
    """A store whose lock cannot be taken, as when Redis or the lock file is unreachable."""

    reachable = False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        if not self.reachable:
            raise TokenStoreError("the store is unreachable")
        yield


def dead_login(token: Token) -> Token:
    raise InvalidGrantError("the refresh token was revoked", error="invalid_grant")


def endpoint_down(token: Token) -> Token:
    raise TokenEndpointUnavailableError("the token endpoint is down", status_code=503)


def should_refresh_raises(response: requests.Response) -> bool:
    raise RuntimeError("a bug in the caller's should_refresh")


FAILING_REFUSALS: dict[str, tuple[dict[str, Any], type[BaseException]]] = {
    "invalid_grant": ({"refresher": dead_login}, InvalidGrantError),
    "cool-off": ({"refresher": endpoint_down}, TokenEndpointUnavailableError),
    "store error": (
        {"refresher": lambda token: NEW, "store": BrokenLockStore(OLD)},
        TokenStoreError,
    ),
    "should_refresh raises": (
        {"refresher": lambda token: NEW, "should_refresh": should_refresh_raises},
        RuntimeError,
    ),
}


@pytest.mark.parametrize("case", FAILING_REFUSALS)
def test_a_refusal_whose_refresh_raises_gives_its_connection_back(
    refusing: RefusingServer, case: str
) -> None:
    """A 401 whose refresh (or should_refresh) raises releases its pooled connection.

    With ``pool_block=True`` and one connection, five such requests in a row each raise
    at once. Protects against: the refusal left open when the error propagates, its
    connection never returned, and the request after ``pool_maxsize`` of them blocking
    for ever on the exhausted pool.
    """
    options, expected = FAILING_REFUSALS[case]
    options = {"store": MemoryTokenStore(OLD), **options}
    adapter = RefreshAdapter(**options, pool_maxsize=1, pool_block=True)
    outcomes: list[BaseException | int] = []

    with requests.Session() as session:
        adapter.mount(session, refusing.url + "/")

        def five_requests() -> None:
            for _ in range(5):
                try:
                    outcomes.append(session.get(refusing.url + "/small", timeout=5).status_code)
                except Exception as exc:
                    outcomes.append(exc)

        sender = threading.Thread(target=five_requests, daemon=True)
        sender.start()
        sender.join(10)
        assert not sender.is_alive(), f"blocked on the pool after {len(outcomes)} requests"
    assert len(outcomes) == 5
    assert all(isinstance(outcome, expected) for outcome in outcomes), outcomes
