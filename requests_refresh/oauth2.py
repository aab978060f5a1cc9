"""The OAuth 2.0 refresh token grant (RFC 6749 section 6) as a refresher."""

from __future__ import annotations

import dataclasses
import email.utils
import math
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

import requests

from ._transport import require_safe_transport
from .exceptions import (
    InvalidGrantError,
    InvalidTokenResponseError,
    NoTokenError,
    RefreshError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from .token import Token

__all__ = ["ClientAuthMethod", "RefreshTokenGrant"]

#: How the client authenticates to the token endpoint (the names of RFC 7591 section 2).
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

# Error codes that mean "try again later" (RFC 6749 section 5.2 and 4.1.2.1).
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
_RESERVED_PARAMS = frozenset({"grant_type", "refresh_token", "client_id", "client_secret"})
_MAX_DESCRIPTION = 300
# Secrets shorter than this are not searched for in server messages: masking every "s"
# of a one-letter test secret would garble the message and protect nothing.
_MIN_REDACTED_LENGTH = 4


class RefreshTokenGrant:
    """Exchanges a refresh token for a new token at an OAuth 2.0 token endpoint.

    Pass it as the adapter's ``refresher``. It uses its own :class:`requests.Session`
    (never the one the adapter is mounted on, which would wait on itself), follows no
    redirect, and gives up after ``timeout`` seconds.

    When the answer has no ``refresh_token``, the old one is kept (RFC 6749 section 6:
    the server may go on accepting it). Errors come back typed:

    * ``invalid_grant`` (whatever the HTTP status): :class:`InvalidGrantError`;
    * ``temporarily_unavailable``, ``server_error``, HTTP 429 and 5xx, timeouts and
      connection failures: :class:`TokenEndpointUnavailableError` (with ``retry_after``);
    * any other error: :class:`TokenEndpointError` with ``error``, ``error_description``
      and ``status_code``;
    * a success whose body is not a usable token: :class:`InvalidTokenResponseError`.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id: the client identifier.
        client_secret: the client secret, for confidential clients.
        auth_method: ``"client_secret_basic"`` (HTTP Basic; the default with a secret),
            ``"client_secret_post"`` (form fields) or ``"none"`` (public client: the
            default without a secret; ``client_id`` is sent as a form field).
        scope: ask for this scope (space-separated string); by default the same scope.
        extra_params: more form fields to send (``resource``, ``audience``, ...).
        timeout: seconds to wait for the token endpoint: a number or ``(connect, read)``.
        session: a session to send with, e.g. one with a client certificate. By default
            the grant makes its own, and closes it in :meth:`close`.
        allow_insecure_http: allow a plain http token endpoint that is not loopback.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: ClientAuthMethod | None = None,
        scope: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = 10.0,
        session: requests.Session | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if auth_method is None:
            auth_method = "none" if client_secret is None else "client_secret_basic"
        if auth_method not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError(f"unknown auth_method {auth_method!r}")
        if auth_method != "none" and client_secret is None:
            raise ValueError(f"auth_method {auth_method!r} needs a client_secret")
        reserved = _RESERVED_PARAMS.intersection(extra_params or ())
        if reserved:
            raise ValueError(f"extra_params cannot set {sorted(reserved)}: the grant sets them")
        if not allow_insecure_http:
            require_safe_transport(token_url)
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method: ClientAuthMethod = auth_method
        self.scope = scope
        self.extra_params = dict(extra_params or {})
        self.timeout = timeout
        self._owns_session = session is None
        self._session = requests.Session() if session is None else session

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r},"
            f" auth_method={self.auth_method!r})"
        )

    def __enter__(self) -> RefreshTokenGrant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the grant's own session (not one that was passed in)."""
        if self._owns_session:
            self._session.close()

    def __call__(self, token: Token) -> Token:
        """Refresh ``token``: one POST to the token endpoint.

        Raises:
            NoTokenError: ``token`` has no refresh token.
            InvalidGrantError, TokenEndpointError, TokenEndpointUnavailableError,
            InvalidTokenResponseError: as described on the class.
        """
        if token.refresh_token is None:
            raise NoTokenError("the stored token has no refresh token: sign in again")
        data = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
        if self.scope is not None:
            data["scope"] = self.scope
        data.update(self.extra_params)
        auth: tuple[str, str] | None = None
        if self.auth_method == "client_secret_basic":
            assert self._client_secret is not None  # noqa: S101 - checked in __init__
            # RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
            auth = (_form_encode(self.client_id), _form_encode(self._client_secret))
        else:
            data["client_id"] = self.client_id
            if self.auth_method == "client_secret_post":
                assert self._client_secret is not None  # noqa: S101 - checked in __init__
                data["client_secret"] = self._client_secret
        started = time.time()
        try:
            response = self._session.post(
                self.token_url,
                data=data,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TokenEndpointUnavailableError(
                f"the token endpoint {self._where()} did not answer within {self.timeout} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise TokenEndpointUnavailableError(
                f"could not connect to the token endpoint {self._where()}"
            ) from exc
        except requests.RequestException as exc:
            raise RefreshError(
                f"the request to the token endpoint {self._where()} failed ({type(exc).__name__})"
            ) from exc
        with response:
            new = self._parse(response, token, started)
        if new.refresh_token is None:
            new = dataclasses.replace(new, refresh_token=token.refresh_token)
        return new

    def _parse(self, response: requests.Response, token: Token, started: float) -> Token:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            raise self._error(payload, response, token)
        if 300 <= status < 400:
            raise TokenEndpointError(
                f"the token endpoint {self._where()} answered with a redirect (HTTP {status}),"
                " which is not followed: check token_url",
                status_code=status,
                response=response,
            )
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailableError(
                f"the token endpoint {self._where()} is unavailable (HTTP {status})",
                status_code=status,
                retry_after=_retry_after(response),
                response=response,
            )
        if status >= 400:
            raise TokenEndpointError(
                f"the token endpoint {self._where()} answered HTTP {status}"
                " without an OAuth error",
                status_code=status,
                response=response,
            )
        if payload is None:
            content_type = response.headers.get("Content-Type", "no content type")
            raise InvalidTokenResponseError(
                f"the token endpoint {self._where()} answered HTTP {status} with a body that"
                f" is not JSON ({content_type})",
                response=response,
            )
        try:
            return Token.from_response(payload, now=started)
        except InvalidTokenResponseError as exc:
            raise InvalidTokenResponseError(
                f"{exc} (from the token endpoint {self._where()})", response=response
            ) from None

    def _error(
        self, payload: dict[str, Any], response: requests.Response, token: Token
    ) -> RefreshError:
        """The typed error for an RFC 6749 section 5.2 error response."""
        status = response.status_code
        error = payload.get("error")
        description = payload.get("error_description")
        if not isinstance(error, str):
            return InvalidTokenResponseError(
                f"the token endpoint {self._where()} answered HTTP {status} with an"
                " error that is not a string",
                response=response,
            )
        description = self._redact(description, token) if isinstance(description, str) else None
        detail = f"{error}: {description}" if description else error
        common: dict[str, Any] = {
            "error": error,
            "error_description": description,
            "status_code": status,
            "response": response,
        }
        if error == "invalid_grant":
            return InvalidGrantError(
                f"the refresh token was refused ({detail}): the login has expired or was"
                " revoked; sign in again and save the new token to the store",
                **common,
            )
        if error in _TRANSIENT_ERRORS or status == 429 or status >= 500:
            return TokenEndpointUnavailableError(
                f"the token endpoint {self._where()} is unavailable ({detail}, HTTP {status})",
                retry_after=_retry_after(response),
                **common,
            )
        advice = {
            "invalid_client": "check client_id, client_secret and auth_method",
            "unauthorized_client": "the client may not use the refresh_token grant",
            "invalid_scope": "ask for a scope the login was granted",
        }.get(error, "see the token endpoint's documentation")
        return TokenEndpointError(
            f"the token endpoint {self._where()} refused the refresh ({detail}, HTTP {status}):"
            f" {advice}",
            **common,
        )

    def _redact(self, text: str, token: Token) -> str:
        """The server's description, cut short, with any of our secrets masked."""
        for secret in (token.refresh_token, token.access_token, self._client_secret):
            if secret and len(secret) >= _MIN_REDACTED_LENGTH:
                text = text.replace(secret, "<redacted>")
        if len(text) > _MAX_DESCRIPTION:
            text = text[:_MAX_DESCRIPTION] + "..."
        return text

    def _where(self) -> str:
        parts = urllib.parse.urlsplit(self.token_url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _form_encode(value: str) -> str:
    return urllib.parse.quote_plus(value, safe="")


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
