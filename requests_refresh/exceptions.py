"""Errors raised by requests-refresh.

Every error derives from :class:`RequestsRefreshError`, which derives from
:class:`requests.RequestException`: code that already catches request failures
keeps working, and code that wants to tell cases apart can catch the precise class.

The tree::

    RequestsRefreshError (requests.RequestException)
    +-- LoginRequiredError            the user must sign in again
    |   +-- NoTokenError              nothing stored: not logged in
    |   +-- InvalidGrantError         (also a TokenEndpointError) the login is gone
    +-- RefreshError                  a new token could not be obtained
    |   +-- TokenEndpointError        the token endpoint answered with an error
    |   |   +-- InvalidGrantError
    |   |   +-- TokenEndpointUnavailableError   transient: 5xx, 429, timeout, no connection
    |   +-- InvalidTokenResponseError the token endpoint's answer is not a usable token
    |   +-- RefreshTimeoutError       waited longer than ``refresh_timeout`` for a refresh
    |   +-- LoginError                a sign-in flow (device, browser) ended without a token
    |       +-- AuthorizationDeniedError  the user or the server said no (access_denied)
    |       +-- LoginTimeoutError     the code expired or the login took too long
    +-- DiscoveryError                the server's metadata could not be used
    +-- TokenStoreError               the token store cannot be read, written or locked
    |   +-- TokenStoreConflictError   a save lost to a newer token stored meanwhile
    +-- InsecureTransportError        a token would have gone over plain http
    +-- NoOriginError                 the adapter was not told which origin its token is for

Messages say what to do next and never contain a token or a client secret.
Every error pickles and copies cleanly: extra data is keyword-only with defaults and
lives in the instance's ``__dict__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import requests

from ._values import type_name

if TYPE_CHECKING:
    from .token import Token

__all__ = [
    "AuthorizationDeniedError",
    "DiscoveryError",
    "InsecureTransportError",
    "InvalidGrantError",
    "InvalidTokenResponseError",
    "LoginError",
    "LoginRequiredError",
    "LoginTimeoutError",
    "NoOriginError",
    "NoTokenError",
    "RefreshError",
    "RefreshTimeoutError",
    "RequestsRefreshError",
    "TokenEndpointError",
    "TokenEndpointUnavailableError",
    "TokenStoreConflictError",
    "TokenStoreError",
]


class RequestsRefreshError(requests.RequestException):
    """Root of every error raised by requests-refresh."""


class LoginRequiredError(RequestsRefreshError):
    """The stored login cannot be used any more: the user must sign in again."""


class NoTokenError(LoginRequiredError):
    """No token is stored (or it has no refresh token): nothing to send or refresh.

    Save a token to the store after signing in, e.g. ``store.save(Token(...))``.
    """


class RefreshError(RequestsRefreshError):
    """A new access token could not be obtained, by a refresh or by a sign-in.

    Attributes:
        rotated_token: a token to store although the refresh failed, or None. A
            refresher sets it when the server did issue a new refresh token (rotation)
            in an answer that is otherwise unusable: the old refresh token may be spent,
            so the adapter saves this one before it reports the error, and clears the
            attribute once saved so that no secret travels with the error.
    """

    def __init__(self, *args: Any, rotated_token: Token | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rotated_token = rotated_token


class TokenEndpointError(RefreshError):
    """The token endpoint answered with an error (RFC 6749 section 5.2), or its TLS
    certificate could not be verified (a configuration problem: ``status_code`` is None).

    ``error`` and ``error_description`` are the server's, with every secret the request
    carried masked, cut short and on one line.

    Attributes:
        error: the ``error`` code the server sent (``"invalid_client"``, ...), or None.
        error_description: the server's ``error_description``, or None.
        status_code: the HTTP status of the answer, or None when there was no answer.
    """

    def __init__(
        self,
        *args: Any,
        error: str | None = None,
        error_description: str | None = None,
        status_code: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.error = error
        self.error_description = error_description
        self.status_code = status_code


class InvalidGrantError(TokenEndpointError, LoginRequiredError):
    """The refresh token was rejected (``invalid_grant``): the login is gone.

    It has expired, been revoked, or was already used. Sign in again and save the new
    token to the store; requests pick it up without a restart.
    """


class TokenEndpointUnavailableError(TokenEndpointError):
    """The token endpoint could not answer now: 5xx, 429, a timeout, or no connection.

    This is transient: the adapter waits a cool-off (at least ``retry_after`` seconds
    when the server sent ``Retry-After``) before it tries again.

    Attributes:
        retry_after: seconds the server asked us to wait, or None.
    """

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class InvalidTokenResponseError(RefreshError):
    """The token endpoint answered, but not with a usable token (RFC 6749 section 5.1).

    When the answer did carry a new refresh token, :attr:`rotated_token` holds it (with
    the old access token and expiry) so that it can be stored.
    """


class RefreshTimeoutError(RefreshError):
    """A request waited longer than ``refresh_timeout`` for another thread's refresh."""


