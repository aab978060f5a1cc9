"""Reading answers from an authorization server that may be hostile.

Bounded bodies, bounded time, bounded JSON nesting, and server text cut short and made
printable before it goes into a message. Used by the token endpoint exchange, the
device authorization and revocation endpoints, and discovery.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = [
    "JSON_HEADERS",
    "MAX_BODY",
    "MAX_JSON_DEPTH",
    "BodyBrokenError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "DeadlineAdapter",
    "load_json",
    "new_session",
    "origin_of",
    "quote_server_text",
    "read_body",
    "total_seconds",
    "where",
]

#: The largest answer read from a metadata, device authorization or revocation endpoint.
MAX_BODY = 64 * 1024
#: The deepest nesting of JSON arrays and objects accepted in an answer. Deeper ones are
#: refused before anything recurses over them (a store's json.dumps, a copy).
MAX_JSON_DEPTH = 32
#: Request headers for a JSON answer. identity: the size limit counts what the server
#: sends, and no decompression bomb hides behind it.
JSON_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}
_MAX_QUOTED = 200
_CHUNK = 16384


def new_session() -> requests.Session:
    """A session of the library's own: every request's head is bounded by its timeout.

    :class:`DeadlineAdapter` is mounted for http and https. Only for sessions the library
    makes and closes itself: a session passed in by the user is never changed.
    """
    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, DeadlineAdapter())
    return session


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose ``timeout`` bounds a request as a whole, up to its last header.

    requests' timeout bounds each read on the socket, so a server that sends its status
    line and headers a piece at a time, each piece inside the read timeout, can hold a
    request for ever. Here a timer, started with the request, shuts the connection's
    socket down when the timeout (``connect + read`` for a pair) has passed; the request
    then fails with :class:`requests.exceptions.ReadTimeout`. The timer is cancelled and
    joined before :meth:`send` returns. The body of a streamed answer is not covered:
    read it with :func:`read_body`.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:  # not SOCKS: its pools make their own
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        budget = _budget(timeout)
        if budget is None:
            return super().send(request, stream, timeout, verify, cert, proxies)
        watch = _Watch(budget)
        outer = getattr(_current, "watch", None)
        _current.watch = watch
        try:
            try:
                watch.start()
            except RuntimeError as exc:  # no thread can be started: out of threads
                raise requests.exceptions.ConnectionError(
                    "could not start the request's deadline timer (no thread available)",
                    request=request,
                ) from exc
            response = super().send(request, stream, timeout, verify, cert, proxies)
        except requests.RequestException as exc:
            if watch.expired:
                raise watch.timeout_error(request) from exc
            raise
        finally:
            watch.stop()
            _current.watch = outer
        if watch.expired:  # the head arrived just as the timer cut the connection
            response.close()
            raise watch.timeout_error(request)
        return response


def _budget(timeout: object) -> float | None:
    """Seconds a request may take as a whole, from requests' ``timeout``; None: no bound."""
    if isinstance(timeout, tuple):
        if len(timeout) != 2 or not all(isinstance(part, (int, float)) for part in timeout):
            return None
        return float(sum(timeout))
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout)
    return None


# The watch of the request this thread is sending, for its connection to report to.
_current = threading.local()


