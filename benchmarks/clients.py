"""The clients compared: requests-refresh and its peers, built the same way for each run.

Each client is a :class:`requests.Session` (or one with an auth handler) whose transport is
an adapter with a pool of :data:`POOL_SIZE` connections, so that every client gets the
same connection reuse. ``fast(url)`` builds a client holding a token that stays valid
(no refresh on the fast path); ``storm(server, token, expires_at)`` builds one holding
``token`` and believing it expires at ``expires_at``, able to refresh at ``server``.

A peer that is not installed, or that cannot be configured for a run, raises
:class:`Unavailable` with the reason, which the tables print instead of a number.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from requests_refresh import MemoryTokenStore, RefreshAdapter, RefreshTokenGrant, Token

from .authserver import RemoteAuthorizationServer

__all__ = ["CLIENTS", "POOL_SIZE", "Client", "Unavailable", "file_token_store"]

#: Connections each client keeps per host: enough for the largest storm.
POOL_SIZE = 300
#: The access token the fast path sends. The raw server does not check it.
FAST_TOKEN = "at-benchmark-0123456789abcdef"

# Peers refuse plain http unless told otherwise; every server here is on 127.0.0.1.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


class Unavailable(Exception):
    """This client cannot run here; ``str()`` says why."""


FastFactory = Callable[[str], requests.Session]
StormFactory = Callable[[RemoteAuthorizationServer, Token, float], requests.Session]


@dataclasses.dataclass(frozen=True)
class Client:
    name: str
    fast: FastFactory
    storm: StormFactory | None
    ours: bool = False


def _pooled(session: requests.Session) -> requests.Session:
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("http://", adapter)
    return session


def _valid_token() -> Token:
    now = time.time()
    return Token(FAST_TOKEN, refresh_token="rt-unused", expires_at=now + 3600, issued_at=now)


def _no_refresh(token: Token) -> Token:
    raise AssertionError("the fast path must not refresh")


def file_token_store(path: str) -> Any:
    """A ``FileTokenStore(path)``, or :class:`Unavailable` when this tree has none."""
    import requests_refresh

    store_class = getattr(requests_refresh, "FileTokenStore", None)
    if store_class is None:
        raise Unavailable("FileTokenStore not available")
    return store_class(path)


# -- baseline -----------------------------------------------------------------------------


def baseline_fast(url: str) -> requests.Session:
    """Plain HTTPAdapter and a static Authorization header: the 1.00 of every ratio."""
    session = _pooled(requests.Session())
    session.headers["Authorization"] = f"Bearer {FAST_TOKEN}"
    return session


# -- requests-refresh ---------------------------------------------------------------------


def _refresh_session(url: str, adapter: RefreshAdapter) -> requests.Session:
    session = requests.Session()
    adapter.mount(session, url)
    return session


def memory_fast(url: str) -> requests.Session:
    adapter = RefreshAdapter(
        store=MemoryTokenStore(_valid_token()), refresher=_no_refresh, pool_maxsize=POOL_SIZE
    )
    return _refresh_session(url, adapter)


def file_fast(url: str) -> requests.Session:
    directory = tempfile.mkdtemp(prefix="requests-refresh-bench-")
    store = file_token_store(os.path.join(directory, "token.json"))
    store.save(_valid_token())
    adapter = RefreshAdapter(store=store, refresher=_no_refresh, pool_maxsize=POOL_SIZE)
    return _refresh_session(url, adapter)


def memory_storm(
    server: RemoteAuthorizationServer, token: Token, expires_at: float
) -> requests.Session:
    token = dataclasses.replace(token, expires_at=expires_at, issued_at=None)
    adapter = RefreshAdapter(
        store=MemoryTokenStore(token),
        refresher=RefreshTokenGrant(server.token_url, server.client_id, server.client_secret),
        leeway=0,
        pool_maxsize=POOL_SIZE,
    )
    return _refresh_session(server.url + "/", adapter)


# -- requests-oauthlib --------------------------------------------------------------------


def _oauthlib_token(token: Token, expires_at: float) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "refresh_token": token.refresh_token,
        "token_type": "Bearer",
        "expires_in": expires_at - time.time(),
        "expires_at": expires_at,
    }


def oauthlib_fast(url: str) -> requests.Session:
    try:
        from requests_oauthlib import OAuth2Session
    except ImportError as exc:
        raise Unavailable("requests-oauthlib not installed") from exc
    token = _valid_token()
    assert token.expires_at is not None  # noqa: S101 - set just above
    return _pooled(OAuth2Session("bench", token=_oauthlib_token(token, token.expires_at)))


def oauthlib_storm(
    server: RemoteAuthorizationServer, token: Token, expires_at: float
) -> requests.Session:
    try:
        from requests_oauthlib import OAuth2Session
    except ImportError as exc:
        raise Unavailable("requests-oauthlib not installed") from exc
    return _pooled(
        OAuth2Session(
            server.client_id,
            token=_oauthlib_token(token, expires_at),
            auto_refresh_url=server.token_url,
            auto_refresh_kwargs={
                "client_id": server.client_id,
                "client_secret": server.client_secret,
            },
            token_updater=lambda new: None,
        )
    )


# -- Authlib ------------------------------------------------------------------------------


def authlib_fast(url: str) -> requests.Session:
    try:
        from authlib.integrations.requests_client import (
            OAuth2Session,
        )
    except ImportError as exc:
        raise Unavailable("Authlib not installed") from exc
    token = _valid_token()
    assert token.expires_at is not None  # noqa: S101 - set just above
    session: requests.Session = OAuth2Session(
        "bench", token=_oauthlib_token(token, token.expires_at)
    )
    return _pooled(session)


def authlib_storm(
    server: RemoteAuthorizationServer, token: Token, expires_at: float
) -> requests.Session:
    try:
        from authlib.integrations.requests_client import (
            OAuth2Session,
        )
    except ImportError as exc:
        raise Unavailable("Authlib not installed") from exc
    session: requests.Session = OAuth2Session(
        server.client_id,
        server.client_secret,
        token_endpoint_auth_method="client_secret_post",
        token=_oauthlib_token(token, expires_at),
        token_endpoint=server.token_url,
        update_token=lambda new, refresh_token=None, access_token=None: None,
        leeway=0,
    )
    return _pooled(session)


# -- google-auth --------------------------------------------------------------------------


def _google_expiry(expires_at: float) -> datetime.datetime:
    """google-auth wants naive UTC, and treats a token as expired REFRESH_THRESHOLD early."""
    from google.auth import _helpers

    expiry = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc)
    return (expiry + _helpers.REFRESH_THRESHOLD).replace(tzinfo=None)


def google_fast(url: str) -> requests.Session:
    try:
        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2.credentials import Credentials
    except ImportError as exc:
        raise Unavailable("google-auth not installed") from exc
    token = _valid_token()
    assert token.expires_at is not None  # noqa: S101 - set just above
    credentials = Credentials(token=token.access_token, expiry=_google_expiry(token.expires_at))
    session: requests.Session = AuthorizedSession(credentials)
    return _pooled(session)


def google_storm(
    server: RemoteAuthorizationServer, token: Token, expires_at: float
) -> requests.Session:
    try:
        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2.credentials import Credentials
    except ImportError as exc:
        raise Unavailable("google-auth not installed") from exc
    credentials = Credentials(
        token=token.access_token,
        refresh_token=token.refresh_token,
        token_uri=server.token_url,
        client_id=server.client_id,
        client_secret=server.client_secret,
        expiry=_google_expiry(expires_at),
    )
    session: requests.Session = AuthorizedSession(credentials)
    return _pooled(session)


# -- requests-oauth2client ----------------------------------------------------------------


def _oauth2client_session(
    token_url: str, client_id: str, client_secret: str | None, token: Token, expires_at: float
) -> requests.Session:
    try:
        from requests_oauth2client import (
            BearerToken,
            OAuth2AccessTokenAuth,
            OAuth2Client,
        )
    except ImportError as exc:
        raise Unavailable("requests-oauth2client not installed") from exc
    client = OAuth2Client(
        token_endpoint=token_url,
        client_id=client_id,
        client_secret=client_secret or "unused",
        testing=True,  # its switch for http token endpoints on loopback
    )
    bearer = BearerToken(
        access_token=token.access_token,
        refresh_token=token.refresh_token,
        expires_at=datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc),
    )
    session = _pooled(requests.Session())
    session.auth = OAuth2AccessTokenAuth(client, token=bearer, leeway=0)
    return session


def oauth2client_fast(url: str) -> requests.Session:
    token = _valid_token()
    assert token.expires_at is not None  # noqa: S101 - set just above
    return _oauth2client_session(url + "token", "bench", None, token, token.expires_at)


def oauth2client_storm(
    server: RemoteAuthorizationServer, token: Token, expires_at: float
) -> requests.Session:
    return _oauth2client_session(
        server.token_url, server.client_id, server.client_secret, token, expires_at
    )


#: Every client, the baseline first.
CLIENTS: tuple[Client, ...] = (
    Client("HTTPAdapter + static header (baseline)", baseline_fast, None),
    Client("RefreshAdapter + MemoryTokenStore", memory_fast, memory_storm, ours=True),
    Client("RefreshAdapter + FileTokenStore", file_fast, None, ours=True),
    Client("requests-oauthlib OAuth2Session", oauthlib_fast, oauthlib_storm),
    Client("Authlib OAuth2Session", authlib_fast, authlib_storm),
    Client("google-auth AuthorizedSession", google_fast, google_storm),
    Client("requests-oauth2client", oauth2client_fast, oauth2client_storm),
)
