"""A deadline on the head of the library's own requests.

requests' timeout bounds each read on the socket, not a request as a whole: this module's
adapter bounds the request, from connecting to its last header. The body is read with
:func:`._http.read_body`, which bounds it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter", "new_session"]


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
    read it with :func:`._http.read_body`.
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
