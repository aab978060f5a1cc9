"""Authlib's OAuth 2.0 server on Flask: ``python -m tests.interop.authlib_server``.

The models are in memory, shaped like Authlib's own SQLAlchemy mixins
(``authlib.integrations.sqla_oauth2``): a token row holds the access and the refresh
token, ``issued_at`` in whole seconds, and revoking the refresh token revokes the row.
The refresh token grant issues a new refresh token and revokes the old one; a revoked
refresh token presented again is answered ``invalid_grant`` and revokes every token of
its login (reuse detection). Also: client credentials, authorization code with PKCE
(S256, required), the device flow, a login page, a consent page and a device page.

Binds 127.0.0.1 on a port the system chooses, writes its origin to the file named by
``INTEROP_URL_FILE``, then serves with waitress (threaded) until terminated.
``INTEROP_ACCESS_TTL`` sets the access token lifetime in seconds.
"""

from __future__ import annotations

import dataclasses
import html
import os
import secrets
import socket
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import (
    AuthorizationServer,
    ResourceProtector,
    current_token,
)
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from flask import Flask, Response, jsonify, redirect, request, session

from .accounts import CLIENTS, PASSWORD, REDIRECT_URI, USERNAME, Client
from .stats import TokenEndpointStats

ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
STATS = TokenEndpointStats()
ORIGIN = os.environ.get("INTEROP_ORIGIN", "http://127.0.0.1")
ACCESS_TTL = int(os.environ.get("INTEROP_ACCESS_TTL", "60"))


