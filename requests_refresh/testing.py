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

* ``POST /token``: the refresh token grant (RFC 6749 section 6), client credentials
  (section 4.4), the device code grant (RFC 8628) and the authorization code grant with
  PKCE (RFC 6749 section 4.1, RFC 7636).
* ``GET /.well-known/oauth-authorization-server`` and
  ``/.well-known/openid-configuration``: the server's metadata (RFC 8414); the issuer is
  :attr:`AuthorizationServer.url`.
* ``POST /device_authorization``: device authorization (RFC 8628 section 3.1). A test
  approves or denies the user code with :meth:`~AuthorizationServer.approve` and
  :meth:`~AuthorizationServer.deny` (or :attr:`~AuthorizationServer.on_user_code`); a
  person can use the page at ``/device``.
* ``GET /authorize``: the authorization endpoint for loopback redirect URIs (RFC 8252),
  PKCE S256 required. ``consent="auto"`` approves at once (for headless tests),
  ``"deny"`` answers ``access_denied``, ``"page"`` shows a consent page with a form a
  browser submits (``consent_autosubmit=True`` submits it by script).
* ``POST /revoke``: token revocation (RFC 7009); revoking a refresh token revokes its login.
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
import html
import ipaddress
import json
import secrets
import socket
import struct
import threading
import time
import unittest
import urllib.parse
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

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
        client_credentials: tokens issued by the client credentials grant.
        device_authorizations: device codes issued.
        device_polls: device code grant requests (pending, denied, ... or approved).
        authorization_codes: authorization codes issued.
        code_exchanges: authorization codes exchanged for a token.
        pkce_failures: authorization codes refused for a wrong or missing code verifier.
        revocations: tokens revoked at ``/revoke``.
    """

    token_requests: int = 0
    refreshes: int = 0
    invalid_grant: int = 0
    reuse_detected: int = 0
    logins_revoked: int = 0
    forced: int = 0
    resource_requests: int = 0
    resource_unauthorized: int = 0
    client_credentials: int = 0
    device_authorizations: int = 0
    device_polls: int = 0
    authorization_codes: int = 0
    code_exchanges: int = 0
    pkce_failures: int = 0
    revocations: int = 0


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
    started: float = dataclasses.field(default_factory=time.time)


@dataclasses.dataclass
class _Device:
    user_code: str
    scope: str | None
    expires_at: float
    status: Literal["pending", "approved", "denied", "used"] = "pending"


@dataclasses.dataclass
class _Code:
    redirect_uri: str
    challenge: str | None
    scope: str | None
    expires_at: float
    used: bool = False


#: The device code grant type (RFC 8628 section 3.4).
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Letters that cannot be read as digits or spell words (RFC 8628 section 6.1).
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


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
        device_interval: the polling ``interval`` sent with device codes, in seconds.
        device_code_ttl: lifetime of device codes, in seconds.
        consent: what ``/authorize`` does: ``"auto"`` redirects back with a code at once,
            ``"deny"`` with ``error=access_denied``, ``"page"`` shows a consent page.
        consent_autosubmit: the consent page approves by itself with a line of script
            (a real browser runs it; ``requests`` does not).

    The knobs are plain attributes and may be changed while the server runs. So are
    :attr:`on_user_code`, called with each user code the device endpoint issues (a test
    can approve it there), and :attr:`metadata_overrides`, merged into the metadata
    document (a None value removes a field: ``{"device_authorization_endpoint": None}``).

    Two more attributes bend the server the way some providers do. :attr:`token_fields`
    is merged into every token response in the same way (``{"expires_in": 0}``: a token
    said not to expire, though it still does after ``access_ttl``). :attr:`login_ttl`,
    when set, ends each login that many seconds after it started: token responses carry
    ``refresh_expires_in`` (Keycloak's field) with the time left, and a refresh after the
    end gets ``invalid_grant``.
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
        device_interval: float = 5.0,
        device_code_ttl: float = 600.0,
        consent: Literal["auto", "deny", "page"] = "auto",
        consent_autosubmit: bool = False,
    ) -> None:
        self.access_ttl = access_ttl
        self.rotate = rotate
        self.reuse_detection = reuse_detection
        self.latency = latency
        self.client_id = client_id
        self.client_secret = client_secret
        self.always_refuse = always_refuse
        self.device_interval = device_interval
        self.device_code_ttl = device_code_ttl
        self.consent = consent
        self.consent_autosubmit = consent_autosubmit
        self.on_user_code: Callable[[str], None] | None = None
        self.metadata_overrides: dict[str, Any] = {}
        self.token_fields: dict[str, Any] = {}
        self.login_ttl: float | None = None
        self._devices: dict[str, _Device] = {}  # device code -> its state
        self._user_codes: dict[str, str] = {}  # user code -> device code
        self._codes: dict[str, _Code] = {}  # authorization code -> its request
        self._token_params: deque[dict[str, str]] = deque(maxlen=256)
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

    @property
    def issuer(self) -> str:
        """The issuer identifier for discovery: the same as :attr:`url`."""
        return self.url

    @property
    def authorization_url(self) -> str:
        return self.url + "/authorize"

    @property
    def device_authorization_url(self) -> str:
        return self.url + "/device_authorization"

    @property
    def revocation_url(self) -> str:
        return self.url + "/revoke"

    def metadata(self) -> dict[str, Any]:
        """The metadata document (RFC 8414) served at the well-known addresses."""
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "token_endpoint": self.token_url,
            "authorization_endpoint": self.authorization_url,
            "device_authorization_endpoint": self.device_authorization_url,
            "revocation_endpoint": self.revocation_url,
            "response_types_supported": ["code"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                DEVICE_CODE_GRANT,
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": (
                ["client_secret_basic", "client_secret_post"]
                if self.client_secret is not None
                else ["none"]
            ),
            "scopes_supported": ["read", "write"],
        }
        for name, value in self.metadata_overrides.items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return document

    def approve(self, user_code: str) -> None:
        """Approve the device login waiting with ``user_code``, as its user would.

        Raises:
            KeyError: no device login is waiting with that user code.
        """
        self._decide(user_code, "approved")

    def deny(self, user_code: str) -> None:
        """Deny the device login waiting with ``user_code``: its polls get ``access_denied``.

        Raises:
            KeyError: no device login is waiting with that user code.
        """
        self._decide(user_code, "denied")

    @property
    def token_params(self) -> list[dict[str, str]]:
        """The form fields of recent token requests (the last 256), oldest first.

        ``client_secret`` is left out; everything else, secrets included, is kept: this
        is a test double.
        """
        with self._mutex:
            return [dict(form) for form in self._token_params]

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

    def _issue(self, login: str, scope: str | None, *, refresh: bool = True) -> dict[str, Any]:
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
        if not refresh:
            return self._bend(login, payload)
        if self.rotate or not any(
            owner == login and not spent for owner, spent in self._refresh_tokens.values()
        ):
            refresh_token = "rt-" + secrets.token_urlsafe(24)
            self._refresh_tokens[refresh_token] = (login, False)
            payload["refresh_token"] = refresh_token
        return self._bend(login, payload)

    def _bend(self, login: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with the login's end and :attr:`token_fields` (mutex held)."""
        if self.login_ttl is not None and "refresh_token" in payload:
            left = self._logins[login].started + self.login_ttl - time.time()
            payload["refresh_expires_in"] = max(left, 0.001)
        for name, value in self.token_fields.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
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
            ended = self.login_ttl is not None and time.time() >= login.started + self.login_ttl
            if login.revoked or ended:
                self._count(invalid_grant=1)
                reason = "login revoked" if login.revoked else "login ended"
                return 400, {"error": "invalid_grant", "error_description": reason}
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

    def _decide(self, user_code: str, status: Literal["approved", "denied"]) -> None:
        with self._mutex:
            device = self._devices.get(self._user_codes.get(user_code.upper(), ""))
            if device is None or device.status != "pending":
                raise KeyError(f"no device login is waiting with user code {user_code!r}")
            device.status = status

    def _grant(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Answer a token request: dispatch on ``grant_type``."""
        grant_type = form.get("grant_type")
        with self._mutex:
            self._token_params.append(
                {name: value for name, value in form.items() if name != "client_secret"}
            )
        if grant_type == "refresh_token":
            return self._refresh(form, authorization)
        if grant_type not in ("client_credentials", DEVICE_CODE_GRANT, "authorization_code"):
            return 400, {"error": "unsupported_grant_type"}
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        if grant_type == "client_credentials":
            with self._mutex:
                login = self._new_login()
                self._count(client_credentials=1)
                return 200, self._issue(login, form.get("scope") or "read", refresh=False)
        if grant_type == DEVICE_CODE_GRANT:
            return self._poll_device(form.get("device_code", ""))
        return self._exchange_code(form)

    def _new_login(self) -> str:
        login = secrets.token_hex(8)
        self._logins[login] = _Login()
        return login

    def _authorize_device(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        device_code = "dc-" + secrets.token_urlsafe(24)
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{user_code[:4]}-{user_code[4:]}"
        with self._mutex:
            self._devices[device_code] = _Device(
                user_code, form.get("scope"), time.time() + self.device_code_ttl
            )
            self._user_codes[user_code] = device_code
            self._count(device_authorizations=1)
        hook = self.on_user_code
        if hook is not None:
            hook(user_code)
        verification = self.url + "/device"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": f"{verification}?user_code={user_code}",
            "expires_in": self.device_code_ttl,
            "interval": self.device_interval,
        }

    def _poll_device(self, device_code: str) -> tuple[int, dict[str, Any]]:
        with self._mutex:
            self._count(device_polls=1)
            device = self._devices.get(device_code)
            if device is None or device.status == "used":
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            if time.time() >= device.expires_at:
                return 400, {"error": "expired_token"}
            if device.status == "denied":
                return 400, {"error": "access_denied"}
            if device.status == "pending":
                return 400, {"error": "authorization_pending"}
            device.status = "used"
            return 200, self._issue(self._new_login(), device.scope or "read")

    def _check_authorization_request(
        self, params: dict[str, str]
    ) -> tuple[str | None, str | None]:
        """(redirect_uri, None) when the redirect may be used, else (None, why not)."""
        if params.get("client_id") != self.client_id:
            return None, "unknown client_id"
        redirect_uri = params.get("redirect_uri", "")
        parts = urllib.parse.urlsplit(redirect_uri)
        try:
            loopback = parts.scheme == "http" and (
                parts.hostname == "localhost"
                or ipaddress.ip_address(parts.hostname or "").is_loopback
            )
        except ValueError:
            loopback = False
        if not loopback or parts.fragment:
            return None, "redirect_uri must be an http loopback address (RFC 8252 section 7.3)"
        return redirect_uri, None

    def _authorization_error(self, params: dict[str, str]) -> str | None:
        """The error to redirect with for a request whose redirect URI is fine."""
        if params.get("response_type") != "code":
            return "unsupported_response_type"
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return "invalid_request"
        return None

    def _issue_code(self, params: dict[str, str], redirect_uri: str) -> str:
        code = "ac-" + secrets.token_urlsafe(24)
        with self._mutex:
            self._codes[code] = _Code(
                redirect_uri,
                params.get("code_challenge"),
                params.get("scope"),
                time.time() + 60.0,
            )
            self._count(authorization_codes=1)
        return code

    def _exchange_code(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._mutex:
            code = self._codes.get(form.get("code", ""))
            if code is None or code.used or time.time() >= code.expires_at:
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            if form.get("redirect_uri") != code.redirect_uri:
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if code.challenge is not None and (not verifier or expected != code.challenge):
                self._count(invalid_grant=1, pkce_failures=1)
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "PKCE verification failed",
                }
            code.used = True
            self._count(code_exchanges=1)
            return 200, self._issue(self._new_login(), code.scope or "read")

    def _revoke_token(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        if not self._client_ok(form, authorization):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        token = form.get("token", "")
        with self._mutex:
            self._count(revocations=1)
            entry = self._refresh_tokens.get(token)
            if entry is not None:
                login = self._logins[entry[0]]
                if not login.revoked:
                    login.revoked = True
                    self._count(logins_revoked=1)
            self._access_tokens.pop(token, None)
        return 200, None  # RFC 7009 section 2.2: 200 whether or not the token was known


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
            self._send_page(200, "Device login", _device_form(params.get("user_code", "")))
        else:
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
        status, payload = app._grant(form, self.headers.get("Authorization"))
        self._send_json(status, payload)

    def _form_endpoint(self, path: str) -> None:
        app = self.server.app
        body = self._read_body()
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        authorization = self.headers.get("Authorization")
        if path == "/device_authorization":
            self._send_json(*app._authorize_device(form, authorization))
        elif path == "/revoke":
            status, payload = app._revoke_token(form, authorization)
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
                self._send_page(400, "Unknown code", "<p>No login is waiting for that code.</p>")
                return
            self._send_page(200, "Done", "<p>Done. Return to your device.</p>")

    def _authorize(self, params: dict[str, str], decision: str | None = None) -> None:
        """The authorization endpoint: GET shows or skips consent, POST is the decision."""
        app = self.server.app
        redirect_uri, problem = app._check_authorization_request(params)
        if redirect_uri is None:
            # RFC 6749 section 4.1.2.1: never redirect to an unchecked redirect URI.
            self._send_page(400, "Sign-in error", f"<p>{html.escape(str(problem))}</p>")
            return
        back = {"state": params["state"]} if "state" in params else {}
        back["iss"] = app.issuer
        error = app._authorization_error(params)
        if error is None and decision is None:
            if app.consent == "page":
                self._send_page(200, "Sign in", _consent_form(params, app.consent_autosubmit))
                return
            decision = "approve" if app.consent == "auto" else "deny"
        if error is None and decision != "approve":
            error = "access_denied"
        if error is None:
            back["code"] = app._issue_code(params, redirect_uri)
        else:
            back["error"] = error
        separator = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + separator + urllib.parse.urlencode(back)
        self._send(303, b"", (("Location", location),))

    def _send_page(self, status: int, title: str, content: str) -> None:
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>{content}</body></html>"
        )
        self._send(status, page.encode(), (("Content-Type", "text/html; charset=utf-8"),))

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


def _consent_form(params: dict[str, str], autosubmit: bool) -> str:
    """The consent page: approve and deny forms that post the request back."""
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(name)}' value='{html.escape(value)}'>"
        for name, value in params.items()
        if name != "decision"
    )
    forms = "".join(
        f"<form method='post' action='/authorize' id='{decision}'>{hidden}"
        f"<input type='hidden' name='decision' value='{decision}'>"
        f"<button type='submit'>{label}</button></form>"
        for decision, label in (("approve", "Allow"), ("deny", "Deny"))
    )
    client = html.escape(params.get("client_id", ""))
    scope = html.escape(params.get("scope", "") or "the default scope")
    script = "<script>document.getElementById('approve').submit();</script>" if autosubmit else ""
    return f"<p>{client} asks for {scope}.</p>{forms}{script}"


def _device_form(user_code: str) -> str:
    """The verification page of the device flow: enter the code, allow or deny."""
    code = html.escape(user_code)
    return (
        "<form method='post' action='/device'>"
        f"<label>Code <input name='user_code' value='{code}'></label>"
        "<button name='decision' value='approve'>Allow</button>"
        "<button name='decision' value='deny'>Deny</button></form>"
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
