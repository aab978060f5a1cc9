"""A small OAuth 2.0 authorization server and protected resource, for tests and demos.

:class:`AuthorizationServer` runs on 127.0.0.1 in a background thread and behaves like a
strict identity provider: short-lived access tokens, single-use (rotating) refresh
tokens, and reuse detection that revokes the whole login when a spent refresh token is
presented again. It counts what happens, so a test can assert "exactly one refresh"::

    from requests_refresh.testing import AuthorizationServer

    with AuthorizationServer(access_ttl=1.0) as server:
        store = MemoryTokenStore(server.login())
        grant = RefreshTokenGrant(server.token_url, client_id=server.client_id)
        ...
        assert server.stats.invalid_grant == 0

Endpoints:

* ``POST /token``: the refresh token grant (RFC 6749 section 6).
* ``/resource`` (any method): 200 with a JSON description of the request (method, body
  length and SHA-256) for a valid bearer token; 401 with ``WWW-Authenticate`` otherwise.

It is a test double: it keeps everything in memory and is not meant to face a network.

:class:`TokenStoreContract` is the behaviour every :class:`~requests_refresh.TokenStore`
keeps, as tests to run against a store of your own (see its docstring).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import secrets
import socket
import struct
import threading
import time
import unittest
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .stores import TokenStore
from .token import Token

__all__ = ["AuthorizationServer", "ServerStats", "TokenStoreContract"]


@dataclasses.dataclass(frozen=True)
class ServerStats:
    """What the server has seen; a snapshot.

    Attributes:
        token_requests: POSTs to the token endpoint, forced failures included.
        refreshes: refresh tokens exchanged successfully: new token generations.
        invalid_grant: refreshes refused with ``invalid_grant``.
        reuse_detected: spent refresh tokens presented again.
        logins_revoked: logins revoked (by reuse detection or :meth:`revoke`).
        forced: forced answers given (see :meth:`AuthorizationServer.fail_next`).
        resource_requests: requests to ``/resource``.
        resource_unauthorized: of those, answered 401.
    """

    token_requests: int = 0
    refreshes: int = 0
    invalid_grant: int = 0
    reuse_detected: int = 0
    logins_revoked: int = 0
    forced: int = 0
    resource_requests: int = 0
    resource_unauthorized: int = 0


@dataclasses.dataclass(frozen=True)
class _Forced:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    delay: float
    reset: bool


@dataclasses.dataclass
class _Login:
    revoked: bool = False


class AuthorizationServer:
    """An OAuth 2.0 authorization server with a protected resource, on 127.0.0.1.

    Args:
        access_ttl: lifetime of access tokens, in seconds.
        rotate: issue a new refresh token on each refresh, and spend the old one.
        reuse_detection: a spent refresh token revokes its whole login (RFC 9700).
        latency: seconds the token endpoint waits before answering.
        client_id: the client expected at the token endpoint.
        client_secret: when set, the client must authenticate (Basic or form fields).
        always_refuse: ``/resource`` answers 401 to every request, even with a valid
            token (a permissions problem dressed as 401).

    The knobs are plain attributes and may be changed while the server runs.
    """

    def __init__(
        self,
        *,
        access_ttl: float = 2.0,
        rotate: bool = True,
        reuse_detection: bool = True,
        latency: float = 0.0,
        client_id: str = "test-client",
        client_secret: str | None = None,
        always_refuse: bool = False,
    ) -> None:
        self.access_ttl = access_ttl
        self.rotate = rotate
        self.reuse_detection = reuse_detection
        self.latency = latency
        self.client_id = client_id
        self.client_secret = client_secret
        self.always_refuse = always_refuse
        self._mutex = threading.Lock()
        self._stats = ServerStats()
        self._logins: dict[str, _Login] = {}
        self._refresh_tokens: dict[str, tuple[str, bool]] = {}  # token -> (login, spent)
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token -> (login, expires)
        self._forced: deque[_Forced] = deque()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> AuthorizationServer:
        """Start serving on a free port of 127.0.0.1."""
        if self._httpd is not None:
            raise RuntimeError("the server is already running")
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="AuthorizationServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection. Safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._mutex:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> AuthorizationServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start()")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def resource_url(self) -> str:
        return self.url + "/resource"

    # -- what tests do --------------------------------------------------------------------

    def login(self, scope: str | None = "read") -> Token:
        """Start a new login and return its first token (as if the user just signed in)."""
        with self._mutex:
            login = secrets.token_hex(8)
            self._logins[login] = _Login()
            payload = self._issue(login, scope)
        return Token.from_response(payload)

    def revoke(self) -> None:
        """Revoke every login: their tokens stop working."""
        with self._mutex:
            for login in self._logins.values():
                if not login.revoked:
                    login.revoked = True
                    self._count(logins_revoked=1)

    def fail_next(
        self,
        status: int = 500,
        *,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
        reset: bool = False,
    ) -> None:
        """Make the next ``times`` token requests get this answer instead of a token.

        ``body`` may be bytes, text, or a dict sent as JSON. ``delay`` waits before
        answering (to make a client time out); ``reset`` drops the connection without
        an answer.
        """
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        else:
            data = body.encode() if isinstance(body, str) else body
        forced = _Forced(status, data, tuple((headers or {}).items()), delay, reset)
        with self._mutex:
            self._forced.extend([forced] * times)

    @property
    def stats(self) -> ServerStats:
        with self._mutex:
            return self._stats

    @property
    def revoked(self) -> bool:
        """Whether any login has been revoked."""
        with self._mutex:
            return any(login.revoked for login in self._logins.values())

    # -- the protocol ---------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        self._stats = dataclasses.replace(
            self._stats,
            **{name: getattr(self._stats, name) + n for name, n in increments.items()},
        )

    def _issue(self, login: str, scope: str | None) -> dict[str, Any]:
        """A token response for ``login`` (mutex held)."""
        access_token = "at-" + secrets.token_urlsafe(24)
        self._access_tokens[access_token] = (login, time.time() + self.access_ttl)
        payload: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
        }
        if scope is not None:
            payload["scope"] = scope
        if self.rotate or not any(
            owner == login and not spent for owner, spent in self._refresh_tokens.values()
        ):
            refresh_token = "rt-" + secrets.token_urlsafe(24)
            self._refresh_tokens[refresh_token] = (login, False)
            payload["refresh_token"] = refresh_token
        return payload

    def _take_forced(self) -> _Forced | None:
        with self._mutex:
            self._count(token_requests=1)
            if not self._forced:
                return None
            self._count(forced=1)
            return self._forced.popleft()

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
                raw_id, _, raw_secret = decoded.partition(":")
            except ValueError:
                return False
            client_id = urllib.parse.unquote_plus(raw_id)
            secret = urllib.parse.unquote_plus(raw_secret)
        if client_id != self.client_id:
            return False
        return self.client_secret is None or secret == self.client_secret

    def _refresh(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        presented = form.get("refresh_token", "")
        with self._mutex:
            entry = self._refresh_tokens.get(presented)
            if entry is None:
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "unknown token"}
            login_id, spent = entry
            login = self._logins[login_id]
            if spent:
                self._count(invalid_grant=1, reuse_detected=1)
                if self.reuse_detection and not login.revoked:
                    login.revoked = True
                    self._count(logins_revoked=1)
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "refresh token already used",
                }
            if login.revoked:
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "login revoked"}
            if self.rotate:
                self._refresh_tokens[presented] = (login_id, True)
            self._count(refreshes=1)
            return 200, self._issue(login_id, form.get("scope") or "read")

    def _authorized(self, authorization: str | None) -> bool:
        if self.always_refuse or not authorization or not authorization.startswith("Bearer "):
            return False
        with self._mutex:
            entry = self._access_tokens.get(authorization[7:])
            if entry is None:
                return False
            login_id, expires_at = entry
            return not self._logins[login_id].revoked and time.time() < expires_at


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    app: AuthorizationServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    timeout = 30  # an idle keep-alive connection is closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.app._mutex:
            self.server.app._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.app._mutex:
            self.server.app._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a test server has nothing to say, and must never print a token."""

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

    def do_POST(self) -> None:
        if self.path.split("?")[0] == "/token":
            self._token()
        else:
            self._resource()

    def do_GET(self) -> None:
        self._resource()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _token(self) -> None:
        app = self.server.app
        body = self._read_body()
        forced = app._take_forced()
        if forced is not None:
            if forced.delay:
                app._stopping.wait(forced.delay)
            if forced.reset:
                # SO_LINGER with a zero timeout: close() sends RST, not FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            self._send(forced.status, forced.body, forced.headers)
            return
        if app.latency:
            app._stopping.wait(app.latency)
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        status, payload = app._refresh(form, self.headers.get("Authorization"))
        self._send_json(status, payload)

    def _resource(self) -> None:
        app = self.server.app
        body = self._read_body()
        authorized = app._authorized(self.headers.get("Authorization"))
        with app._mutex:
            app._count(resource_requests=1, resource_unauthorized=0 if authorized else 1)
        if not authorized:
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


