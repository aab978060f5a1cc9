"""The OAuth 2.0 client credentials grant (RFC 6749 section 4.4) as a refresher."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from .._http import total_seconds
from ..token import Token
from ._exchange import RESERVED_PARAMS, ClientAuthMethod
from ._grant import EndpointGrant
from .discovery import resolve_endpoints

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant(EndpointGrant):
    """Gets a new token with the client's own credentials, for machine-to-machine APIs.

    Pass it as the adapter's ``refresher``. It needs no stored token: an adapter whose
    store is empty gets the first token from it on the first request (see
    :meth:`acquire`), and every later one when the token is due or refused, one call per
    token generation however many threads are waiting. Each call sends the same
    ``scope`` and ``extra_params`` (``audience``, ``resource``, ...)::

        grant = ClientCredentialsGrant(
            "https://auth.example.com/oauth/token", "crawler", os.environ["CLIENT_SECRET"],
            scope="read", extra_params={"audience": "https://api.example.com/"},
        )
        adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=grant)

    Errors are typed as for :class:`RefreshTokenGrant`. A ``refresh_token`` the server
    sends anyway is kept in the token but never used.

    Args:
        token_url: the token endpoint. https, or http to a loopback address.
        client_id: the client identifier.
        client_secret: the client secret; None for a client that authenticates otherwise
            (e.g. a ``session`` with a client certificate, with ``auth_method="none"``).
        auth_method: ``"client_secret_basic"`` (the default with a secret),
            ``"client_secret_post"`` or ``"none"``.
        scope: the scope to ask for (space-separated), or None for the client's default.
        extra_params: more form fields to send on every request (``audience``,
            ``resource``, ...).
        timeout: seconds to wait for the token endpoint: a number or ``(connect, read)``.
        session: a session to send with. By default the grant makes its own, and closes
            it in :meth:`close`.
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
        super().__init__(
            token_url,
            client_id,
            client_secret,
            reserved=RESERVED_PARAMS | {"scope"},
            auth_method=auth_method,
            scope=scope,
            extra_params=extra_params,
            timeout=timeout,
            session=session,
            allow_insecure_http=allow_insecure_http,
        )

    @classmethod
    def from_issuer(
        cls,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: ClientAuthMethod | None = None,
        scope: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = 10.0,
        session: requests.Session | None = None,
        allow_insecure_http: bool = False,
    ) -> ClientCredentialsGrant:
        """The grant for the token endpoint that ``issuer``'s metadata names (one fetch now).

        Raises:
            DiscoveryError: see :func:`discover`; or the metadata has no token endpoint.
        """
        urls, _ = resolve_endpoints(
            issuer,
            {"token_endpoint": None},
            timeout=total_seconds(timeout),
            session=session,
            allow_insecure_http=allow_insecure_http,
        )
        return cls(
            urls["token_endpoint"],
            client_id,
            client_secret,
            auth_method=auth_method,
            scope=scope,
            extra_params=extra_params,
            timeout=timeout,
            session=session,
            allow_insecure_http=allow_insecure_http,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r},"
            f" scope={self.scope!r})"
        )

    def acquire(self) -> Token:
        """Get a new token: one POST with ``grant_type=client_credentials``.

        This method is what tells :class:`RefreshAdapter` that the grant can start
        with nothing stored.

        Raises:
            TokenEndpointError, TokenEndpointUnavailableError, InvalidTokenResponseError:
                as for :class:`RefreshTokenGrant`.
        """
        return self.endpoint.exchange(self._params({"grant_type": "client_credentials"}))

    def __call__(self, token: Token) -> Token:
        """Replace ``token`` (whatever it holds) with a new one from :meth:`acquire`."""
        return self.acquire()
