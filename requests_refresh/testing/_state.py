"""The test server's OAuth state: logins, tokens, device and authorization codes, counts.

:class:`OAuthState` answers the protocol's questions (may this refresh token be
exchanged? is this bearer token valid?) with plain values: forms in, ``(status, JSON)``
out. It knows nothing of HTTP; the handler turns requests into calls of its public
methods. Everything it holds lives behind one lock.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import secrets
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, Protocol

from ..token import Token

#: The device code grant type (RFC 8628 section 3.4).
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Letters that cannot be read as digits or spell words (RFC 8628 section 6.1).
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"

#: An answer of the protocol: the HTTP status and the JSON body.
Answer = tuple[int, dict[str, Any]]
_INVALID_CLIENT: Answer = (401, {"error": "invalid_client", "error_description": "unknown client"})


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

    # The token endpoint and its refresh token grant.
    token_requests: int = 0
    refreshes: int = 0
    invalid_grant: int = 0
    reuse_detected: int = 0
    logins_revoked: int = 0
    forced: int = 0
    # The protected resource.
    resource_requests: int = 0
    resource_unauthorized: int = 0
    # The other grants, and revocation.
    client_credentials: int = 0
    device_authorizations: int = 0
    device_polls: int = 0
    authorization_codes: int = 0
    code_exchanges: int = 0
    pkce_failures: int = 0
    revocations: int = 0


class Settings(Protocol):
    """The server's knobs that the protocol reads; they may change while it runs."""

    access_ttl: float
    rotate: bool
    reuse_detection: bool
    client_id: str
    client_secret: str | None
    always_refuse: bool
    device_interval: float
    device_code_ttl: float
    on_user_code: Callable[[str], None] | None
    token_fields: dict[str, Any]
    login_ttl: float | None


@dataclasses.dataclass(frozen=True)
class ForcedAnswer:
    """An answer the token endpoint gives instead of a token (see ``fail_next``)."""

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


