"""The OAuth 2.0 refresh token grant (RFC 6749 section 6) as a refresher."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping

import requests

from .._login import format_utc
from ..exceptions import InvalidGrantError, NoTokenError
from ..token import Token
from ._exchange import RESERVED_PARAMS, ClientAuthMethod
from ._grant import EndpointGrant

__all__ = ["RefreshTokenGrant"]


class RefreshTokenGrant(EndpointGrant):
    """Exchanges a refresh token for a new token at an OAuth 2.0 token endpoint.

    Pass it as the adapter's ``refresher``. It uses its own :class:`requests.Session`
    (never the one the adapter is mounted on, which would wait on itself), follows no
    redirect, and gives up after ``timeout`` seconds.

    When the answer has no ``refresh_token``, the old one is kept (RFC 6749 section 6:
    the server may go on accepting it). When it does not say when the login ends, the
    old :attr:`~Token.refresh_expires_at` is kept, whether the refresh token was
    rotated or not: a rotation renews the refresh token, not the login. Errors come
    back typed:

    * ``invalid_grant`` (whatever the HTTP status): :class:`InvalidGrantError`;
    * a token whose login has ended (its ``refresh_expires_at`` has passed):
      :class:`InvalidGrantError` at once, without presenting the refresh token;
    * ``temporarily_unavailable``, ``server_error``, HTTP 429 and 5xx, timeouts and
      connection failures: :class:`TokenEndpointUnavailableError` (with ``retry_after``);
    * any other error: :class:`TokenEndpointError` with ``error``, ``error_description``
      and ``status_code``;
    * a success whose body is not a usable token: :class:`InvalidTokenResponseError`.
      When that answer did carry a new refresh token (rotation), the error's
      ``rotated_token`` holds it with the old access token and expiry, for the adapter
      to store: the old refresh token may be spent already.
    * a TLS failure (an untrusted certificate): :class:`TokenEndpointError`, not a
      transient error: check the CA bundle, or pass ``session=`` with ``verify=``.

    Messages quote the server's ``error`` and ``error_description`` cut short, with every
    secret the request carried masked; a response attached to an error keeps neither
    the request's body nor its ``Authorization`` header.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id: the client identifier.
        client_secret: the client secret, for confidential clients.
        auth_method: ``"client_secret_basic"`` (HTTP Basic; the default with a secret),
            ``"client_secret_post"`` (form fields) or ``"none"`` (public client: the
            default without a secret; ``client_id`` is sent as a form field).
        scope: ask for this scope (space-separated string); by default the same scope.
        extra_params: more form fields to send (``resource``, ``audience``, ...).
        timeout: seconds the whole exchange may take, from connecting to the last byte
            of the answer: a number, or ``(connect, read)`` for a total of their sum. An
            answer over 1 MiB is not read.
        session: a session to send with, e.g. one with a client certificate. By default
            the grant makes its own, and closes it in :meth:`close`. A session passed in
            is used as it is: while the server sends its status line and headers, only
            each read is bounded by ``timeout``.
        allow_insecure_http: allow a plain http token endpoint that is not loopback.
        token_types: the token types accepted, case-insensitively; only ``"Bearer"`` by
            default. RFC 6749 section 7.1: a client must not use a token type it does not
            understand, so a ``DPoP``, ``mac`` or ``N_A`` token is refused with
            :class:`InvalidTokenResponseError`. Add a type (``("Bearer", "DPoP")``) only
            if the API accepts it as ``Authorization: <type> <access token>``.
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
        token_types: Iterable[str] = ("Bearer",),
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret,
            reserved=RESERVED_PARAMS | {"refresh_token"},
            auth_method=auth_method,
            scope=scope,
            extra_params=extra_params,
            timeout=timeout,
            session=session,
            allow_insecure_http=allow_insecure_http,
            token_types=token_types,
        )

    @property
    def auth_method(self) -> ClientAuthMethod:
        """How the client authenticates to the token endpoint."""
        return self.endpoint.auth_method

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r},"
            f" auth_method={self.auth_method!r})"
        )

    def __call__(self, token: Token) -> Token:
        """Refresh ``token``: one POST to the token endpoint.

        Raises:
            NoTokenError: ``token`` has no refresh token.
            InvalidGrantError: the login has ended (``token.refresh_expires_at`` has
                passed): nothing is sent.
            InvalidGrantError, TokenEndpointError, TokenEndpointUnavailableError,
            InvalidTokenResponseError: as described on the class (with ``rotated_token``
                when the answer carried a new refresh token).
        """
        if token.refresh_token is None:
            raise NoTokenError("the stored token has no refresh token: sign in again")
        ends = token.refresh_expires_at
        if ends is not None and time.time() >= ends:
            raise InvalidGrantError(
                f"the login ended at {format_utc(ends)}: the server said its refresh token"
                " expires then, so it was not presented. Sign in again and save the new"
                " token to the store"
            )
        new = self.endpoint.exchange(
            self._params({"grant_type": "refresh_token", "refresh_token": token.refresh_token}),
            secrets=(token.refresh_token, token.access_token),
            # An unusable answer with a new refresh token: keep the old access token and
            # expiry with it, so that the login survives the error.
            make_rotated_token=lambda refresh_token: dataclasses.replace(
                token, refresh_token=refresh_token
            ),
        )
        if new.refresh_token is None:
            new = dataclasses.replace(new, refresh_token=token.refresh_token)
        if new.refresh_expires_at is None and ends is not None:
            new = dataclasses.replace(new, refresh_expires_at=ends)
        return new
