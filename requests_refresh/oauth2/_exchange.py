"""The token endpoint exchange that every grant shares (RFC 6749 sections 5.1, 5.2).

One :class:`TokenEndpoint` posts a grant's form fields to the token endpoint with the
client's authentication, and turns the answer into a :class:`~requests_refresh.Token` or
a typed error. Grants (refresh token, client credentials, device code, authorization
code) only say which fields to send. Nothing here knows about threads or stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from .._http import load_json, require_safe_transport, where
from ..exceptions import InvalidTokenResponseError
from ..token import Token, is_auth_scheme
from ._answers import refusal
from ._client_auth import ClientAuthMethod
from ._endpoint import Endpoint
from ._redact import Redactor, scrub

__all__ = ["RESERVED_PARAMS", "ClientAuthMethod", "TokenEndpoint"]

#: Form fields the exchange sets itself; a grant's extra parameters may not.
RESERVED_PARAMS = frozenset({"grant_type", "client_id", "client_secret"})
#: The largest token endpoint answer read. A token response is a few kilobytes; JWTs
#: with many claims stay well under this.
MAX_RESPONSE_BYTES = 1 << 20
# The fields of an RFC 6749 section 5.2 error answer.
_ERROR_FIELDS = frozenset({"error", "error_description", "error_uri"})


class TokenEndpoint(Endpoint):
    """One client's view of a token endpoint: where it is and how to authenticate.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id, client_secret, auth_method: the client's identifier, its secret (for
            a confidential client), and how they are sent: ``"client_secret_basic"``
            (HTTP Basic, the default with a secret), ``"client_secret_post"`` (form
            fields) or ``"none"`` (a public client, the default without a secret: only
            ``client_id``, as a form field).
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
        if not allow_insecure_http:
            require_safe_transport(token_url, configure=owner)
        types = () if isinstance(token_types, str) else tuple(token_types)
        if not types or not all(isinstance(t, str) and is_auth_scheme(t) for t in types):
            raise ValueError(
                "token_types must be a non-empty collection of token type names that can"
                " go into an Authorization header, e.g. ('Bearer',)"
            )
        super().__init__(
            client_id,
            client_secret,
            auth_method=auth_method,
            timeout=timeout,
            session=session,
            owner=owner,
        )
        self.token_url = token_url
        self.token_types = types
        self._accepted_types = frozenset(t.lower() for t in types)

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
        redactor = self._client.redactor(secrets)
        started = time.time()
        response, body = self.send(
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
        scrub(response, body, payload, redactor)
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

    def _parse(
        self,
        response: requests.Response,
        payload: Any,
        problem: str,
        *,
        too_large: bool,
        grant_type: str,
        redactor: Redactor,
        started: float,
        make_rotated_token: Callable[[str], Token] | None,
    ) -> Token:
        """The token in an answer already read: ``payload`` is its JSON, or None and
        ``problem`` says why (``too_large``: the body was over the size limit)."""
        status = response.status_code
        place = f"token endpoint {self.where()}"
        raw_error = payload.get("error") if isinstance(payload, dict) else None
        # An "error" that is neither a code nor empty: true, [...], {...}.
        odd_error = bool(raw_error) and not isinstance(raw_error, str)
        if odd_error and status >= 400:
            raise InvalidTokenResponseError(
                f"the {place} answered HTTP {status} with an error that is not a string:"
                " check token_url",
                response=response,
            )
        error = refusal(
            response,
            payload,
            name="token endpoint",
            place=place,
            url_name="token_url",
            redactor=redactor,
            grant_type=grant_type,
            oversized=f", with {problem}" if too_large else "",
        )
        if error is not None:
            raise error
        if isinstance(payload, dict) and "error" in payload:
            # An empty "error" (null, "", 0, false, [], {}) beside a token is no error:
            # read the token, and its new refresh token, as if the field were not there.
            payload = {k: v for k, v in payload.items() if k not in _ERROR_FIELDS}
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
