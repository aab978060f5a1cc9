"""Posting a form, with the client's authentication, to an endpoint of the authorization
server: the token endpoint, device authorization (RFC 8628 section 3.1), revocation
(RFC 7009 section 2.1). Nothing here knows about tokens, threads or stores.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from .. import _fork
from .._deadline import new_session
from .._http import (
    JSON_HEADERS,
    MAX_BODY,
    BodyBrokenError,
    BodyTimeoutError,
    BodyTooLargeError,
    load_json,
    read_body,
    require_safe_transport,
    total_seconds,
    where,
)
from ..exceptions import InvalidTokenResponseError, TokenEndpointUnavailableError
from ._answers import refusal, timeout_message, transport_error
from ._client_auth import ClientAuth, ClientAuthMethod
from ._redact import scrub, scrub_exception

__all__ = ["Endpoint"]


class Endpoint:
    """A client of the authorization server: how it authenticates, and what it sends with.

    The endpoints' URLs are given per request. ``timeout``, ``session`` and ``owner`` are
    as for :class:`~requests_refresh.oauth2.TokenEndpoint`; ``auth_method`` defaults, and
    is checked, as there.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: ClientAuthMethod | None = None,
        timeout: float | tuple[float, float] = 10.0,
        session: requests.Session | None = None,
        owner: str = "the grant",
    ) -> None:
        self._client = ClientAuth(client_id, client_secret, auth_method)
        self.client_id = client_id
        self.auth_method: ClientAuthMethod = self._client.method
        self.timeout = timeout
        self.owner = owner
        self._owns_session = session is None
        self._session = new_session() if session is None else session
        if self._owns_session:
            _fork.reset_in_child(self)

    def _after_fork_in_child(self) -> None:
        """A forked child gets a session of its own: the parent's pooled connections to
        the server stay the parent's (dropped here, not closed: closing could wait on a
        pool lock a thread of the parent held)."""
        self._session = new_session()

    def close(self) -> None:
        """Close the endpoint's own session (not one that was passed in)."""
        if self._owns_session:
            self._session.close()

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
        """POST ``params`` with the client's authentication to an endpoint that answers
        with JSON, not a token: device authorization or revocation.

        ``endpoint`` names it in messages (``"revocation endpoint"``), ``url_name`` the
        argument that sets its URL; ``secrets`` are masked wherever the answer is quoted.
        The answer is read as the token endpoint's is (bounded in time as a whole, JSON
        nested at most 32 deep), up to 64 KiB; no redirect is followed. Errors carry the
        response, scrubbed of secrets.

        Returns:
            The JSON object answered, or None for a success with an empty body.

        Raises:
            TokenEndpointUnavailableError: 429, 5xx, ``temporarily_unavailable``,
                ``server_error``, a timeout, no connection, or a connection broken
                mid-answer.
            TokenEndpointError: any other OAuth error answer, 4xx or redirect, or a TLS
                failure.
            InvalidTokenResponseError: a success whose body is over 64 KiB, or neither
                empty nor a JSON object.
        """
        if not allow_insecure_http:
            require_safe_transport(url, configure=self.owner)
        place = f"{endpoint} {where(url)}"
        response, body = self.send(
            url,
            params,
            place=place,
            url_name=url_name,
            limit=MAX_BODY,
            retry_hint="try again later",
        )
        empty = body is not None and not body.strip()
        payload, _ = (None, "") if body is None or empty else load_json(body)
        redactor = self._client.redactor(secrets)
        scrub(response, body, payload, redactor)
        error = refusal(
            response,
            payload,
            name=endpoint,
            place=place,
            url_name=url_name,
            redactor=redactor,
            oversized="" if body is not None else f", with a body over {MAX_BODY >> 10} KiB",
        )
        if error is not None:
            raise error
        if body is None:
            raise InvalidTokenResponseError(
                f"the {place} answered too much: more than {MAX_BODY} bytes", response=response
            )
        if empty:
            return None
        if not isinstance(payload, dict):
            raise InvalidTokenResponseError(
                f"the {place} answered HTTP {response.status_code} with a body that is not a"
                " JSON object",
                response=response,
            )
        return payload

    def send(
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
        arriving at the deadline; see :class:`.._deadline.DeadlineAdapter`); no redirect
        is followed. ``place`` names the endpoint in messages
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
        auth = self._client.apply(data)
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
            scrub_exception(exc)
            raise transport_error(exc, place, url_name, total, retry_hint) from exc
        with response:
            try:
                return response, read_body(response, limit=limit, deadline=deadline)
            except BodyTooLargeError:
                return response, None
            except BodyTimeoutError as exc:
                raise TokenEndpointUnavailableError(
                    timeout_message(place, total, retry_hint)
                ) from exc
            except BodyBrokenError as exc:
                raise TokenEndpointUnavailableError(
                    f"the connection to the {place} broke while it answered"
                    f" ({type(exc.__cause__).__name__})"
                ) from exc
