"""Token revocation (RFC 7009): sign out at the server, not only locally."""

from __future__ import annotations

import requests

from ..token import Token
from ._client_auth import ClientAuthMethod
from ._endpoint import Endpoint
from .discovery import resolve_endpoints

__all__ = ["revoke_token"]


def revoke_token(
    token: Token | str,
    client_id: str,
    *,
    issuer: str | None = None,
    revocation_url: str | None = None,
    client_secret: str | None = None,
    auth_method: ClientAuthMethod | None = None,
    token_type_hint: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
    allow_insecure_http: bool = False,
) -> None:
    """Revoke ``token`` at the server's revocation endpoint (RFC 7009).

    Given a :class:`Token`, revokes its refresh token (which ends the whole login on
    most servers), or its access token when it has none. The server answers success
    for a token it does not know (already revoked or expired): so does this function.

    Args:
        token: the token to revoke: a :class:`Token`, or the token string itself.
        client_id: the client the token was issued to.
        issuer: the server's issuer, to discover ``revocation_url``.
        revocation_url: the revocation endpoint, instead of discovery.
        client_secret, auth_method: the client's authentication, as for
            :class:`RefreshTokenGrant`.
        token_type_hint: ``"refresh_token"`` or ``"access_token"``; set for you when
            ``token`` is a :class:`Token`.
        timeout: seconds to wait for the server.
        session: a session to send with; by default one of its own, closed at the end.
        allow_insecure_http: allow a plain http endpoint that is not loopback.

    Raises:
        DiscoveryError: the issuer's metadata has no revocation endpoint.
        TokenEndpointError: the server refused (``invalid_client``,
            ``unsupported_token_type``, ...).
        TokenEndpointUnavailableError: the server could not answer now: try again.
    """
    if isinstance(token, Token):
        if token.refresh_token is not None:
            value, token_type_hint = token.refresh_token, token_type_hint or "refresh_token"
        else:
            value, token_type_hint = token.access_token, token_type_hint or "access_token"
    else:
        value = token
    # The client authenticates to the revocation endpoint as to the token endpoint.
    urls, _ = resolve_endpoints(
        issuer,
        {"revocation_endpoint": revocation_url},
        timeout=timeout,
        session=session,
        allow_insecure_http=allow_insecure_http,
    )
    url = urls["revocation_endpoint"]
    endpoint = Endpoint(
        client_id,
        client_secret,
        auth_method=auth_method,
        timeout=timeout,
        session=session,
        owner="revoke_token()",
    )
    try:
        params = {"token": value}
        if token_type_hint is not None:
            params["token_type_hint"] = token_type_hint
        endpoint.post_form(
            url,
            params,
            endpoint="revocation endpoint",
            url_name="revocation_url",
            secrets=(value,),
            allow_insecure_http=allow_insecure_http,
        )
    finally:
        endpoint.close()