class _Watch:
    """One request's deadline: a timer that cuts the connection the request reports."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.expired = False
        self._done = False
        self._connection: HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(budget, self._expire)
        self._timer.name = "requests-refresh deadline"
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        """Cancel the timer and wait for its thread to end; nothing is cut afterwards."""
        with self._lock:
            self._done = True
        self._timer.cancel()
        if self._timer.ident is not None:  # started
            self._timer.join()

    def attach(self, connection: HTTPConnection) -> None:
        """The request uses ``connection``: cut it at the deadline (now, if it passed)."""
        with self._lock:
            self._connection = connection
            if self.expired and not self._done:
                _cut(connection)

    def timeout_error(self, request: requests.PreparedRequest) -> requests.Timeout:
        return requests.exceptions.ReadTimeout(
            f"the request took longer than its timeout of {self.budget:g} s", request=request
        )

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._connection is not None:
                _cut(self._connection)


def _cut(connection: HTTPConnection) -> None:
    """Shut the connection's socket down: a read waiting on it returns at once.

    With the plain socket's ``shutdown``, also for a TLS socket, so that its TLS state is
    left for the thread reading it; the connection is closed by urllib3 when the read
    fails. A socket closed meanwhile has no descriptor any more: nothing else is cut.
    """
    sock = getattr(connection, "sock", None)
    if sock is None:
        return  # still connecting: attach() cuts it once connected
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _report(connection: HTTPConnection) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None:
        watch.attach(connection)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that reports itself to the request's deadline watch."""

    def connect(self) -> None:
        super().connect()
        _report(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _report(self)
        super().request(*args, **kwargs)

    def _tunnel(self) -> None:
        # Through a proxy, connect() sends CONNECT and reads the proxy's answer before it
        # returns: the deadline covers that answer too. An answer cut short by the
        # deadline can read as complete: stop here rather than start TLS on a dead socket.
        _report(self)
        super()._tunnel()
        watch = getattr(_current, "watch", None)
        if watch is not None and watch.expired:
            raise TimeoutError("the proxy's answer outlasted the request's timeout")


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same for https: the watched methods come first, then HTTPSConnection's."""


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class BodyTooLargeError(ValueError):
    """The answer is longer than allowed."""


class BodyTimeoutError(Exception):
    """The deadline passed before the whole answer arrived."""


class BodyBrokenError(Exception):
    """The connection broke while the answer arrived."""


def read_body(response: requests.Response, *, limit: int = MAX_BODY, deadline: float) -> bytes:
    """Read a streamed response's body: at most ``limit`` bytes, until ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time. Each read on the socket waits no
    longer than what is left until then, so a server that trickles its answer cannot
    stretch it (at worst by one more read timeout where the socket cannot be reached).
    The bytes are read as sent, not decompressed: ask with :data:`JSON_HEADERS`.

    Raises:
        BodyTooLargeError: the answer is, or says it is, longer than ``limit``.
        BodyTimeoutError: ``deadline`` passed first.
        BodyBrokenError: the connection broke (the cause is chained).
    """
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise BodyTooLargeError(f"the answer is {int(declared)} bytes, more than {limit}")
    raw = response.raw
    # urllib3 2 has read1: whatever has arrived, up to n bytes. read(n) waits for all
    # n bytes, but no longer than the socket timeout set for it.
    read = getattr(raw, "read1", None) or raw.read
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeoutError("the answer took too long to arrive")
        _limit_next_read(raw, remaining)
        try:
            chunk = read(_CHUNK)
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise BodyTimeoutError("the answer took too long to arrive") from exc
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise BodyBrokenError(
                f"the connection broke while the answer arrived ({type(exc).__name__})"
            ) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the answer is more than {limit} bytes")
        chunks.append(chunk)


def _limit_next_read(raw: Any, remaining: float) -> None:
    """Let the next read on the answer's socket wait no longer than ``remaining`` seconds.

    Best effort: the socket is reached through urllib3's response (``connection``, or
    ``_connection`` before urllib3 2); without it each read waits up to the read timeout.
    urllib3 sets the timeout again before the connection's next request.
    """
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            current = sock.gettimeout()
            sock.settimeout(remaining if current is None else min(current, remaining))
        except OSError:
            pass


def load_json(body: bytes) -> tuple[Any, str]:
    """The parsed body, or None and what is wrong with it (for a message)."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, "a JSON body nested too deeply"
    except ValueError:  # not JSON, not UTF-8, or an integer of thousands of digits
        return None, "a body that is not JSON"
    if _nested_deeper_than(payload, MAX_JSON_DEPTH):
        return None, f"a JSON body nested more than {MAX_JSON_DEPTH} deep"
    return payload, ""


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` deep. No recursion."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, (dict, list)) for item in level)


def total_seconds(timeout: float | tuple[float, float]) -> float:
    """A whole exchange's time budget: the timeout, or connect + read."""
    if isinstance(timeout, tuple):
        return float(sum(timeout))
    return float(timeout)


def quote_server_text(text: object, limit: int = _MAX_QUOTED) -> str:
    """A server-supplied value, cut to ``limit`` characters and quoted for a message."""
    value = text if isinstance(text, str) else repr(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


def where(url: str) -> str:
    """``url`` without query, fragment or credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = (parts.hostname or "") + ("" if port is None else f":{port}")
    return f"{parts.scheme}://{netloc}{parts.path}"


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, with the default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port
