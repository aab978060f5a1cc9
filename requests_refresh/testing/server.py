"""The test authorization server: its knobs, its lifecycle, and what tests do with it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Literal

from ..token import Token
from ._handler import Listener
from ._state import DEVICE_CODE_GRANT, ForcedAnswer, OAuthState, ServerStats


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
        self._state = OAuthState(self)
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> AuthorizationServer:
        """Start serving on a free port of 127.0.0.1."""
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        self._listener = listener = Listener(self, self._state)
        self._thread = threading.Thread(
            target=listener.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="AuthorizationServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection. Safe to call twice."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> AuthorizationServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's origin, e.g. ``http://127.0.0.1:54321``."""
        if self._listener is None:
            raise RuntimeError("the server is not running: call start()")
        host, port = self._listener.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier for discovery: the same as :attr:`url`."""
        return self.url

    @property
    def token_url(self) -> str:
        """The token endpoint: every grant (RFC 6749 section 3.2)."""
        return self.url + "/token"

    @property
    def resource_url(self) -> str:
        """The protected resource: 200 for a valid bearer token, else 401."""
        return self.url + "/resource"

    @property
    def authorization_url(self) -> str:
        """The authorization endpoint, for loopback redirect URIs and PKCE S256."""
        return self.url + "/authorize"

    @property
    def device_authorization_url(self) -> str:
        """The device authorization endpoint (RFC 8628 section 3.1)."""
        return self.url + "/device_authorization"

    @property
    def revocation_url(self) -> str:
        """The revocation endpoint (RFC 7009)."""
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

    # -- what tests do --------------------------------------------------------------------

    def approve(self, user_code: str) -> None:
        """Approve the device login waiting with ``user_code``, as its user would.

        Raises:
            KeyError: no device login is waiting with that user code.
        """
        self._state.decide(user_code, "approved")

    def deny(self, user_code: str) -> None:
        """Deny the device login waiting with ``user_code``: its polls get ``access_denied``.

        Raises:
            KeyError: no device login is waiting with that user code.
        """
        self._state.decide(user_code, "denied")

    def login(self, scope: str | None = "read") -> Token:
        """Start a new login and return its first token (as if the user just signed in)."""
        return self._state.login(scope)

    def revoke(self) -> None:
        """Revoke every login: their tokens stop working."""
        self._state.revoke_all()

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
        answer = ForcedAnswer(status, data, tuple((headers or {}).items()), delay, reset)
        self._state.force(answer, times)

    # -- what tests ask -------------------------------------------------------------------

    @property
    def stats(self) -> ServerStats:
        """What the server has counted so far (a snapshot)."""
        return self._state.stats

    @property
    def revoked(self) -> bool:
        """Whether any login has been revoked."""
        return self._state.revoked

    @property
    def token_params(self) -> list[dict[str, str]]:
        """The form fields of recent token requests (the last 256), oldest first.

        ``client_secret`` is left out; everything else, secrets included, is kept: this
        is a test double.
        """
        return self._state.token_params()
