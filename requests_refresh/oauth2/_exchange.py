"""The token endpoint exchange that every grant shares (RFC 6749 sections 2.3, 5.1, 5.2).

One :class:`TokenEndpoint` posts a grant's form fields to the token endpoint with the
client's authentication, and turns the answer into a :class:`~requests_refresh.Token` or
a typed error. Grants (refresh token, client credentials, device code, authorization
code) only say which fields to send. Nothing here knows about threads or stores.
"""

from __future__ import annotations

import email.utils
import math
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import requests

from .._transport import require_safe_transport
from ..exceptions import (
    InvalidGrantError,
    InvalidTokenResponseError,
    RefreshError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from ..token import Token
from ._http import BodyTooLargeError, parse_json, read_body, where

__all__ = ["ClientAuthMethod", "TokenEndpoint"]

#: How the client authenticates to the token endpoint (the names of RFC 7591 section 2).
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

# Error codes that mean "try again later" (RFC 6749 section 5.2 and 4.1.2.1).
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
#: Form fields the exchange sets itself; a grant's extra parameters may not.
RESERVED_PARAMS = frozenset({"grant_type", "client_id", "client_secret"})
_MAX_DESCRIPTION = 300
# Secrets shorter than this are not searched for in server messages: masking every "s"
# of a one-letter test secret would garble the message and protect nothing.
_MIN_REDACTED_LENGTH = 4


class TokenEndpoint:
    """One client's view of a token endpoint: where it is and how to authenticate.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id: the client identifier.
        client_secret: the client secret, for confidential clients.
        auth_method: ``"client_secret_basic"`` (HTTP Basic; the default with a secret),
            ``"client_secret_post"`` (form fields) or ``"none"`` (public client: the
            default without a secret; ``client_id`` is sent as a form field).
        timeout: seconds to wait for the token endpoint: a number or ``(connect, read)``.
        session: a session to send with, e.g. one with a client certificate. By default
            the endpoint makes its own, and closes it in :meth:`close`.
        allow_insecure_http: allow a plain http token endpoint that is not loopback.
        owner: what the user constructed and passes ``allow_insecure_http`` to (the
            grant's class name), named in the refusal of a plain http endpoint.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: ClientAuthMethod | None = None,
        timeout: float | tuple[float, float] = 10.0,
        session: requests.Session | None = None,
        allow_insecure_http: bool = False,
        owner: str = "the grant",
    ) -> None:
        if auth_method is None:
            auth_method = "none" if client_secret is None else "client_secret_basic"
        if auth_method not in ("client_secret_basic", "client_secret_post", "none"):
            raise ValueError(f"unknown auth_method {auth_method!r}")
        if auth_method != "none" and client_secret is None:
            raise ValueError(f"auth_method {auth_method!r} needs a client_secret")
        if not allow_insecure_http:
            require_safe_transport(token_url, configure=owner)
        self.owner = owner
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method: ClientAuthMethod = auth_method
        self.timeout = timeout
        self._owns_session = session is None
        self._session = requests.Session() if session is None else session

    def close(self) -> None:
        """Close the endpoint's own session (not one that was passed in)."""
        if self._owns_session:
            self._session.close()

    def where(self) -> str:
        """The endpoint's URL without query or credentials, for messages."""
        parts = urllib.parse.urlsplit(self.token_url)
        return f"{parts.scheme}://{parts.hostname or ''}{_port(parts)}{parts.path}"

    def exchange(self, params: Mapping[str, str], *, secrets: Iterable[str | None] = ()) -> Token:
        """POST ``params`` (with ``grant_type``) and the client's credentials; parse the answer.

        ``secrets`` are the grant's own secrets (a refresh token, a device code): they are
        masked wherever the server's answer is quoted, as the client secret always is.

        Raises:
            InvalidGrantError: ``invalid_grant``, whatever the HTTP status.
            TokenEndpointUnavailableError: 429, 5xx, ``temporarily_unavailable``,
                ``server_error``, a timeout or no connection (with ``retry_after``).
            TokenEndpointError: any other error answer (with ``error``,
                ``error_description`` and ``status_code``).
            InvalidTokenResponseError: a success whose body is not a usable token.
        """
        data = dict(params)
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
                f"the token endpoint {self.where()} did not answer within {self.timeout} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise TokenEndpointUnavailableError(
                f"could not connect to the token endpoint {self.where()}"
            ) from exc
        except requests.RequestException as exc:
            raise RefreshError(
                f"the request to the token endpoint {self.where()} failed ({type(exc).__name__})"
            ) from exc
        with response:
            return self._parse(response, data.get("grant_type", ""), (*secrets,), started)

    def _parse(
        self,
        response: requests.Response,
        grant_type: str,
        secrets: tuple[str | None, ...],
        started: float,
    ) -> Token:
        status = response.status_code
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            raise self._error(payload, response, grant_type, secrets)
        if 300 <= status < 400:
            raise TokenEndpointError(
                f"the token endpoint {self.where()} answered with a redirect (HTTP {status}),"
                " which is not followed: check token_url",
                status_code=status,
                response=response,
            )
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailableError(
                f"the token endpoint {self.where()} is unavailable (HTTP {status})",
                status_code=status,
                retry_after=_retry_after(response),
                response=response,
            )
        if status >= 400:
            raise TokenEndpointError(
                f"the token endpoint {self.where()} answered HTTP {status} without an OAuth error",
                status_code=status,
                response=response,
            )
        if payload is None:
            content_type = response.headers.get("Content-Type", "no content type")
            raise InvalidTokenResponseError(
                f"the token endpoint {self.where()} answered HTTP {status} with a body that"
                f" is not JSON ({content_type})",
                response=response,
            )
        try:
            return Token.from_response(payload, now=started)
        except InvalidTokenResponseError as exc:
            raise InvalidTokenResponseError(
                f"{exc} (from the token endpoint {self.where()})", response=response
            ) from None

    def _error(
        self,
        payload: dict[str, Any],
        response: requests.Response,
        grant_type: str,
        secrets: tuple[str | None, ...],
    ) -> RefreshError:
        """The typed error for an RFC 6749 section 5.2 error response."""
        status = response.status_code
        error = payload.get("error")
        description = payload.get("error_description")
        if not isinstance(error, str):
            return InvalidTokenResponseError(
                f"the token endpoint {self.where()} answered HTTP {status} with an"
                " error that is not a string",
                response=response,
            )
        description = self._redact(description, secrets) if isinstance(description, str) else None
        detail = f"{error}: {description}" if description else error
        common: dict[str, Any] = {
            "error": error,
            "error_description": description,
            "status_code": status,
            "response": response,
        }
        if error == "invalid_grant":
            return InvalidGrantError(
                f"the token endpoint refused the grant ({detail}): the login has expired or"
                " was revoked; sign in again and save the new token to the store",
                **common,
            )
        if error in _TRANSIENT_ERRORS or status == 429 or status >= 500:
            return TokenEndpointUnavailableError(
                f"the token endpoint {self.where()} is unavailable ({detail}, HTTP {status})",
                retry_after=_retry_after(response),
                **common,
            )
        advice = {
            "invalid_client": "check client_id, client_secret and auth_method",
            "unauthorized_client": f"the client may not use the {grant_type} grant",
            "unsupported_grant_type": f"the server does not offer the {grant_type} grant",
            "invalid_scope": "ask for a scope the client or login was granted",
        }.get(error, "see the token endpoint's documentation")
        return TokenEndpointError(
            f"the token endpoint {self.where()} refused the {grant_type} grant"
            f" ({detail}, HTTP {status}): {advice}",
            **common,
        )

    def _redact(self, text: str, secrets: tuple[str | None, ...]) -> str:
        """The server's text, cut short, with any of our secrets masked."""
        for secret in (*secrets, self._client_secret):
            if secret and len(secret) >= _MIN_REDACTED_LENGTH:
                text = text.replace(secret, "<redacted>")
        if len(text) > _MAX_DESCRIPTION:
            text = text[:_MAX_DESCRIPTION] + "..."
        return text

    def post_form(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        endpoint: str,
        secrets: Iterable[str | None] = (),
        allow_insecure_http: bool = False,
    ) -> dict[str, Any] | None:
        """POST ``params`` with the client's authentication to another endpoint of the server.

        For the endpoints that authenticate the client as the token endpoint does but do
        not answer with a token: device authorization (RFC 8628 section 3.1) and
        revocation (RFC 7009 section 2.1). ``endpoint`` names it in messages (``"the
        revocation endpoint"``). The answer is read up to 64 KiB, within ``timeout``
        in all; no redirect is followed.

        Returns:
            The JSON object answered, or None for a success with an empty body.

        Raises:
            TokenEndpointUnavailableError: 429, 5xx, a timeout or no connection.
            TokenEndpointError: an OAuth error answer, or any other 4xx or redirect.
            InvalidTokenResponseError: a success whose body is neither empty nor a JSON object.
        """
        if not allow_insecure_http:
            require_safe_transport(url, configure=self.owner)
        data = dict(params)
        auth = self._client_auth(data)
        place = f"{endpoint} {where(url)}"
        total = sum(self.timeout) if isinstance(self.timeout, tuple) else self.timeout
        deadline = time.monotonic() + total
        try:
            with self._session.post(
                url,
                data=data,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                body = read_body(response, deadline=deadline)
        except requests.Timeout as exc:
            raise TokenEndpointUnavailableError(
                f"the {place} did not answer within {self.timeout} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise TokenEndpointUnavailableError(f"could not connect to the {place}") from exc
        except BodyTooLargeError as exc:
            raise InvalidTokenResponseError(f"the {place} answered too much: {exc}") from None
        except requests.RequestException as exc:
            raise RefreshError(
                f"the request to the {place} failed ({type(exc).__name__})"
            ) from exc
        status = response.status_code
        payload = parse_json(body) if body.strip() else None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            error = self._redact(payload["error"], (*secrets,))[:100]
            description = payload.get("error_description")
            description = (
                self._redact(description, (*secrets,)) if isinstance(description, str) else None
            )
            detail = f"{error}: {description}" if description else error
            kind = (
                TokenEndpointUnavailableError
                if error in _TRANSIENT_ERRORS or status == 429 or status >= 500
                else TokenEndpointError
            )
            raise kind(
                f"the {place} refused the request ({detail}, HTTP {status}):"
                " check the client's configuration and the server's documentation",
                error=error,
                error_description=description,
                status_code=status,
            )
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailableError(
                f"the {place} is unavailable (HTTP {status}): try again later",
                status_code=status,
                retry_after=_retry_after(response),
            )
        if status >= 300:
            raise TokenEndpointError(
                f"the {place} answered HTTP {status}, which is neither a success nor an"
                " OAuth error: check its URL",
                status_code=status,
            )
        if payload is None and not body.strip():
            return None
        if not isinstance(payload, dict):
            raise InvalidTokenResponseError(
                f"the {place} answered HTTP {status} with a body that is not a JSON object"
            )
        return payload

    def _client_auth(self, data: dict[str, str]) -> tuple[str, str] | None:
        """Add the client's credentials to ``data``, or return them for HTTP Basic."""
        if self.auth_method == "client_secret_basic":
            assert self._client_secret is not None  # noqa: S101 - checked in __init__
            return (_form_encode(self.client_id), _form_encode(self._client_secret))
        data["client_id"] = self.client_id
        if self.auth_method == "client_secret_post":
            assert self._client_secret is not None  # noqa: S101 - checked in __init__
            data["client_secret"] = self._client_secret
        return None


def _port(parts: urllib.parse.SplitResult) -> str:
    try:
        port = parts.port
    except ValueError:
        return ""
    return "" if port is None else f":{port}"


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