# -- the store contract -----------------------------------------------------------------


def _contract_token(n: int = 0, **changes: Any) -> Token:
    """A distinct token per ``n``, with every field set."""
    fields: dict[str, Any] = {
        "access_token": f"access-{n}-secret",
        "refresh_token": f"refresh-{n}-secret",
        "expires_at": 1_900_000_000.5 + n,
        "issued_at": 1_899_999_000.25 + n,
        "scope": "read write",
        "extra": {"id_token": f"id-{n}", "nested": {"k": [1, 2]}},
    }
    fields.update(changes)
    return Token(**fields)


class TokenStoreContract:
    """The behaviour every :class:`~requests_refresh.TokenStore` keeps, as reusable tests.

    Writing a store for another engine (PostgreSQL, DynamoDB, ...)? Subclass this in a
    pytest test class and say how to make your store; pytest runs every ``test_*``
    method below against it::

        class TestMyStore(TokenStoreContract):
            shared = True  # other processes can open the same data: lock() must exclude

            @pytest.fixture(autouse=True)
            def _database(self, tmp_path):  # whatever your store needs, per test
                self.url = start_database(tmp_path)

            def make_store(self):
                return MyStore(self.url)  # empty at the start of each test

            def reopen_store(self, store):
                return MyStore(self.url)  # a second handle on the same data

    The class needs nothing but the standard library (a test that does not apply is
    skipped with :class:`unittest.SkipTest`, which pytest honours).

    Attributes:
        shared: whether other handles (processes, machines) share the store's data: then
            :meth:`reopen_store` returns a new handle and :meth:`TokenStore.lock` must exclude
            it. False for a store that lives in one process.
        lock_wait: seconds the lock tests wait for something that must not happen (a
            second handle taking a lock that is held) and, times 20, for what must.
    """

    shared = False
    lock_wait = 0.3

    def make_store(self) -> TokenStore:
        """An empty store; called at most once per test."""
        raise NotImplementedError("a contract test class implements make_store()")

    def reopen_store(self, store: TokenStore) -> TokenStore:
        """A second handle on ``store``'s data; the same object for in-memory stores."""
        return store

    def _pair(self) -> tuple[TokenStore, TokenStore]:
        store = self.make_store()
        return store, self.reopen_store(store)

    def _require_shared(self) -> None:
        if not self.shared:
            raise unittest.SkipTest("the store lives in one process (shared = False)")

    def test_empty_store_loads_none(self) -> None:
        """A store nothing was saved to has no token."""
        assert self.make_store().load() is None

    def test_save_then_load_round_trips_every_field(self) -> None:
        """What is saved comes back equal, extra fields included, through another handle."""
        store, other = self._pair()
        token = _contract_token(1)
        store.save(token)
        loaded = other.load()
        assert loaded == token
        assert loaded is not None
        assert loaded.extra == token.extra

    def test_minimal_token_round_trips(self) -> None:
        """A token with only an access token round-trips, its missing fields still missing."""
        store, other = self._pair()
        token = Token("only-access")
        store.save(token)
        assert other.load() == token

    def test_save_replaces_the_previous_token(self) -> None:
        """A second save replaces the first."""
        store, other = self._pair()
        store.save(_contract_token(1))
        store.save(_contract_token(2))
        assert other.load() == _contract_token(2)

    def test_load_sees_a_save_made_through_another_handle(self) -> None:
        """load() reads the store each time: a token saved elsewhere is seen at once."""
        store, other = self._pair()
        store.save(_contract_token(1))
        assert store.load() == _contract_token(1)
        other.save(_contract_token(2))
        assert store.load() == _contract_token(2)

    def test_clear_removes_the_token(self) -> None:
        """After clear(), nothing is stored."""
        store, other = self._pair()
        store.save(_contract_token(1))
        store.clear()
        assert other.load() is None

    def test_clear_on_an_empty_store_is_not_an_error(self) -> None:
        """Clearing twice is fine."""
        store = self.make_store()
        store.clear()
        store.clear()
        assert store.load() is None

    def test_save_refuses_what_is_not_a_token(self) -> None:
        """Saving a dict by mistake fails at once with TypeError, and stores nothing."""
        store = self.make_store()
        try:
            store.save({"access_token": "x"})  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("save() accepted a dict")
        assert store.load() is None

    def test_lock_can_be_taken_around_load_and_save(self) -> None:
        """The adapter's reload-refresh-save sequence works under lock(), which re-enters."""
        store = self.make_store()
        store.save(_contract_token(1))
        with store.lock():
            assert store.load() == _contract_token(1)
            store.save(_contract_token(2))
            with store.lock():
                store.save(_contract_token(3))
        assert store.load() == _contract_token(3)

    def test_lock_excludes_another_handle_until_released(self) -> None:
        """While one handle holds lock(), another handle's lock() waits for its release."""
        self._require_shared()
        store, other = self._pair()
        taken = threading.Event()
        errors: list[BaseException] = []

        def take() -> None:
            try:
                with other.lock():
                    taken.set()
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        with store.lock():
            thread = threading.Thread(target=take)
            thread.start()
            assert not taken.wait(self.lock_wait), "took a lock another handle holds"
        assert taken.wait(self.lock_wait * 20), "the lock was not taken once released"
        thread.join(timeout=self.lock_wait * 20)
        assert not errors

    def test_concurrent_saves_leave_one_whole_token(self) -> None:
        """Threads saving at once leave exactly one of their tokens, never a mix."""
        store = self.make_store()
        tokens = [_contract_token(n) for n in range(8)]
        barrier = threading.Barrier(len(tokens))
        errors: list[BaseException] = []

        def save(token: Token) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(5):
                    store.save(token)
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=save, args=(token,)) for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert store.load() in tokens
