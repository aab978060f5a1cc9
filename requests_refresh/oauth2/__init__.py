"""OAuth 2.0: the token endpoint exchange every grant shares, and one module per grant."""

from __future__ import annotations

from ._exchange import ClientAuthMethod, TokenEndpoint
from .refresh import RefreshTokenGrant

__all__ = ["ClientAuthMethod", "RefreshTokenGrant", "TokenEndpoint"]
