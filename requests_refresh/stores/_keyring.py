"""What :class:`KeyringTokenStore` knows of ``keyring`` itself.

Which backends are the operating system's encrypted stores, where the store's lock file
lives, and what each keyring failure means for the user, in words that say what to do.
``keyring`` is an optional dependency: it is imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._values import type_name
from ..exceptions import TokenStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["SECURE_BACKENDS", "default_lock_path", "keyring_error", "refuse_insecure"]

#: ``keyring``'s backends for the encrypted stores of the operating system, as
#: ``(module, class name)``: the macOS Keychain, Windows Credential Manager, the
#: freedesktop Secret Service (also through libsecret) and KWallet. Subclasses count too.
SECURE_BACKENDS = frozenset(
    {
        ("keyring.backends.macOS", "Keyring"),
        ("keyring.backends.Windows", "WinVaultKeyring"),
        ("keyring.backends.SecretService", "Keyring"),
        ("keyring.backends.libsecret", "Keyring"),
        ("keyring.backends.kwallet", "DBusKeyring"),
    }
)
# keyring's "no backend" placeholder stores nothing: it fails every call with
# NoKeyringError, which the store reports as "no usable OS keyring", so it passes here.
_NO_BACKEND = ("keyring.backends.fail", "Keyring")


def default_lock_path(service: str, username: str) -> Path:
    """The lock file a :class:`KeyringTokenStore` uses when given no ``lock_path``.

    It lives in ``requests-refresh/`` under the user's runtime directory
    (``$XDG_RUNTIME_DIR``) when there is one, else the cache directory: ``$XDG_CACHE_HOME``
    or ``~/.cache``, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows. Its name
    is a hash of ``(service, username)``, never the names themselves, which could contain
    path separators.
    """
    digest = hashlib.sha256(json.dumps([service, username]).encode()).hexdigest()[:32]
    return _lock_directory() / f"keyring-{digest}.lock"


def _lock_directory() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        base = Path(runtime)
    elif sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        cache = os.environ.get("XDG_CACHE_HOME")
        base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "requests-refresh"


def refuse_insecure(backend: KeyringBackend, entry: str) -> None:
    """Raise unless ``backend`` (a chainer's first backend) is an encrypted OS store.

    Raises:
        TokenStoreError: the backend would keep ``entry`` where other programs can read
            it; the message says which stores to use instead.
    """
    from keyring.backends.chainer import ChainerBackend  # noqa: PLC0415 - optional

    judged = backend
    if isinstance(backend, ChainerBackend):
        chained = list(backend.backends)
        if chained:  # an empty chainer keeps nothing: judged (and refused) as itself
            judged = chained[0]
    names = {(kind.__module__, kind.__qualname__) for kind in type(judged).__mro__}
    if names & SECURE_BACKENDS or _NO_BACKEND in names:
        return
    where = getattr(judged, "file_path", None)
    how = f" in the file {where}" if isinstance(where, str) else ""
    raise TokenStoreError(
        f"refusing to keep {entry} in the keyring backend"
        f" {type_name(judged)}: it is not an encrypted store of the operating system,"
        f" so the refresh token would be kept{how} where other programs can read it."
        " Use the OS keyring (macOS Keychain, Windows Credential Manager, a Secret"
        " Service such as gnome-keyring, or KWallet; see `keyring --list-backends` and"
        " PYTHON_KEYRING_BACKEND), or FileTokenStore (a file only you can read), or pass"
        " allow_insecure_backend=True to KeyringTokenStore to use this backend anyway"
    )


def keyring_error(
    exc: Exception,
    action: str,
    entry: str,
    *,
    backend: Callable[[], str],
    max_part_size: int,
) -> TokenStoreError:
    """A TokenStoreError saying what to do about ``exc``, raised by the keyring.

    Args:
        exc: what the keyring raised.
        action: ``"read"``, ``"write"`` or ``"delete"``.
        entry: the entry, as messages name it.
        backend: names the backend in use (called only when a message needs it).
        max_part_size: the store's setting, suggested smaller when a write is refused.
    """
    from keyring.errors import (  # noqa: PLC0415 - optional dependency
        InitError,
        KeyringError,
        KeyringLocked,
        NoKeyringError,
        PasswordSetError,
    )

    if isinstance(exc, NoKeyringError):
        message = (
            f"no usable OS keyring backend was found to {action} {entry} (usual on"
            " headless Linux, in containers and over SSH): use FileTokenStore instead,"
            " or install and unlock a keyring (e.g. gnome-keyring for the Secret"
            " Service) or name a backend in PYTHON_KEYRING_BACKEND"
        )
    elif isinstance(exc, KeyringLocked):
        message = (
            f"the OS keyring is locked, so {entry} could not be {_past(action)}:"
            " unlock it (sign in to the desktop session, or unlock the login keyring)"
            " and try again"
        )
    elif isinstance(exc, InitError):
        message = (
            f"the keyring backend could not be initialised to {action} {entry}:"
            " check `keyring --list-backends`, or use FileTokenStore instead"
        )
    elif isinstance(exc, PasswordSetError) or action == "write":
        message = (
            f"the keyring ({backend()}) refused to store {entry}"
            f" ({type(exc).__name__}): if it limits the size of a secret, pass a"
            f" smaller max_part_size (now {max_part_size}); check that the"
            " keyring is unlocked and writable"
        )
    elif isinstance(exc, KeyringError):
        message = (
            f"the keyring ({backend()}) could not {action} {entry}"
            f" ({type(exc).__name__}): check that it is unlocked and working"
            " (`keyring --list-backends`), or use FileTokenStore instead"
        )
    else:
        message = (
            f"the keyring backend {backend()} failed to {action} {entry}"
            f" ({type(exc).__name__}): check that it is unlocked and working"
            " (`keyring --list-backends`), or use FileTokenStore instead"
        )
    return TokenStoreError(message)


def _past(action: str) -> str:
    """``"read"`` -> ``"read"``, ``"write"`` -> ``"written"``, ``"delete"`` -> ``"deleted"``."""
    return {"write": "written", "delete": "deleted"}.get(action, action)
