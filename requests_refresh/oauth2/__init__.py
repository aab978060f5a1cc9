"""OAuth 2.0: the token endpoint exchange every grant shares, one module per grant or
flow, discovery and revocation."""

from __future__ import annotations

from ._client_auth import ClientAuthMethod
from ._exchange import TokenEndpoint
from .browser import browser_login
from .client_credentials import ClientCredentialsGrant
from .device import DeviceAuthorization, device_login
from .discovery import ServerMetadata, discover
from .refresh import RefreshTokenGrant
from .revocation import revoke_token

__all__ = [
    "ClientAuthMethod",
    "ClientCredentialsGrant",
    "DeviceAuthorization",
    "RefreshTokenGrant",
    "ServerMetadata",
    "TokenEndpoint",
    "browser_login",
    "device_login",
    "discover",
    "revoke_token",
]
