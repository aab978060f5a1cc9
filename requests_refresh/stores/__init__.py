"""Token stores: where a login's token lives between refreshes.

:class:`TokenStore` is the interface; :class:`MemoryTokenStore` keeps the token in memory,
:class:`FileTokenStore` in a JSON file shared by processes, :class:`KeyringTokenStore` in
the operating system's keyring (an optional extra, imported only when constructed).
"""

from __future__ import annotations

from .base import MemoryTokenStore, TokenStore
from .file_store import FileTokenStore
from .keyring_store import KeyringTokenStore

__all__ = ["FileTokenStore", "KeyringTokenStore", "MemoryTokenStore", "TokenStore"]
