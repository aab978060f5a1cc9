"""Token stores: where a login's token lives between refreshes.

:class:`TokenStore` is the interface; :class:`MemoryTokenStore` keeps the token in memory,
:class:`FileTokenStore` in a JSON file shared by processes, :class:`KeyringTokenStore` in
the operating system's keyring, :class:`RedisTokenStore` in Redis, shared by machines (both
optional extras, imported only when constructed).
"""

from __future__ import annotations

from .base import MemoryTokenStore, TokenStore
from .file_store import FileTokenStore
from .keyring_store import KeyringTokenStore
from .redis_store import RedisTokenStore

__all__ = [
    "FileTokenStore",
    "KeyringTokenStore",
    "MemoryTokenStore",
    "RedisTokenStore",
    "TokenStore",
]