@dataclasses.dataclass(frozen=True)
class OAuthClient(ClientMixin):
    """A registered client, as Authlib asks for it."""

    client: Client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str:
        return REDIRECT_URI

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("read", "write"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 section 7.3: a loopback redirect may use any port.
        parts = urllib.parse.urlsplit(redirect_uri)
        return self.client.grant == "authorization_code" and (
            parts.scheme,
            parts.hostname,
            parts.path,
        ) == ("http", "127.0.0.1", "/callback")

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.client.client_secret
        return expected is not None and secrets.compare_digest(expected, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client.public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.client.grant == "authorization_code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.client.grant == "client_credentials":
            return grant_type == "client_credentials"
        return grant_type in (self.client.grant, "refresh_token")


@dataclasses.dataclass
class StoredToken(TokenMixin):
    """A token row, as ``authlib.integrations.sqla_oauth2.TokenMixin`` keeps it."""

    client_id: str
    user: str | None
    scope: str
    access_token: str
    refresh_token: str | None
    expires_in: int
    family: str
    issued_at: int = dataclasses.field(default_factory=lambda: int(time.time()))
    access_token_revoked_at: int = 0
    refresh_token_revoked_at: int = 0

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_revoked(self) -> bool:
        return bool(self.access_token_revoked_at or self.refresh_token_revoked_at)

    def is_expired(self) -> bool:
        return self.issued_at + self.expires_in < time.time()

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> OAuthClient:
        return CLIENTS_BY_ID[self.client_id]


@dataclasses.dataclass(frozen=True)
class StoredCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: float = dataclasses.field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.auth_time + 300 < time.time()


class Database:
    """Everything the server stores, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_access: dict[str, StoredToken] = {}
        self.by_refresh: dict[str, StoredToken] = {}
        self.codes: dict[str, StoredCode] = {}
        self.devices: dict[str, DeviceCredentialDict] = {}
        self.device_decisions: dict[str, tuple[str, bool]] = {}

    def save_token(self, token: dict[str, Any], oauth_request: Any) -> None:
        old = getattr(oauth_request, "refresh_token", None)
        row = StoredToken(
            client_id=oauth_request.client.get_client_id(),
            user=getattr(oauth_request, "user", None),
            scope=token.get("scope", ""),
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            expires_in=int(token["expires_in"]),
            family=old.family if isinstance(old, StoredToken) else uuid.uuid4().hex,
        )
        with self.lock:
            self.by_access[row.access_token] = row
            if row.refresh_token is not None:
                self.by_refresh[row.refresh_token] = row

    def live_refresh(self, refresh_token: str) -> StoredToken | None:
        """The row of a usable refresh token; a revoked one presented again revokes its login."""
        with self.lock:
            row = self.by_refresh.get(refresh_token)
            if row is None:
                return None
            if row.refresh_token_revoked_at:
                STATS.note("reuse_detected")
                now = int(time.time())
                for other in self.by_access.values():
                    if other.family == row.family and not other.refresh_token_revoked_at:
                        other.refresh_token_revoked_at = now
                return None
            return row

    def revoke(self, row: StoredToken) -> None:
        with self.lock:
            row.refresh_token_revoked_at = int(time.time())


DB = Database()
CLIENTS_BY_ID = {client.client_id: OAuthClient(client) for client in CLIENTS}


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def save_authorization_code(self, code: str, oauth_request: Any) -> None:
        data = oauth_request.payload.data
        with DB.lock:
            DB.codes[code] = StoredCode(
                code=code,
                client_id=oauth_request.client.get_client_id(),
                redirect_uri=oauth_request.payload.redirect_uri or "",
                scope=oauth_request.payload.scope or "",
                user=oauth_request.user,
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

    def query_authorization_code(self, code: str, client: OAuthClient) -> StoredCode | None:
        with DB.lock:
            stored = DB.codes.get(code)
        if stored and stored.client_id == client.get_client_id() and not stored.is_expired():
            return stored
        return None

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        with DB.lock:
            DB.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: StoredCode) -> str:
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredToken | None:
        return DB.live_refresh(refresh_token)

    def authenticate_user(self, refresh_token: StoredToken) -> str | None:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: StoredToken) -> None:
        DB.revoke(refresh_token)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
    ]


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS
    INTERVAL = 1

    def get_verification_uri(self) -> str:
        return ORIGIN + "/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        credential = DeviceCredentialDict(
            client_id=client_id, scope=scope, expires_at=time.time() + data["expires_in"], **data
        )
        with DB.lock:
            DB.devices[data["device_code"]] = credential


class DeviceGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
        with DB.lock:
            return DB.devices.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
        with DB.lock:
            return DB.device_decisions.get(user_code)

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        return False


class TokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> StoredToken | None:
        with DB.lock:
            return DB.by_access.get(token_string)


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_urlsafe(32)
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {
        "authorization_code": ACCESS_TTL,
        "refresh_token": ACCESS_TTL,
        "client_credentials": ACCESS_TTL,
        DEVICE_CODE_GRANT_TYPE: ACCESS_TTL,
    }
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    server = AuthorizationServer(app, query_client=CLIENTS_BY_ID.get, save_token=DB.save_token)
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(DeviceGrant)
    server.register_endpoint(DeviceEndpoint)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(TokenValidator())

    def signed_in() -> str | None:
        user = session.get("user")
        return user if isinstance(user, str) else None

    def to_login() -> Any:
        return redirect("/login?" + urllib.parse.urlencode({"next": request.full_path}))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        next_url = request.values.get("next", "/")
        if not next_url.startswith("/") or next_url.startswith("//"):
            next_url = "/"
        if request.method == "POST":
            if (request.form.get("username"), request.form.get("password")) == (
                USERNAME,
                PASSWORD,
            ):
                session["user"] = USERNAME
                return redirect(next_url)
            return Response("wrong user name or password", status=401)
        return page(
            "Sign in",
            '<input name="username"><input name="password" type="password">'
            f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
            '<button type="submit">Sign in</button>',
        )

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        user = signed_in()
        if user is None:
            return to_login()
        if request.method == "GET":
            grant = server.get_consent_grant(end_user=user)
            client_id = html.escape(grant.client.get_client_id())
            return page(
                f"Authorize {client_id}?",
                '<button type="submit" name="allow" value="yes">Authorize</button>'
                '<button type="submit" name="deny" value="yes">Cancel</button>',
            )
        grant_user = user if request.form.get("allow") == "yes" else None
        return server.create_authorization_response(grant_user=grant_user)

    @app.route("/device", methods=["GET", "POST"])
    def device() -> Any:
        user = signed_in()
        if user is None:
            return to_login()
        if request.method == "GET":
            code = html.escape(request.args.get("user_code", ""))
            return page(
                "Enter the code your device shows",
                f'<input name="user_code" value="{code}">'
                '<button type="submit" name="action" value="accept">Accept</button>'
                '<button type="submit" name="action" value="deny">Deny</button>',
            )
        user_code = request.form.get("user_code", "")
        with DB.lock:
            known = any(c.get_user_code() == user_code for c in DB.devices.values())
            if known:
                DB.device_decisions[user_code] = (user, request.form.get("action") == "accept")
        if not known:
            return Response("unknown code", status=400)
        return page("Done: you can go back to your device", "")

    @app.route("/device_authorization", methods=["POST"])
    def device_authorization() -> Any:
        return server.create_endpoint_response(DeviceEndpoint.ENDPOINT_NAME)

    @app.route("/token", methods=["POST"])
    def token() -> Any:
        response: Response = server.create_token_response()
        STATS.record(
            request.form.get("grant_type", ""),
            response.status_code,
            response.get_data(),
            request.form,
        )
        return response

    @app.route("/resource")
    @require_oauth()
    def resource() -> Any:
        return jsonify(user=current_token.user)

    @app.route("/__stats")
    def stats() -> Any:
        return jsonify(STATS.snapshot())

    return app


def page(title: str, form: str) -> str:
    return (
        f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
        f'<form method="post">{form}</form>'
    )


def main() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    global ORIGIN  # noqa: PLW0603 - known only once the port is bound
    ORIGIN = f"http://127.0.0.1:{listener.getsockname()[1]}"
    # Plain http on loopback: Authlib refuses it unless told otherwise.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    app = create_app()

    import waitress  # noqa: PLC0415

    Path(os.environ["INTEROP_URL_FILE"]).write_text(ORIGIN)
    waitress.serve(app, sockets=[listener], threads=48, connection_limit=256, _quiet=True)


if __name__ == "__main__":
    main()
