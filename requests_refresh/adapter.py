"""The transport adapter: attaches the token, refreshes it, replays refused requests."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable

import requests
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, DEFAULT_RETRIES, HTTPAdapter
from requests.models import PreparedRequest, Response
from requests.utils import rewind_body
from urllib3.util.retry import Retry

from ._transport import require_safe_origin
from .coordinator import Coordinator, Refresher, RefreshHook, RefreshStats
from .stores import TokenStore
from .token import Token

__all__ = ["RefreshAdapter", "default_should_refresh"]

logger = logging.getLogger("requests_refresh")

# The types requests' own HTTPAdapter.send() takes.
_Timeout = float | tuple[float | None, float | None] | None
_Verify = bool | str
_Cert = str | tuple[str, str] | None


def default_should_refresh(response: Response) -> bool:
    """The default refresh rule: a ``401 Unauthorized`` answer."""
    return response.status_code == 401


class RefreshAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` that keeps requests authenticated.

    Mount it on the origin of the API, with a trailing slash::

        session.mount("https://api.example.com/", RefreshAdapter(store=..., refresher=...))

    For each request it sends, it:

    * attaches ``Authorization: <token_type> <access_token>`` to a copy of the request
      (the caller's request is not changed);
    * refreshes the token ahead of expiry (``leeway`` seconds before, at most half the
      token's lifetime): one thread refreshes while the others keep using the still-valid
      token; once the token has expired, they wait for the refresh (``refresh_timeout``);
    * on a refusal (``should_refresh``, 401 by default) refreshes, unless the refused token
      has already been replaced, and sends the request once more. A request is replayed
      at most once; a body that cannot be rewound (a generator) is never sent twice: that
      401 goes back to the caller, and the token is still refreshed for the next request.

    Args:
        store: where the token lives (:class:`MemoryTokenStore`, :class:`FileTokenStore`,
            ...). It must hold a token before the first request.
        refresher: turns a token into a new one: a :class:`RefreshTokenGrant`, or any
            callable ``refresher(token) -> Token``. Closing the adapter closes it if it
            has a ``close()`` method. A refresher reports a dead login by raising
            :class:`InvalidGrantError` (any :class:`LoginRequiredError`): requests then
            fail with it at once, without calling the refresher again, until a new token
            is stored. Anything else it raises becomes a :class:`RefreshError` naming the
            exception's type, with the exception as ``__cause__``, retried after a
            cool-off. A :class:`RefreshError` whose ``rotated_token`` is set has that
            token saved to the store before the error is reported.
        leeway: refresh this many seconds before expiry (capped at half the lifetime).
        refresh_timeout: the longest a request waits for another thread's refresh before
            :class:`RefreshTimeoutError`.
        should_refresh: decides whether a response means "token refused". A response whose
            ``WWW-Authenticate`` says ``error="insufficient_scope"`` never does (RFC 6750):
            a new token would not have more scope.
        on_refresh: called as ``on_refresh(old, new)`` once per refresh this process made,
            after the new token is saved and in use, with no lock held: it may send
            requests through the same session. Exceptions from it are logged and ignored.
        allow_insecure_http: send tokens over plain http to hosts other than loopback.
            Off by default: such a request raises :class:`InsecureTransportError`.
        cooloff: after a failed refresh, wait about this many seconds before the next
            attempt, doubling with each failure in a row (with jitter), at least the
            server's ``Retry-After``. Requests whose token is still valid are unaffected;
            those whose token has expired get the last error at once meanwhile.
        max_cooloff: the cool-off never grows beyond this (``Retry-After`` aside).
        clock: the time in epoch seconds, ``time.time`` by default, against which tokens
            expire. Cool-offs are durations on :func:`time.monotonic`: a ``clock``
            stepped back never prolongs them, one moved forward ends them. For tests,
            which move it to expire tokens and end cool-offs without waiting.
        pool_connections, pool_maxsize, max_retries, pool_block: as for ``HTTPAdapter``.
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        refresher: Refresher,
        leeway: float = 30.0,
        refresh_timeout: float = 30.0,
        should_refresh: Callable[[Response], bool] = default_should_refresh,
        on_refresh: RefreshHook | None = None,
        allow_insecure_http: bool = False,
        cooloff: float = 1.0,
        max_cooloff: float = 60.0,
        clock: Callable[[], float] = time.time,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = DEFAULT_RETRIES,
        pool_block: bool = DEFAULT_POOLBLOCK,
    ) -> None:
        if not isinstance(store, TokenStore):
            raise TypeError(f"store must be a TokenStore, not {type(store).__name__}")
        if not callable(refresher):
            raise TypeError("refresher must be callable as refresher(token) -> Token")
        for name, value in (
            ("leeway", leeway),
            ("refresh_timeout", refresh_timeout),
            ("cooloff", cooloff),
            ("max_cooloff", max_cooloff),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        self.store = store
        self.refresher = refresher
        self.should_refresh = should_refresh
        self.allow_insecure_http = allow_insecure_http
        self._prefixes: tuple[str, ...] = ()
        self._coordinator = Coordinator(
            store,
            refresher,
            leeway=leeway,
            refresh_timeout=refresh_timeout,
            cooloff=cooloff,
            max_cooloff=max_cooloff,
            on_refresh=on_refresh,
            clock=clock,
        )
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=max_retries,
            pool_block=pool_block,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} store={self.store!r}"
            f" prefixes={list(self._prefixes)!r} generation={self.stats.generation}>"
        )

    @property
    def stats(self) -> RefreshStats:
        """Counters: refreshes, adopted tokens, failures, replays, waits; a snapshot."""
        return self._coordinator.stats

    def mount(self, session: requests.Session, prefix: str) -> None:
        """Mount on ``session`` for ``prefix`` and send tokens under that prefix only.

        Like ``session.mount(prefix, adapter)``, but checks the prefix: it must be an
        http(s) origin ending with ``/`` (``"https://api.example.com/"``), so that it
        cannot also match ``https://api.example.com.evil.test/``. Requests the adapter
        then sees for URLs outside its prefixes go out without a token.
        """
        parts = urllib.parse.urlsplit(prefix)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"prefix must start with http:// or https:// and a host: {prefix!r}")
        if not parts.path.endswith("/"):
            raise ValueError(
                f"prefix must end with '/' ({prefix!r} would also match other hosts):"
                f" use {prefix + '/'!r}"
            )
        session.mount(prefix, self)
        self._prefixes = (*self._prefixes, prefix.lower())

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: _Timeout = None,
        verify: _Verify = True,
        cert: _Cert = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        """Send ``request`` with the current token; refresh and replay once if refused."""
        url = request.url or ""
        if self._prefixes and not url.lower().startswith(self._prefixes):
            return super().send(request, stream, timeout, verify, cert, proxies)
        if not self.allow_insecure_http and not url.startswith("https:"):
            require_safe_origin(url)

        options = (stream, timeout, verify, cert, proxies)
        token, generation = self._coordinator.acquire()
        response = self._send_authorized(request, token, *options)
        if not self._is_refusal(response):
            return response

        replacement = self._coordinator.refused(generation)
        if replacement is None:
            return response
        if not _rewind(request):
            logger.info(
                "the request was refused, but its body cannot be sent again: returning the 401"
            )
            return response
        # Read and close the refusal so that its connection goes back to the pool.
        _ = response.content
        response.close()
        self._coordinator.note_replay()
        replay = self._send_authorized(request, replacement[0], *options)
        replay.history = [response]
        return replay

    def _send_authorized(
        self,
        request: PreparedRequest,
        token: Token,
        stream: bool,
        timeout: _Timeout,
        verify: _Verify,
        cert: _Cert,
        proxies: dict[str, str] | None,
    ) -> Response:
        """Send a copy of ``request`` that carries ``token``."""
        authorized = _with_authorization(request, token.authorization)
        return super().send(authorized, stream, timeout, verify, cert, proxies)

    def close(self) -> None:
        """Close the refresher (if it can be closed), then the connection pools."""
        close = getattr(self.refresher, "close", None)
        try:
            if callable(close):
                close()
        finally:
            super().close()

    def _is_refusal(self, response: Response) -> bool:
        return bool(self.should_refresh(response)) and not _insufficient_scope(response)


def _with_authorization(request: PreparedRequest, authorization: str) -> PreparedRequest:
    """A shallow copy of ``request`` with the ``Authorization`` header set.

    Cheaper than ``request.copy()``, which also copies the cookie jar: the copy shares
    the caller's cookie jar and body, which the adapter never changes.
    """
    copy = PreparedRequest()
    copy.method = request.method
    copy.url = request.url
    copy.headers = request.headers.copy()
    copy.headers["Authorization"] = authorization
    copy._cookies = request._cookies
    copy.body = request.body
    copy.hooks = request.hooks
    copy._body_position = request._body_position
    return copy


def _rewind(request: PreparedRequest) -> bool:
    """Make the body ready to be sent again; False when it cannot be."""
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    try:
        rewind_body(request)
    except requests.exceptions.UnrewindableBodyError:
        return False
    return True


def _insufficient_scope(response: Response) -> bool:
    """RFC 6750 section 3.1: the token is valid but lacks scope; refreshing won't help."""
    challenge = response.headers.get("WWW-Authenticate", "")
    return "insufficient_scope" in challenge.lower()
