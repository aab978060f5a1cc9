"""A minimal HTTP/1.1 keep-alive server on 127.0.0.1, in its own process.

It answers every request with the same tiny ``200`` and does nothing else, so that the
client, not the server, is what a fast-path benchmark measures. It runs in a separate
process (its CPU is not the client's) and uses one thread with ``selectors``. Requests
must have no body (GET); pipelining is handled by counting header terminators.

It stops when the parent says so, when the parent goes away, or after ``lifetime``
seconds, whichever comes first.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import selectors
import socket
import time
from types import TracebackType

from ._process import start_child, stop_child

__all__ = ["RawServer"]

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_END_OF_HEADERS = b"\r\n\r\n"


def _serve(conn: multiprocessing.connection.Connection, lifetime: float) -> None:
    """The server process: accept, read, answer, until told to stop."""
    parent = os.getppid()
    deadline = time.monotonic() + lifetime
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    conn.send(listener.getsockname()[1])

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    selector.register(conn.fileno(), selectors.EVENT_READ, "control")
    buffers: dict[socket.socket, bytes] = {}
    try:
        while time.monotonic() < deadline and os.getppid() == parent:
            for key, _ in selector.select(timeout=0.5):
                if key.data == "control":
                    return
                if key.fileobj is listener:
                    _accept(listener, selector, buffers)
                    continue
                sock = key.fileobj
                assert isinstance(sock, socket.socket)  # noqa: S101 - registered below
                _read(sock, selector, buffers)
    finally:
        for sock in list(buffers):
            sock.close()
        listener.close()
        selector.close()


def _accept(
    listener: socket.socket, selector: selectors.BaseSelector, buffers: dict[socket.socket, bytes]
) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffers[sock] = b""
        selector.register(sock, selectors.EVENT_READ, "client")


def _read(
    sock: socket.socket, selector: selectors.BaseSelector, buffers: dict[socket.socket, bytes]
) -> None:
    try:
        data = sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""
    if not data:
        selector.unregister(sock)
        del buffers[sock]
        sock.close()
        return
    buffer = buffers[sock] + data
    complete = buffer.count(_END_OF_HEADERS)
    if complete:
        buffer = buffer[buffer.rfind(_END_OF_HEADERS) + len(_END_OF_HEADERS) :]
        try:
            sock.sendall(RESPONSE * complete)
        except BlockingIOError:  # a client that does not read: give up on it
            selector.unregister(sock)
            del buffers[sock]
            sock.close()
            return
        except OSError:
            selector.unregister(sock)
            del buffers[sock]
            sock.close()
            return
    buffers[sock] = buffer


class RawServer:
    """Run the raw server in a child process; use as a context manager.

    ``url`` is ``http://127.0.0.1:<port>/``. ``lifetime`` bounds how long the child lives
    even if nobody stops it.
    """

    def __init__(self, lifetime: float = 900.0) -> None:
        self.lifetime = lifetime
        self.port = 0
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: multiprocessing.connection.Connection | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> RawServer:
        process, control, port = start_child(_serve, (self.lifetime,), "RawServer")
        self.port = int(port)  # type: ignore[call-overload]  # _serve sends its port
        self._process, self._control = process, control
        return self

    def stop(self) -> None:
        process, control = self._process, self._control
        self._process = self._control = None
        stop_child(process, control, "stop", grace=10)

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
