"""The token endpoint exchange that every grant shares (RFC 6749 sections 2.3, 5.1, 5.2).

One :class:`TokenEndpoint` posts a grant's form fields to the token endpoint with the
client's authentication, and turns the answer into a :class:`~requests_refresh.Token` or
a typed error. Grants (refresh token, client credentials, device code, authorization
code) only say which fields to send. Nothing here knows about threads or stores.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import math
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import requests

from .. import _fork
from .._transport import require_safe_transport
from ..exceptions import (
    InvalidGrantError,
    InvalidTokenResponseError,
    RefreshError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from ..token import Token, is_auth_scheme
from ._http import (
    JSON_HEADERS,
    MAX_BODY,
    BodyBrokenError,
    BodyTimeoutError,
    BodyTooLargeError,
    load_json,
    new_session,
    read_body,
    total_seconds,
    where,
)

__all__ = ["ClientAuthMethod", "TokenEndpoint"]

#: How the client authenticates to the token endpoint (the names of RFC 7591 section 2).
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

# Error codes that mean "try again later" (RFC 6749 section 5.2 and 4.1.2.1).
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
#: Form fields the exchange sets itself; a grant's extra parameters may not.
RESERVED_PARAMS = frozenset({"grant_type", "client_id", "client_secret"})
#: The longest ``error_description`` (or other server text) quoted in a message.
_MAX_DESCRIPTION = 300
#: The longest ``error`` code kept; RFC 6749 codes are a few words.
_MAX_ERROR = 100
# Secrets shorter than this are not searched for in server messages: masking every "s"
# of a one-letter test secret would garble the message and protect nothing.
_MIN_REDACTED_LENGTH = 4
_REDACTED = "<redacted>"
#: The largest token endpoint answer read. A token response is a few kilobytes; JWTs
#: with many claims stay well under this.
MAX_RESPONSE_BYTES = 1 << 20
# Request headers that carry credentials: dropped from a request attached to an error.
_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie")
# An answer's fields that hold secrets end so (access_token, refresh_token, id_token,
# device_code, client_secret, ...); masked in a response attached to an error.
_SECRET_FIELD_ENDINGS = ("token", "tokens", "code", "secret", "password", "assertion", "jwt")
# The fields of an RFC 6749 section 5.2 error answer.
_ERROR_FIELDS = frozenset({"error", "error_description", "error_uri"})


class TokenEndpoint:
    """One client's view of a token endpoint: where it is and how to authenticate.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id: the client identifier.
        client_secret: the client secret, for confidential clients.
        auth_method: ``"client_secret_basic"`` (HTTP Basic; the default with a secret),
            ``"client_secret_post"`` (form fields) or ``"none"`` (public client: the
            default without a secret; ``client_id`` is sent as a form field).
        timeout: seconds the whole exchange may take, from connecting to the last byte
            of the answer: a number, or ``(connect, read)`` for a total of their sum.
        session: a session to send with, e.g. one with a client certificate. By default
            the endpoint makes its own, and closes it in :meth:`close`. A session passed
            in is used as it is: while the server sends its status line and headers,
            only each read is bounded by ``timeout`` (the endpoint's own session bounds
            them as a whole).
        allow_insecure_http: allow a plain http token endpoint that is not loopback.
        owner: what the user constructed and passes ``allow_insecure_http`` to (the
            grant's class name), named in the refusal of a plain http endpoint.
        token_types: the token types the client accepts, compared case-insensitively.
            Only ``Bearer`` by default: RFC 6749 section 7.1 says a client must not use
            a token type it does not understand. Add one (``("Bearer", "DPoP")``) only if
            the API takes it as ``Authorization: <type> <access token>`` and nothing more.
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
        token_types: Iterable[str] = ("Bearer",),
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
        types = () if isinstance(token_types, str) else tuple(token_types)
        if not types or not all(isinstance(t, str) and is_auth_scheme(t) for t in types):
            raise ValueError(
                "token_types must be a non-empty collection of token type names that can"
                " go into an Authorization header, e.g. ('Bearer',)"
            )
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_method: ClientAuthMethod = auth_method
        self.timeout = timeout
        self.token_types = types
        self._accepted_types = frozenset(t.lower() for t in types)
        self._owns_session = session is None
        self._session = new_session() if session is None else session
        if self._owns_session:
            _fork.reset_in_child(self)

    def _after_fork_in_child(self) -> None:
        """A forked child gets a session of its own: the parent's pooled connections to
        the token endpoint stay the parent's (dropped here, not closed: closing could
        wait on a pool lock a thread of the parent held)."""
        self._session = new_session()

    def close(self) -> None:
        """Close the endpoint's own session (not one that was passed in)."""
        if self._owns_session:
            self._session.close()

    def where(self) -> str:
        """The endpoint's URL without query or credentials, for messages."""
        return where(self.token_url)

    def exchange(
        self,
        params: Mapping[str, str],
        *,
        secrets: Iterable[str | None] = (),
        make_rotated_token: Callable[[str], Token] | None = None,
    ) -> Token:
        """POST ``params`` (with ``grant_type``) and the client's credentials; parse the answer.

        ``secrets`` are the grant's own secrets (a refresh token, a device code): they are
        masked wherever the server's answer is quoted, as the client secret always is, in
        every encoding the request used (raw, form-encoded, base64 in Basic credentials).
        Server text is cut short and stripped of control characters; a response attached
        to an error has its request's body and credential headers removed.

        ``make_rotated_token`` turns a new refresh token, found in a success answer that
        is otherwise unusable, into the token to store (``rotated_token`` on the error):
        the refresh token grant pairs it with the old access token. Without it, such an
        error carries no token.

        The whole exchange, from connecting to the last byte of the answer, is bounded
        by ``timeout`` (with a session passed in, see ``session``); an answer over
        :data:`MAX_RESPONSE_BYTES` is not read further.

        Raises:
            InvalidGrantError: ``invalid_grant``, whatever the HTTP status.
            TokenEndpointUnavailableError: 429, 5xx, ``temporarily_unavailable``,
                ``server_error``, the exchange exceeding its timeout, no connection, or a
                connection broken mid-answer (with ``retry_after``).
            TokenEndpointError: any other error answer (with ``error``,
                ``error_description`` and ``status_code``); a TLS failure (a
                configuration problem, with no status); an error status whose body is
                over the size limit.
            InvalidTokenResponseError: a success whose body is not a usable token: not
                JSON, nested too deep, over the size limit, a field unusable, a token
                type not in ``token_types``. With ``rotated_token`` set when it carried
                a new refresh token and ``make_rotated_token`` was given.
        """
        redactor = _Redactor(secrets, self.client_id, self._client_secret)
        started = time.time()
        response, body = self._send(
            self.token_url,
            params,
            place=f"token endpoint {self.where()}",
            url_name="token_url",
            limit=MAX_RESPONSE_BYTES,
            retry_hint="a cool-off follows",
        )
        payload: Any = None
        problem = f"a body over {MAX_RESPONSE_BYTES >> 20} MiB"
        if body is not None:
            payload, problem = load_json(body)
        _scrub(response, body, payload, redactor)
        return self._parse(
            response,
            payload,
            problem,
            too_large=body is None,
            grant_type=params.get("grant_type", ""),
            redactor=redactor,
            started=started,
            make_rotated_token=make_rotated_token,
        )

    def _send(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        place: str,
        url_name: str,
        limit: int,
        retry_hint: str,
    ) -> tuple[requests.Response, bytes | None]:
        """POST ``params`` and the client's credentials to ``url``; read the answer.

        The whole exchange, from connecting to the last byte of the answer, is bounded
        by ``timeout`` (the endpoint's own session cuts a status line and headers still
        arriving at the deadline; see :class:`._http.DeadlineAdapter`); no redirect is
        followed. ``place`` names the endpoint in messages
        (``"token endpoint https://..."``), ``url_name`` the argument that sets its URL,
        ``retry_hint`` what follows a timeout. The body is None when it is over ``limit``
        bytes, and not read further.

        Raises:
            TokenEndpointUnavailableError: the exchange exceeded its timeout, no
                connection, or a connection broken mid-answer.
            TokenEndpointError: a TLS failure (a configuration problem, with no status).
            RefreshError: any other failure to send.
        """
        data = dict(params)
        auth = self._client_auth(data)
        total = total_seconds(self.timeout)
        deadline = time.monotonic() + total
        try:
            response = self._session.post(
                url,
                data=data,
                auth=auth,
                headers=JSON_HEADERS,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            _scrub_exception(exc)
            raise _transport_error(exc, place, url_name, total, retry_hint) from exc
        with response:
            try:
                return response, read_body(response, limit=limit, deadline=deadline)
            except BodyTooLargeError:
                return response, None
            except BodyTimeoutError as exc:
                raise TokenEndpointUnavailableError(
                    _timeout_message(place, total, retry_hint)
                ) from exc
            except BodyBrokenError as exc:
                raise TokenEndpointUnavailableError(
                    f"the connection to the {place} broke while it answered"
                    f" ({type(exc.__cause__).__name__})"
                ) from exc

    def _parse(
        self,
        response: requests.Response,
        payload: Any,
        problem: str,
        *,
        too_large: bool,
        grant_type: str,
        redactor: _Redactor,
        started: float,
        make_rotated_token: Callable[[str], Token] | None,
    ) -> Token:
        """The token in an answer already read: ``payload`` is its JSON, or None and
        ``problem`` says why (``too_large``: the body was over the size limit)."""
        status = response.status_code
        odd_error = False  # an "error" that is neither a code nor empty: true, [...], {...}
        if isinstance(payload, dict) and "error" in payload:
            raw_error = payload["error"]
            if isinstance(raw_error, str) and raw_error:
                raise self._error(raw_error, payload, response, grant_type, redactor)
            # An empty "error" (null, "", 0, false, [], {}) beside a token is no error:
            # read the token, and its new refresh token, as if the field were not there.
            odd_error = bool(raw_error)
            payload = {k: v for k, v in payload.items() if k not in _ERROR_FIELDS}
        oversized = f", with {problem}" if too_large else ""
        if odd_error and status >= 400:
            raise InvalidTokenResponseError(
                f"the token endpoint {self.where()} answered HTTP {status} with an error"
                " that is not a string: check token_url",
                response=response,
            )
        if 300 <= status < 400:
            raise TokenEndpointError(
                f"the token endpoint {self.where()} answered with a redirect (HTTP {status}),"
                " which is not followed: check token_url",
                status_code=status,
                response=response,
            )
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailableError(
                f"the token endpoint {self.where()} is unavailable (HTTP {status}{oversized})",
                status_code=status,
                retry_after=_retry_after(response),
                response=response,
            )
        if status >= 400:
            raise TokenEndpointError(
                f"the token endpoint {self.where()} answered HTTP {status} without an OAuth"
                f" error{oversized}: check token_url",
                status_code=status,
                response=response,
            )
        if payload is None:
            content_type = redactor.quote(response.headers.get("Content-Type", "no content type"))
            raise InvalidTokenResponseError(
                f"the token endpoint {self.where()} answered HTTP {status} with {problem}"
                f" ({content_type}), not a token response: check token_url",
                response=response,
            )
        try:
            if odd_error:
                raise InvalidTokenResponseError(
                    "the token response has an error field that is not a string"
                )
            token = Token.from_response(payload, now=started)
            if token.token_type.lower() not in self._accepted_types:
                raise InvalidTokenResponseError(
                    f"the token response's token_type is {redactor.quote(token.token_type)!r},"
                    " a type this client does not use (RFC 6749 section 7.1: a client must"
                    " not use a token type it does not understand). If the API takes it as"
                    " 'Authorization: <type> <access token>', add it to token_types"
                )
        except InvalidTokenResponseError as exc:
            rotated: Token | None = None
            kept = ""
            new_refresh_token = payload.get("refresh_token") if isinstance(payload, dict) else None
            if (
                make_rotated_token is not None
                and isinstance(new_refresh_token, str)
                and new_refresh_token
            ):
                rotated = make_rotated_token(new_refresh_token)
                kept = "; the new refresh token it carried is kept for the next attempt"
            raise InvalidTokenResponseError(
                f"{exc} (from the token endpoint {self.where()}){kept}",
                response=response,
                rotated_token=rotated,
            ) from None
        return token

    def _error(
        self,
        raw_error: str,
        payload: dict[str, Any],
        response: requests.Response,
        grant_type: str,
        redactor: _Redactor,
    ) -> RefreshError:
        """The typed error for an RFC 6749 section 5.2 error response (``raw_error``)."""
        status = response.status_code
        raw_description = payload.get("error_description")
        error, description, detail = _quote_error(raw_error, raw_description, redactor)
        common: dict[str, Any] = {
            "error": error,
            "error_description": description,
            "status_code": status,
            "response": response,
        }
        if raw_error == "invalid_grant":
            return InvalidGrantError(
                f"the token endpoint refused the grant ({detail}): the login has expired or"
                " was revoked; sign in again and save the new token to the store",
                **common,
            )
        if _is_transient(raw_error, status):
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
        }.get(raw_error, "see the token endpoint's documentation")
        return TokenEndpointError(
            f"the token endpoint {self.where()} refused the {grant_type} grant"
            f" ({detail}, HTTP {status}): {advice}",
            **common,
        )

    def post_form(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        endpoint: str,
        url_name: str = "the endpoint's URL",
        secrets: Iterable[str | None] = (),
        allow_insecure_http: bool = False,
    ) -> dict[str, Any] | None:
        """POST ``params`` with the client's authentication to another endpoint of the server.

        For the endpoints that authenticate the client as the token endpoint does but do
        not answer with a token: device authorization (RFC 8628 section 3.1) and
        revocation (RFC 7009 section 2.1). ``endpoint`` names it in messages (``"the
        revocation endpoint"``), ``url_name`` the argument that sets its URL. The answer
        is read as the token endpoint's is (bounded in time as a whole, JSON nested at
        most 32 deep), up to 64 KiB; no redirect is followed.

        Returns:
            The JSON object answered, or None for a success with an empty body.

        Raises:
            TokenEndpointUnavailableError: 429, 5xx, a timeout, no connection, or a
                connection broken mid-answer.
            TokenEndpointError: an OAuth error answer, any other 4xx or redirect, or a
                TLS failure.
            InvalidTokenResponseError: a body over 64 KiB, or a success whose body is
                neither empty nor a JSON object.
        """
        if not allow_insecure_http:
            require_safe_transport(url, configure=self.owner)
        place = f"{endpoint} {where(url)}"
        response, body = self._send(
            url,
            params,
            place=place,
            url_name=url_name,
            limit=MAX_BODY,
            retry_hint="try again later",
        )
        if body is None:
            raise InvalidTokenResponseError(
                f"the {place} answered too much: more than {MAX_BODY} bytes"
            )
        status = response.status_code
        redactor = _Redactor(secrets, self.client_id, self._client_secret)
        payload, _ = load_json(body) if body.strip() else (None, "")
        error_field = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(payload, dict) and isinstance(error_field, str) and error_field:
            error, description, detail = _quote_error(
                error_field, payload.get("error_description"), redactor
            )
            kind = (
                TokenEndpointUnavailableError
                if _is_transient(error_field, status)
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
            # RFC 6749 section 2.3.1: both parts are form-encoded before Basic encoding.
            return (_form_encode(self.client_id), _form_encode(self._client_secret))
        data["client_id"] = self.client_id
        if self.auth_method == "client_secret_post":
            assert self._client_secret is not None  # noqa: S101 - checked in __init__
            data["client_secret"] = self._client_secret
        return None


class _Redactor:
    """Masks the secrets one request carried, in every form the request carried them.

    The forms: as they are, form-encoded (``quote_plus``, as in the body, and ``quote``,
    with and without ``/`` kept), base64 of each of those, and base64 of the Basic
    credentials ``client_id:secret``, form-encoded as sent and unencoded. Base64 is matched without
    its ``=`` padding, so an echo that drops the padding is masked too.
    """

    def __init__(
        self, secrets: Iterable[str | None], client_id: str, client_secret: str | None
    ) -> None:
        forms: set[str] = set()
        for secret in (*secrets, client_secret):
            if secret and len(secret) >= _MIN_REDACTED_LENGTH:
                for form in (
                    secret,
                    urllib.parse.quote_plus(secret, safe=""),
                    urllib.parse.quote(secret, safe=""),
                    urllib.parse.quote(secret),
                ):
                    forms.add(form)
                    forms.add(_b64(form))
        if client_secret:
            # The Basic credentials, as sent (RFC 6749 section 2.3.1) and unencoded.
            forms.add(_b64(f"{_form_encode(client_id)}:{_form_encode(client_secret)}"))
            forms.add(_b64(f"{client_id}:{client_secret}"))
        # Longest first: a shorter form inside a longer one must not break the longer up.
        self._forms = sorted(
            (form for form in forms if len(form) >= _MIN_REDACTED_LENGTH), key=len, reverse=True
        )

    def text(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, _REDACTED)
        return text

    def bytes(self, data: bytes) -> bytes:
        marker = _REDACTED.encode()
        for form in self._forms:
            data = data.replace(form.encode(), marker)
            with contextlib.suppress(UnicodeEncodeError):
                data = data.replace(form.encode("latin-1"), marker)
        return data

    def quote(self, text: str, limit: int = _MAX_DESCRIPTION) -> str:
        """Server text fit for a message or a log: redacted, cut, one printable line."""
        text = self.text(text)
        if len(text) > limit:
            text = text[: limit - 3] + "..."
        return "".join(
            char if char.isprintable() else "\N{REPLACEMENT CHARACTER}" for char in text
        )


def _quote_error(
    raw_error: str, raw_description: object, redactor: _Redactor
) -> tuple[str, str | None, str]:
    """An OAuth error answer's ``error`` and ``error_description`` fit for a message,
    and both as one detail (``"invalid_client: bad secret"``)."""
    error = redactor.quote(raw_error, _MAX_ERROR)
    description = redactor.quote(raw_description) if isinstance(raw_description, str) else None
    return error, description, f"{error}: {description}" if description else error


def _is_transient(error: str, status: int) -> bool:
    """Whether an OAuth error answer means "try again later"."""
    return error in _TRANSIENT_ERRORS or status == 429 or status >= 500


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def _scrub(
    response: requests.Response, body: bytes | None, payload: Any, redactor: _Redactor
) -> None:
    """Make ``response`` safe to attach to an error.

    Its request loses its body (the refresh token, the client secret) and credential
    headers; its content becomes the body read, with every secret masked: those the
    request carried, and the answer's own (a JSON answer's ``access_token``,
    ``refresh_token``, ``id_token``, ``device_code``... at any depth, when it has any).
    It is empty when the body was over the size limit and not read, or when it is not
    a JSON object, whatever the status (a form-encoded answer, JSON nested too deep: its
    tokens cannot be told from the rest).
    """
    _scrub_request(response.request)
    if body is not None and _holds_secret_fields(payload):
        body = json.dumps(_mask_secret_fields(payload)).encode()
    elif body is not None and not isinstance(payload, dict):
        body = None
    # The body was read here from the raw stream; setting _content is how a requests
    # Response holds a body already read (response.content, .text, .json() use it).
    response._content = b"" if body is None else redactor.bytes(body)


def _is_secret_field(name: str) -> bool:
    """Whether an answer's field ``name`` holds a secret: a token, a code, a secret."""
    name = name.lower()
    return not name.startswith("error") and name.endswith(_SECRET_FIELD_ENDINGS)


def _holds_secret_fields(value: Any) -> bool:
    """Whether JSON ``value`` (nested at most 32 deep) has a secret field anywhere."""
    if isinstance(value, dict):
        return any(
            (_is_secret_field(key) and item is not None) or _holds_secret_fields(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_holds_secret_fields(item) for item in value)
    return False


def _mask_secret_fields(value: Any) -> Any:
    """A copy of JSON ``value`` with every secret field's value masked."""
    if isinstance(value, dict):
        return {
            key: _REDACTED
            if _is_secret_field(key) and item is not None
            else _mask_secret_fields(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_secret_fields(item) for item in value]
    return value


def _scrub_request(request: requests.PreparedRequest | None) -> None:
    if request is None:
        return
    request.body = None
    for name in _CREDENTIAL_HEADERS:
        request.headers.pop(name, None)


def _scrub_exception(exc: requests.RequestException) -> None:
    """Remove the credentials from the request a transport error carries."""
    request = getattr(exc, "request", None)
    if isinstance(request, requests.PreparedRequest):
        _scrub_request(request)


def _transport_error(
    exc: requests.RequestException, place: str, url_name: str, total: float, retry_hint: str
) -> RefreshError:
    """The error for a request to the ``place`` endpoint that got no answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        # Not transient: retrying will not make the certificate trusted.
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return TokenEndpointError(
                f"TLS certificate verification failed for the {place}: its certificate is"
                f" not trusted, or not valid for that host. Check the host name in {url_name}"
                " and the CA bundle: for a private CA, set REQUESTS_CA_BUNDLE to its file, or"
                " pass session= with a session whose verify= names it (and trust_env=False"
                " if REQUESTS_CA_BUNDLE is set: requests lets it win over verify=)"
            )
        return TokenEndpointError(
            f"the TLS handshake with the {place} failed: check that {url_name} is https on"
            " a TLS port, the CA bundle, and the client certificate if the server requires"
            " one (pass session= with a session whose verify= and cert= are set)"
        )
    if isinstance(exc, requests.Timeout):
        return TokenEndpointUnavailableError(_timeout_message(place, total, retry_hint))
    if isinstance(exc, requests.ConnectionError):
        return TokenEndpointUnavailableError(f"could not connect to the {place}")
    return RefreshError(f"the request to the {place} failed ({type(exc).__name__})")


def _timeout_message(place: str, total: float, retry_hint: str) -> str:
    return (
        f"the exchange with the {place} exceeded the timeout of {total:g} s: the server"
        f" did not answer in time; {retry_hint}"
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among ``exc``'s causes, arguments and urllib3 reasons."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo and len(seen) < 50:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        if isinstance(item, kind):
            return True
        seen.add(id(item))
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return False


def _form_encode(value: str) -> str:
    return urllib.parse.quote_plus(value, safe="")


def _retry_after(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
