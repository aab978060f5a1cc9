"""A small OAuth 2.0 authorization server and protected resource, for tests and demos.

:class:`AuthorizationServer` runs on 127.0.0.1 in a background thread and behaves like a
strict identity provider: short-lived access tokens, single-use (rotating) refresh
tokens, and reuse detection that revokes the whole login when a spent refresh token is
presented again. It counts what happens, so a test can assert "exactly one refresh"::

    from requests_refresh.testing import AuthorizationServer

    with AuthorizationServer(access_ttl=1.0) as server:
        store = MemoryTokenStore(server.login())
        grant = RefreshTokenGrant(server.token_url, client_id=server.client_id)
        ...
        assert server.stats.invalid_grant == 0

Endpoints:

* ``POST /token``: the refresh token grant (RFC 6749 section 6), client credentials
  (section 4.4), the device code grant (RFC 8628) and the authorization code grant with
  PKCE (RFC 6749 section 4.1, RFC 7636).
* ``GET /.well-known/oauth-authorization-server`` and
  ``/.well-known/openid-configuration``: the server's metadata (RFC 8414); the issuer is
  :attr:`AuthorizationServer.url`.
* ``POST /device_authorization``: device authorization (RFC 8628 section 3.1). A test
  approves or denies the user code with :meth:`~AuthorizationServer.approve` and
  :meth:`~AuthorizationServer.deny` (or :attr:`~AuthorizationServer.on_user_code`); a
  person can use the page at ``/device``.
* ``GET /authorize``: the authorization endpoint for loopback redirect URIs (RFC 8252),
  PKCE S256 required. ``consent="auto"`` approves at once (for headless tests),
  ``"deny"`` answers ``access_denied``, ``"page"`` shows a consent page with a form a
  browser submits (``consent_autosubmit=True`` submits it by script).
* ``POST /revoke``: token revocation (RFC 7009); revoking a refresh token revokes its login.
* ``/resource`` (any method): 200 with a JSON description of the request (method, body
  length and SHA-256) for a valid bearer token; 401 with ``WWW-Authenticate`` otherwise.

It is a test double: it keeps everything in memory and is not meant to face a network.

:class:`TokenStoreContract` is the behaviour every :class:`~requests_refresh.TokenStore`
keeps, as tests to run against a store of your own (see its docstring); :func:`make_token`
makes distinct tokens with every field set, for a store's own tests.
"""

from __future__ import annotations

from ._state import DEVICE_CODE_GRANT, ServerStats
from .contract import TokenStoreContract, make_token
from .server import AuthorizationServer

__all__ = [
    "DEVICE_CODE_GRANT",
    "AuthorizationServer",
    "ServerStats",
    "TokenStoreContract",
    "make_token",
]
