"""The test :class:`~requests_refresh.testing.AuthorizationServer`, run in its own process.

Storms put hundreds of client threads against the token endpoint; with the server in the
same process, its handler threads would compete with the clients for one GIL and the
figures would mostly measure that. Here the server runs in a child process and is driven
over a pipe: ``login()``, ``stats()``, ``set(name, value)``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from types import TracebackType
from typing import Any

from requests_refresh import Token
from requests_refresh.testing import AuthorizationServer, ServerStats

from ._process import start_child, stop_child

__all__ = ["RemoteAuthorizationServer"]

_SETTABLE = frozenset({"access_ttl", "latency", "rotate", "reuse_detection"})


def _run(conn: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    parent = os.getppid()
    with AuthorizationServer(**options) as server:
        conn.send((server.url, server.client_id))
        while os.getppid() == parent:
            if not conn.poll(0.5):
                continue
            try:
                command, args = conn.recv()
            except EOFError:
                return
            if command == "stop":
                return
            if command == "login":
                conn.send(server.login())
            elif command == "stats":
                conn.send(server.stats)
            elif command == "set" and args[0] in _SETTABLE:
                setattr(server, args[0], args[1])
                conn.send(None)
            else:
                conn.send(ValueError(f"unknown command {command!r}"))


class RemoteAuthorizationServer:
    """An :class:`AuthorizationServer` in a child process. Thread-safe; a context manager."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.url = ""
        self.client_id = ""
        self.client_secret: str | None = options.get("client_secret")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self._mutex = threading.Lock()

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def resource_url(self) -> str:
        return self.url + "/resource"

    def start(self) -> RemoteAuthorizationServer:
        process, conn, ready = start_child(_run, (self.options,), "AuthorizationServer")
        self.url, self.client_id = ready  # type: ignore[misc]  # _run sends this pair
        self._process, self._conn = process, conn
        return self

    def _call(self, command: str, *args: object) -> Any:
        with self._mutex:
            if self._conn is None:
                raise RuntimeError("the authorization server is not running")
            self._conn.send((command, args))
            if not self._conn.poll(30):
                raise RuntimeError(f"the authorization server did not answer {command!r}")
            answer = self._conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def login(self) -> Token:
        token: Token = self._call("login")
        return token

    def stats(self) -> ServerStats:
        stats: ServerStats = self._call("stats")
        return stats

    def set(self, name: str, value: object) -> None:
        self._call("set", name, value)

    def stop(self) -> None:
        with self._mutex:
            process, conn = self._process, self._conn
            self._process = self._conn = None
        stop_child(process, conn, ("stop", ()), grace=15)

    def __enter__(self) -> RemoteAuthorizationServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
