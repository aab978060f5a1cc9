"""The test server's HTTP side: a threading server that tracks its connections, and the
request handler that turns each request into calls of :class:`~._state.OAuthState`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import _pages
from ._state import authorization_error

if TYPE_CHECKING:
    from ._state import OAuthState
    from .server import AuthorizationServer


class Listener(ThreadingHTTPServer):
    """The HTTP server on 127.0.0.1 of one :class:`AuthorizationServer` run.

    Args:
        app: the server whose knobs (latency, consent, ...) and metadata it serves.
        state: the OAuth state its handlers query and change.
    """

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, app: AuthorizationServer, state: OAuthState) -> None:
        self.app = app
        self.state = state
        #: Set when the server stops: delayed answers stop waiting.
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection, to drop it when the server stops."""
        with self._connections_lock:
            self._connections.add(connection)

    def forget(self, connection: socket.socket) -> None:
        """Forget a finished connection."""
        with self._connections_lock:
            self._connections.discard(connection)

    def stop(self) -> None:
        """Stop serving, close the listening socket, and drop every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """One connection's requests: routing, bodies, and the shape of each answer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    timeout = 30  # an idle keep-alive connection is closed after this
    server: Listener

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.forget(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a test server has nothing to say, and must never print a token."""

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path == "/token":
            self._token()
        elif path in ("/device_authorization", "/revoke", "/authorize", "/device"):
            self._form_endpoint(path)
        else:
            self._resource()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(urllib.parse.parse_qsl(query))
        if path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            self._read_body()
            self._send_json(200, self.server.app.metadata())
        elif path == "/authorize":
            self._read_body()
            self._authorize(params)
        elif path == "/device":
            self._read_body()
            self._send_page(200, "Device login", _pages.device_form(params.get("user_code", "")))
        else:
            self._resource()

    do_PUT = do_PATCH = do_DELETE = do_POST

    # -- the endpoints ----------------------------------------------------------------------

    def _token(self) -> None:
        body = self._read_body()
        forced = self.server.state.take_forced()
        if forced is not None:
            if forced.delay:
                self.server.stopping.wait(forced.delay)
            if forced.reset:
                # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            self._send(forced.status, forced.body, forced.headers)
            return
        latency = self.server.app.latency
        if latency:
            self.server.stopping.wait(latency)
        form = self._form(body)
        self._send_json(*self.server.state.grant(form, self.headers.get("Authorization")))

    def _form_endpoint(self, path: str) -> None:
        app, state = self.server.app, self.server.state
        form = self._form(self._read_body())
        authorization = self.headers.get("Authorization")
        if path == "/device_authorization":
            self._send_json(*state.authorize_device(form, authorization, app.url + "/device"))
        elif path == "/revoke":
            status, payload = state.revoke_token(form, authorization)
            if payload is None:
                self._send(status, b"")
            else:
                self._send_json(status, payload)
        elif path == "/authorize":
            self._authorize(form, decision=form.get("decision", "deny"))
        else:
            user_code = form.get("user_code", "")
            try:
                if form.get("decision") == "approve":
                    app.approve(user_code)
                else:
                    app.deny(user_code)
            except KeyError:
                self._send_page(
                    400, "Unknown code", _pages.paragraph("No login is waiting for that code.")
                )
                return
            self._send_page(200, "Done", _pages.paragraph("Done. Return to your device."))

    def _authorize(self, params: dict[str, str], decision: str | None = None) -> None:
        """The authorization endpoint: GET shows or skips consent, POST is the decision."""
        app, state = self.server.app, self.server.state
        redirect_uri, problem = state.check_authorization_request(params)
        if redirect_uri is None:
            # RFC 6749 section 4.1.2.1: never redirect to an unchecked redirect URI.
            self._send_page(400, "Sign-in error", _pages.paragraph(str(problem)))
            return
        back = {"state": params["state"]} if "state" in params else {}
        back["iss"] = app.issuer
        error = authorization_error(params)
        if error is None and decision is None:
            if app.consent == "page":
                self._send_page(
                    200, "Sign in", _pages.consent_form(params, app.consent_autosubmit)
                )
                return
            decision = "approve" if app.consent == "auto" else "deny"
        if error is None and decision != "approve":
            error = "access_denied"
        if error is None:
            back["code"] = state.issue_code(params, redirect_uri)
        else:
            back["error"] = error
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urllib.parse.urlencode(back)
        self._send(303, b"", (("Location", location),))

    def _resource(self) -> None:
        body = self._read_body()
        if not self.server.state.check_bearer(self.headers.get("Authorization")):
            self._send_json(
                401,
                {"error": "invalid_token"},
                ("WWW-Authenticate", 'Bearer error="invalid_token"'),
            )
            return
        self._send_json(
            200,
            {
                "ok": True,
                "method": self.command,
                "path": self.path,
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
        )

    # -- reading and answering --------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _form(body: bytes) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "content-type" not in names and body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: dict[str, Any], *extra: tuple[str, str]) -> None:
        self._send(status, json.dumps(payload).encode(), extra)

    def _send_page(self, status: int, title: str, content: str) -> None:
        body = _pages.page(title, content)
        self._send(status, body, (("Content-Type", "text/html; charset=utf-8"),))