class LoginError(RefreshError):
    """A sign-in flow (:func:`device_login`, :func:`browser_login`) ended without a token.

    A :class:`RefreshError`, like the token endpoint errors the same flows can end with
    (:class:`TokenEndpointError`, :class:`TokenEndpointUnavailableError`): ``except
    RefreshError`` around a sign-in catches every way it can end without a token.

    Attributes:
        error: the OAuth ``error`` code the server sent (``"access_denied"``, ...), or None.
        error_description: the server's ``error_description`` (cut short), or None.
    """

    def __init__(
        self,
        *args: Any,
        error: str | None = None,
        error_description: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.error = error
        self.error_description = error_description


class AuthorizationDeniedError(LoginError):
    """The user declined the sign-in, or the server refused it (``access_denied``).

    Run the login again and approve the request, or ask the server's administrator
    whether this client may be used.
    """


class LoginTimeoutError(LoginError):
    """The sign-in was not completed in time: the code expired (``expired_token``) or
    ``timeout`` passed. Run the login again and finish it sooner."""


class DiscoveryError(RequestsRefreshError):
    """The authorization server's metadata (RFC 8414, OpenID Connect Discovery) could
    not be fetched or used: unreachable, not JSON, the wrong ``issuer``, or an endpoint
    a flow needs is missing. The message says which; pass the endpoint's URL
    explicitly when the server does not publish it."""


class TokenStoreError(RequestsRefreshError):
    """The token store could not be read, written or locked.

    Attributes:
        path: the file concerned, when there is one.
    """

    def __init__(self, *args: Any, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = path


class TokenStoreConflictError(TokenStoreError):
    """A save was refused: a newer token was stored since the saver read the store.

    Raised by stores whose :meth:`~requests_refresh.TokenStore.save` is a compare-and-set
    (:class:`~requests_refresh.RedisTokenStore`), when the lock's lease ran out while its
    holder was paused, or a new sign-in was saved meanwhile. Nothing was written: the
    stored token wins, and the adapter adopts it.
    """


class InsecureTransportError(RequestsRefreshError):
    """A bearer token would have been sent over plain http to a host other than loopback.

    Use https, or, if the network between you and that host is trusted, pass
    ``allow_insecure_http=True`` to what the message names: ``RefreshAdapter`` for the
    API, the grant (``RefreshTokenGrant``) for the token endpoint.
    """


class NoOriginError(RequestsRefreshError):
    """The adapter does not know which origin its token is for, so it sends nothing.

    ``session.mount(prefix, adapter)`` does not tell the adapter the prefix. Mount it with
    ``adapter.mount(session, "https://api.example.com/")``, or pass
    ``origin="https://api.example.com"`` to :class:`RefreshAdapter`.
    """


def refresher_failure(exc: Exception) -> RequestsRefreshError:
    """The library error for a foreign exception a refresher raised, ``exc`` as its cause.

    ``requests``' timeouts and connection errors become
    :class:`TokenEndpointUnavailableError` (transient); anything else a
    :class:`RefreshError`. The message names the type, never the message: that of an
    ``HTTPError`` holds the URL, whose query may carry a token. Only the HTTP status is
    quoted besides.
    """
    error: RequestsRefreshError
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        error = TokenEndpointUnavailableError(
            f"the refresher could not reach its server ({type(exc).__name__})"
        )
    else:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = f" (HTTP {status})" if type(status) is int else ""
        error = RefreshError(
            f"the refresher raised {type_name(exc)}{detail}; its message is not repeated"
            " here (it may hold a secret): see this error's __cause__. A refresher reports"
            " a dead login by raising InvalidGrantError: requests then fail with"
            " LoginRequiredError until a new login is stored"
        )
    error.__cause__ = exc
    return error


def raise_again(error: BaseException) -> NoReturn:
    """Raise a fresh copy of a remembered error: same class and attributes.

    Raising the remembered object itself again would add this raise's frames to its
    traceback every time, and keep alive whatever those frames hold (request bodies).
    The copy has its own traceback and the original as its ``__cause__``.
    """
    kind = type(error)
    fresh = kind.__new__(kind, *error.args)  # no __init__: it may want other arguments
    fresh.args = error.args  # OSError.__new__ (requests' errors) leaves them to __init__
    for name in ("errno", "strerror", "filename", "filename2"):  # OSError's own fields
        value = getattr(error, name, None)
        if value is not None:
            setattr(fresh, name, value)
    fresh.__dict__.update(vars(error))
    raise fresh from error