class OAuthState:
    """Logins, tokens and codes of one server, and what it counted, behind one lock.

    Args:
        settings: the server whose knobs (``access_ttl``, ``rotate``, ...) are read at
            each request.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._mutex = threading.Lock()
        self._stats = ServerStats()
        self._logins: dict[str, _Login] = {}
        self._refresh_tokens: dict[str, tuple[str, bool]] = {}  # token -> (login, spent)
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token -> (login, expires)
        self._devices: dict[str, _Device] = {}  # device code -> its state
        self._user_codes: dict[str, str] = {}  # user code -> device code
        self._codes: dict[str, _Code] = {}  # authorization code -> its request
        self._token_params: deque[dict[str, str]] = deque(maxlen=256)
        self._forced: deque[ForcedAnswer] = deque()

    # -- what tests ask and do ------------------------------------------------------------

    @property
    def stats(self) -> ServerStats:
        """The counts so far."""
        with self._mutex:
            return self._stats

    @property
    def revoked(self) -> bool:
        """Whether any login has been revoked."""
        with self._mutex:
            return any(login.revoked for login in self._logins.values())

    def token_params(self) -> list[dict[str, str]]:
        """Copies of the form fields of recent token requests, oldest first."""
        with self._mutex:
            return [dict(form) for form in self._token_params]

    def login(self, scope: str | None) -> Token:
        """Start a new login and return its first token."""
        with self._mutex:
            payload = self._issue(self._new_login(), scope)
        return Token.from_response(payload)

    def revoke_all(self) -> None:
        """Revoke every login."""
        with self._mutex:
            for login in self._logins.values():
                if not login.revoked:
                    login.revoked = True
                    self._count(logins_revoked=1)

    def force(self, answer: ForcedAnswer, times: int) -> None:
        """Give ``answer`` to the next ``times`` token requests."""
        with self._mutex:
            self._forced.extend([answer] * times)

    def decide(self, user_code: str, status: Literal["approved", "denied"]) -> None:
        """Approve or deny the device login waiting with ``user_code``; KeyError if none."""
        with self._mutex:
            device = self._devices.get(self._user_codes.get(user_code.upper(), ""))
            if device is None or device.status != "pending":
                raise KeyError(f"no device login is waiting with user code {user_code!r}")
            device.status = status

    # -- the token endpoint ---------------------------------------------------------------

    def take_forced(self) -> ForcedAnswer | None:
        """Count a token request; the forced answer it gets, if one is waiting."""
        with self._mutex:
            self._count(token_requests=1)
            if not self._forced:
                return None
            self._count(forced=1)
            return self._forced.popleft()

    def grant(self, form: dict[str, str], authorization: str | None) -> Answer:
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
            return _INVALID_CLIENT
        if grant_type == "client_credentials":
            with self._mutex:
                login = self._new_login()
                self._count(client_credentials=1)
                return 200, self._issue(login, form.get("scope") or "read", refresh=False)
        if grant_type == DEVICE_CODE_GRANT:
            return self._poll_device(form.get("device_code", ""))
        return self._exchange_code(form)

    # -- the other endpoints --------------------------------------------------------------

    def check_bearer(self, authorization: str | None) -> bool:
        """Whether a resource request's ``Authorization`` is a valid token; counted."""
        settings = self._settings
        with self._mutex:
            entry = None
            if not settings.always_refuse and (authorization or "").startswith("Bearer "):
                entry = self._access_tokens.get((authorization or "")[7:])
            valid = entry is not None and (
                not self._logins[entry[0]].revoked and time.time() < entry[1]
            )
            self._count(resource_requests=1, resource_unauthorized=0 if valid else 1)
            return valid

    def authorize_device(
        self, form: dict[str, str], authorization: str | None, verification_uri: str
    ) -> Answer:
        """Device authorization (RFC 8628 section 3.1): issue a device and a user code."""
        settings = self._settings
        if not self._client_ok(form, authorization):
            return _INVALID_CLIENT
        device_code = "dc-" + secrets.token_urlsafe(24)
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{user_code[:4]}-{user_code[4:]}"
        with self._mutex:
            self._devices[device_code] = _Device(
                user_code, form.get("scope"), time.time() + settings.device_code_ttl
            )
            self._user_codes[user_code] = device_code
            self._count(device_authorizations=1)
        hook = settings.on_user_code
        if hook is not None:
            hook(user_code)
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": settings.device_code_ttl,
            "interval": settings.device_interval,
        }

    def check_authorization_request(self, params: dict[str, str]) -> tuple[str | None, str | None]:
        """(redirect_uri, None) when the redirect may be used, else (None, why not)."""
        if params.get("client_id") != self._settings.client_id:
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

    def issue_code(self, params: dict[str, str], redirect_uri: str) -> str:
        """A new authorization code for an approved request."""
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

    def revoke_token(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """Token revocation (RFC 7009); revoking a refresh token revokes its login."""
        if not self._client_ok(form, authorization):
            return _INVALID_CLIENT
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

    # -- inside the lock, or without state ------------------------------------------------

    def _count(self, **increments: int) -> None:
        self._stats = dataclasses.replace(
            self._stats,
            **{name: getattr(self._stats, name) + n for name, n in increments.items()},
        )

    def _new_login(self) -> str:
        login = secrets.token_hex(8)
        self._logins[login] = _Login()
        return login

    def _issue(self, login: str, scope: str | None, *, refresh: bool = True) -> dict[str, Any]:
        """A token response for ``login`` (mutex held)."""
        settings = self._settings
        access_token = "at-" + secrets.token_urlsafe(24)
        self._access_tokens[access_token] = (login, time.time() + settings.access_ttl)
        payload: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": settings.access_ttl,
        }
        if scope is not None:
            payload["scope"] = scope
        if not refresh:
            return self._bend(login, payload)
        if settings.rotate or not any(
            owner == login and not spent for owner, spent in self._refresh_tokens.values()
        ):
            refresh_token = "rt-" + secrets.token_urlsafe(24)
            self._refresh_tokens[refresh_token] = (login, False)
            payload["refresh_token"] = refresh_token
        return self._bend(login, payload)

    def _bend(self, login: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` with the login's end and the ``token_fields`` setting (mutex held)."""
        settings = self._settings
        if settings.login_ttl is not None and "refresh_token" in payload:
            left = self._logins[login].started + settings.login_ttl - time.time()
            payload["refresh_expires_in"] = max(left, 0.001)
        for name, value in settings.token_fields.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return payload

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
        if client_id != self._settings.client_id:
            return False
        return self._settings.client_secret is None or secret == self._settings.client_secret

    def _refresh(self, form: dict[str, str], authorization: str | None) -> Answer:
        if not self._client_ok(form, authorization):
            return _INVALID_CLIENT
        presented = form.get("refresh_token", "")
        settings = self._settings
        with self._mutex:
            entry = self._refresh_tokens.get(presented)
            if entry is None:
                self._count(invalid_grant=1)
                return 400, {"error": "invalid_grant", "error_description": "unknown token"}
            login_id, spent = entry
            login = self._logins[login_id]
            if spent:
                self._count(invalid_grant=1, reuse_detected=1)
                if settings.reuse_detection and not login.revoked:
                    login.revoked = True
                    self._count(logins_revoked=1)
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "refresh token already used",
                }
            ended = (
                settings.login_ttl is not None
                and time.time() >= login.started + settings.login_ttl
            )
            if login.revoked or ended:
                self._count(invalid_grant=1)
                reason = "login revoked" if login.revoked else "login ended"
                return 400, {"error": "invalid_grant", "error_description": reason}
            if settings.rotate:
                self._refresh_tokens[presented] = (login_id, True)
            self._count(refreshes=1)
            return 200, self._issue(login_id, form.get("scope") or "read")

    def _poll_device(self, device_code: str) -> Answer:
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

    def _exchange_code(self, form: dict[str, str]) -> Answer:
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


def authorization_error(params: dict[str, str]) -> str | None:
    """The error to redirect with for a request whose redirect URI is fine, or None."""
    if params.get("response_type") != "code":
        return "unsupported_response_type"
    if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        return "invalid_request"
    return None
