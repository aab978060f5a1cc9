"""The transport adapter: attaches the token, refreshes it, replays refused requests."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from typing import NoReturn

import requests
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, DEFAULT_RETRIES, HTTPAdapter
from requests.models import PreparedRequest, Response
from requests.utils import rewind_body
from urllib3.util.retry import Retry

from ._fork import reset_in_child
from ._http import drain, require_safe_origin
from ._renewal import Refresher, RefreshHook
from ._scope import Scope, mount_prefix
from ._values import check_seconds
from .coordinator import Coordinator, RefreshStats
from .exceptions import NoOriginError, RequestsRefreshError
from .stores import TokenStore
from .token import Token

__all__ = ["RefreshAdapter", "default_should_refresh"]

logger = logging.getLogger("requests_refresh")

# The types requests' own HTTPAdapter.send() takes.
_Timeout = float | tuple[float | None, float | None] | None
_Verify = bool | str
_Cert = str | tuple[str, str] | None

#: Before a replay, at most this much of the refusal's body is read (then its connection
#: goes back to the pool); a longer body is not read: its connection is closed.
DRAIN_LIMIT = 64 * 1024
#: ... and for at most this many seconds, whatever the request's timeout.
DRAIN_TIME = 2.0


def default_should_refresh(response: Response) -> bool:
    """The default refresh rule: a ``401 Unauthorized`` answer."""
    return response.status_code == 401


class RefreshAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` that keeps requests authenticated.

    Mount it with its own :meth:`mount`, on the origin of the API::

        adapter = RefreshAdapter(store=..., refresher=...)
        adapter.mount(session, "https://api.example.com/")

    or name the origin when you build it, then mount it as any adapter::

        adapter = RefreshAdapter(store=..., refresher=..., origin="https://api.example.com")
        session.mount("https://api.example.com/", adapter)

    The token goes only to the origins it was given (scheme, host and port, compared
    exactly; with :meth:`mount`, under the prefix's path). A request for any other URL
    that reaches the adapter (a broad ``session.mount("https://", adapter)``, or a prefix
    without its trailing slash that also matches ``api.example.com.evil.test``) goes out
    without the token, with a warning the first time. An adapter given no origin sends
    nothing: each request raises :class:`NoOriginError`.

    A request that already carries an ``Authorization`` header (from ``headers=``,
    ``auth=``, ``session.auth``, or requests' ``~/.netrc`` lookup) is sent as it is:
    no token, and its 401 is not a reason to refresh (a warning says so the first time).
    The caller named a credential for that request, maybe another identity; replacing it
    with the bearer token would silently send the request as someone else.

    For each request it sends, it:

    * attaches ``Authorization: <token_type> <access_token>`` to a copy of the request
      (the caller's request is not changed);
    * refreshes the token ahead of expiry (``leeway`` seconds before, at most half the
      token's lifetime): one thread refreshes while the others keep using the still-valid
      token; once the token has expired, they wait for the refresh (``refresh_timeout``);
    * on a refusal (``should_refresh``, 401 by default) refreshes, unless the refused token
      has already been replaced, and sends the request once more. A request is replayed
      at most once; a body that cannot be rewound (a generator) is never sent twice: that
      401 goes back to the caller, and the token is still refreshed for the next request;
    * on a ``403`` (not ``insufficient_scope``) for a token that has already been
      replaced, replays once with the current token, without a refresh: some servers
      answer a token a refresh rotated away with 403. A 403 earned by the current token
      goes back to the caller, unless ``should_refresh`` says it is a refusal.

    Args:
        store: where the token lives (:class:`MemoryTokenStore`, :class:`FileTokenStore`,
            ...). It must hold a token before the first request, unless the refresher
            can start from nothing.
        refresher: turns a token into a new one (a :class:`Refresher`): a
            :class:`RefreshTokenGrant`, or any callable ``refresher(token) -> Token``.
            Closing the adapter closes it if it has a ``close()`` method. A refresher
            reports a dead login by raising :class:`InvalidGrantError` (any
            :class:`LoginRequiredError`): requests then fail with it at once, without
            calling the refresher again, until a new token is stored. Anything else it
            raises becomes a :class:`RefreshError` naming the exception's type, with the
            exception as ``__cause__``, retried after a cool-off. A :class:`RefreshError`
            whose ``rotated_token`` is set has that token saved to the store before the
            error is reported. A refresher with an ``acquire() -> Token`` method (an
            :class:`AcquiringRefresher`, such as :class:`ClientCredentialsGrant`) can
            start from nothing: with the store empty, the first request gets a token from
            ``acquire()``, one call however many threads wait for it. ``on_refresh`` is
            not called for that first token.
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
        origin: the origin (``"https://api.example.com"``), or a list of origins, that
            get the token, for an adapter mounted with ``session.mount()``. International
            host names are taken in the form requests sends (``xn--...``).
        login_end_warning: log a WARNING when the login ends (the token's
            ``refresh_expires_at``, from the server's ``refresh_expires_in`` or the like)
            within this many seconds, a day by default, so that someone can sign in
            again before requests start failing. Checked as each token comes in (loaded,
            refreshed or adopted), not per request; logged once, and again only for a
            later login that comes near its end. 0 turns it off.
        pool_connections, pool_maxsize, max_retries, pool_block: as for ``HTTPAdapter``.
            A ``max_retries`` whose ``status_forcelist`` holds 401 is refused (ValueError):
            urllib3 would resend the refused token without a refresh. Retries of 5xx
            answers and connection errors resend the request with the same, current token.

    In a child process forked from one that used it (multiprocessing's ``fork`` start
    method), the adapter opens connections of its own: the parent's pooled keep-alive
    connections are never shared with the child.

    An adapter cannot be pickled or copied (``TypeError``): build one in each process
    that sends requests, on a store the processes share.

    To cache responses too, combine it with CacheControl's adapter (the cache answers
    first; what it cannot answer is sent with the token)::

        class CachingRefreshAdapter(CacheControlAdapter, RefreshAdapter):  # type: ignore[misc]
            pass

        adapter = CachingRefreshAdapter(store=..., refresher=..., cache=FileCache(".cache"))
        adapter.mount(session, "https://api.example.com/")
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
        origin: str | Iterable[str] | None = None,
        login_end_warning: float = 86400.0,
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
            ("login_end_warning", login_end_warning),
        ):
            check_seconds(name, value)
        retries = max_retries if isinstance(max_retries, Retry) else Retry.from_int(max_retries)
        if 401 in (retries.status_forcelist or ()):
            raise ValueError(
                "max_retries retries 401 (it is in status_forcelist): urllib3 would send the"
                " refused token again, unchanged, without a refresh. RefreshAdapter refreshes"
                " and replays a 401 itself: take 401 out of status_forcelist (retrying 5xx"
                " answers and connection errors is fine)"
            )
        self.store = store
        self.refresher = refresher
        self.should_refresh = should_refresh
        self.allow_insecure_http = allow_insecure_http
        self._scope = Scope.of(origin)  # replaced whole by mount(): read without a lock
        self._warned_foreign = False
        self._warned_own_authorization = False
        self._coordinator = Coordinator(
            store,
            refresher,
            leeway=leeway,
            refresh_timeout=refresh_timeout,
            cooloff=cooloff,
            max_cooloff=max_cooloff,
            on_refresh=on_refresh,
            clock=clock,
            login_end_warning=login_end_warning,
        )
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=max_retries,
            pool_block=pool_block,
        )
        reset_in_child(self)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} store={self.store!r}"
            f" origins={list(self._scope.named)!r} generation={self.stats.generation}>"
        )

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins that get the token, as ``scheme://host[:port]``, in the order given."""
        return self._scope.named

    @property
    def stats(self) -> RefreshStats:
        """Counters: refreshes, adopted tokens, failures, replays, waits; a snapshot."""
        return self._coordinator.stats

    def mount(self, session: requests.Session, prefix: str) -> None:
        """Mount on ``session`` for ``prefix`` and send tokens under that prefix only.

        Like ``session.mount(prefix, adapter)``, but the adapter learns the prefix: it
        must be an http(s) origin, optionally with a path, ending with ``/``
        (``"https://api.example.com/"``), so that it cannot also match
        ``https://api.example.com.evil.test/``. An international host name is mounted in
        the form requests sends (``https://bücher.example/`` as
        ``https://xn--bcher-kva.example/``), so that its requests do reach the adapter.
        """
        origin, path, url = mount_prefix(prefix)
        session.mount(url, self)
        self._scope = self._scope.serving(origin, path)

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
        if not self._serves(url) or self._has_own_authorization(request):
            return super().send(request, stream, timeout, verify, cert, proxies)
        if not self.allow_insecure_http and not url.startswith("https:"):
            require_safe_origin(url)

        options = (stream, timeout, verify, cert, proxies)
        token, generation = self._coordinator.acquire()
        response = self._send_authorized(request, token, *options)
        try:
            if self._is_refusal(response):
                replacement = self._coordinator.refused(generation)
            elif response.status_code == 403 and not _insufficient_scope(response):
                replacement = self._replaced(generation)
            else:
                return response
        except BaseException:
            # The refusal goes nowhere: give its connection back before the error does.
            response.close()
            raise
        if replacement is None:
            return response
        if not _rewind(request):
            logger.info(
                "the request was refused (%d), but its body cannot be sent again: returning"
                " the refusal",
                response.status_code,
            )
            return response
        # Finish with the refusal in bounded memory and time, so that a body that stalls
        # cannot hold the replay even with timeout=None; one read to its end goes into the
        # replay's history and gives its connection back.
        drain(response, limit=DRAIN_LIMIT, seconds=_drain_seconds(timeout))
        self._coordinator.note_replay()
        replay = self._send_authorized(request, replacement[0], *options)
        replay.history = [response]
        return replay

    def _replaced(self, generation: int) -> tuple[Token, int] | None:
        """For a 403: the current token if the one refused was replaced since, else None.

        Some servers answer a token they no longer know (one a refresh rotated away)
        with 403 rather than 401. A 403 for an older generation is replayed with the
        token a new request would get, without a refresh; a 403 for the current
        generation is the server's answer about the request, and goes back as it is,
        unless a refresh in flight replaces that token: the server may have rotated it
        away before the new token reached us, so the answer waits for that refresh.
        """
        try:
            settled = self._coordinator.settled()
        except RequestsRefreshError:
            return None  # the refresh failed: the 403 goes back, the error to the next request
        if settled is None or settled[1] == generation:
            return None
        current = self._coordinator.acquire()
        logger.debug(
            "generation %d was answered 403 but %d is current: replaying",
            generation,
            current[1],
        )
        return current

    def _has_own_authorization(self, request: PreparedRequest) -> bool:
        """Whether ``request`` already carries a credential; warns (once) when it does."""
        if "Authorization" not in request.headers:
            return False
        if not self._warned_own_authorization:
            self._warned_own_authorization = True
            warnings.warn(
                "RefreshAdapter sent a request that carries its own Authorization header"
                " (from headers=, auth=, session.auth or ~/.netrc) as it is, without the"
                " token: an explicit credential wins. Remove it to have the request"
                " authenticated with the token (session.trust_env = False ignores"
                " ~/.netrc); this warning is shown once",
                UserWarning,
                stacklevel=2,
            )
        return True

    def _serves(self, url: str) -> bool:
        """Whether ``url`` gets the token; warns (once) when it was routed here but not."""
        scope = self._scope
        if scope.covers(url):
            return True
        if not scope.named:
            raise NoOriginError(
                "RefreshAdapter does not know which origin its token is for, so it sent"
                " nothing (session.mount() does not tell it): mount it with"
                " adapter.mount(session, 'https://api.example.com/'), or pass"
                " origin='https://api.example.com' to RefreshAdapter"
            )
        if not self._warned_foreign:
            self._warned_foreign = True
            where = scope.describe(url)
            warnings.warn(
                f"RefreshAdapter sent a request to {where} without the token: it sends the"
                f" token only to {', '.join(scope.served)}. If {where} should get it, mount"
                f" with adapter.mount(session, '{where}/') or add it to origin=; otherwise"
                " mount the adapter on its API's origin only (this warning is shown once)",
                UserWarning,
                stacklevel=2,
            )
        return False

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

    def __getstate__(self) -> NoReturn:
        """Refuse to be pickled or copied (``pickle``, ``copy.copy``, ``copy.deepcopy``).

        ``HTTPAdapter`` pickles its settings only: a copy would come back without its
        store, coordinator and origins. And a whole copy would be worse: it would carry
        this process's login (with a :class:`MemoryTokenStore`, the single-use refresh
        token) into another process, where both would spend it and one would lose it.
        """
        raise TypeError(
            f"{type(self).__name__} cannot be pickled or copied: a copy would carry this"
            " process's login (a single-use refresh token) to another process, and both"
            " would spend it. Build the adapter in the process that uses it, with a shared"
            " store (FileTokenStore, RedisTokenStore, KeyringTokenStore) so that processes"
            " share one login"
        )

    def _after_fork_in_child(self) -> None:
        """Give a forked child connection pools of its own.

        The parent's pooled keep-alive connections stay the parent's: a child sending
        on one of them would interleave its requests and answers with the parent's. They
        are dropped here without closing them (closing would wait on the pools' locks,
        which a thread of the parent may have held), as requests does when it unpickles
        an adapter.
        """
        self.proxy_manager = {}
        self.init_poolmanager(self._pool_connections, self._pool_maxsize, block=self._pool_block)

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


def _drain_seconds(timeout: _Timeout) -> float:
    """How long a refusal's body is read before the replay: :data:`DRAIN_TIME`, or the
    request's read timeout when it is shorter."""
    read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
    if isinstance(read_timeout, (int, float)):
        return max(0.0, min(DRAIN_TIME, read_timeout))
    return DRAIN_TIME


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
