"""Keep requests sessions authenticated when access tokens expire.

Mount a :class:`RefreshAdapter` on a :class:`requests.Session`: it attaches the token,
refreshes it ahead of expiry and when a request is refused, and replays the request.
One refresh per token generation, however many threads (and, with a shared store,
processes) hit the expiry at once.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from .adapter import RefreshAdapter, default_should_refresh
from .client_key import ClientKey
from .coordinator import AcquiringRefresher, Refresher, RefreshStats
from .dpop import DPoPKey
from .exceptions import (
    AuthorizationDeniedError,
    DiscoveryError,
    InsecureTransportError,
    InvalidGrantError,
    InvalidTokenResponseError,
    LoginError,
    LoginRequiredError,
    LoginTimeoutError,
    NoOriginError,
    NoTokenError,
    RefreshError,
    RefreshTimeoutError,
    RequestsRefreshError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    TokenStoreConflictError,
    TokenStoreError,
)
from .oauth2 import (
    ClientCredentialsGrant,
    DeviceAuthorization,
    RefreshTokenGrant,
    ServerMetadata,
    browser_login,
    device_login,
    discover,
    revoke_token,
)
from .stores import (
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
)
from .token import Token

__all__ = [
    "AcquiringRefresher",
    "AuthorizationDeniedError",
    "ClientCredentialsGrant",
    "ClientKey",
    "DPoPKey",
    "DeviceAuthorization",
    "DiscoveryError",
    "FileTokenStore",
    "InsecureTransportError",
    "InvalidGrantError",
    "InvalidTokenResponseError",
    "KeyringTokenStore",
    "LoginError",
    "LoginRequiredError",
    "LoginTimeoutError",
    "MemoryTokenStore",
    "NoOriginError",
    "NoTokenError",
    "RedisTokenStore",
    "RefreshAdapter",
    "RefreshError",
    "RefreshStats",
    "RefreshTimeoutError",
    "RefreshTokenGrant",
    "Refresher",
    "RequestsRefreshError",
    "ServerMetadata",
    "Token",
    "TokenEndpointError",
    "TokenEndpointUnavailableError",
    "TokenStore",
    "TokenStoreConflictError",
    "TokenStoreError",
    "__version__",
    "browser_login",
    "default_should_refresh",
    "device_login",
    "discover",
    "revoke_token",
]

try:
    __version__ = version("requests-refresh")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

logging.getLogger(__name__).addHandler(logging.NullHandler())
