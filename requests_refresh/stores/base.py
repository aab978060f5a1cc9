"""Where tokens live between refreshes: the storage interface and the in-memory store."""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Iterator

from .._fork import reset_in_child
from ..token import Token

__all__ = ["MemoryTokenStore", "TokenStore"]


class TokenStore(abc.ABC):
    """Storage for one login's token.

    The adapter reads the store at start, when its token is expired or refused, and
    after a failed refresh; it writes every new token to the store *before* any request
    uses it. Around each refresh it holds :meth:`lock` and does::

        with store.lock():
            stored = store.load()
            if stored differs from the token it last saw:
                use stored            # someone else refreshed: no token endpoint call
            else:
                new = refresher(current)
                store.save(new)

    so stores shared between processes never let two of them present the same
    (single-use) refresh token. Subclasses implement :meth:`load`, :meth:`save` and
    :meth:`clear`; stores shared between processes also override :meth:`lock`.

    Errors: implementations raise :class:`~requests_refresh.TokenStoreError` (with a
    message that says what to do) for anything that goes wrong, never a bare ``OSError``.
    """

    @abc.abstractmethod
    def load(self) -> Token | None:
        """Return the stored token, or None when nothing is stored."""

    @abc.abstractmethod
    def save(self, token: Token) -> None:
        """Store ``token``, replacing what was stored. Durable when it returns."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove the stored token. Clearing an empty store is not an error."""

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's lock across reload, refresh and save.

        The default does nothing: right for a store no other process can see, since
        threads of one process are already coordinated by the adapter. Stores shared
        between processes override this with a cross-process lock whose wait is bounded.
        """
        yield


class MemoryTokenStore(TokenStore):
    """Keeps the token in memory: for scripts that get a token at start, and for tests.

    Thread-safe, and usable in a child forked while another thread held its lock. Nothing
    survives the process: a rotated refresh token is lost at exit, so use
    :class:`~requests_refresh.FileTokenStore` when the login must outlive it.

    Raises:
        TypeError: ``token`` is not a :class:`Token` (a dict, say: use
            ``Token.from_dict(data)``).
    """

    def __init__(self, token: Token | None = None) -> None:
        if token is not None and not isinstance(token, Token):
            raise TypeError(
                f"MemoryTokenStore takes a Token or None, not {type(token).__name__}:"
                " build one with Token(...), or with Token.from_dict(data) from a dict"
            )
        self._token = token
        self._mutex = threading.Lock()
        reset_in_child(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(has_token={self._token is not None})"

    def load(self) -> Token | None:
        with self._mutex:
            return self._token

    def save(self, token: Token) -> None:
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        with self._mutex:
            self._token = token

    def clear(self) -> None:
        with self._mutex:
            self._token = None

    def _after_fork_in_child(self) -> None:
        """The thread that held the mutex, if any, does not exist in the child."""
        self._mutex = threading.Lock()
