"""Shared fixtures: a real authorization server on 127.0.0.1 and sessions mounted on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, RefreshTokenGrant, TokenStore
from requests_refresh.testing import AuthorizationServer


@pytest.fixture
def server() -> Iterator[AuthorizationServer]:
    """A fresh authorization server: rotation and reuse detection on, 60 s access tokens."""
    with AuthorizationServer(access_ttl=60.0) as running:
        yield running


MakeSession = Callable[..., tuple[requests.Session, RefreshAdapter]]


@pytest.fixture
def make_session(server: AuthorizationServer) -> Iterator[MakeSession]:
    """Build sessions with a RefreshAdapter mounted on the server's origin.

    ``make_session(store=None, **adapter_options)``: the store defaults to a
    MemoryTokenStore holding a fresh login. Everything is closed at teardown.
    """
    opened: list[requests.Session] = []

    def make(
        store: TokenStore | None = None, **options: Any
    ) -> tuple[requests.Session, RefreshAdapter]:
        if store is None:
            store = MemoryTokenStore(server.login())
        options.setdefault("refresher", RefreshTokenGrant(server.token_url, server.client_id))
        options.setdefault("pool_maxsize", 64)
        adapter = RefreshAdapter(store=store, **options)
        session = requests.Session()
        adapter.mount(session, server.url + "/")
        opened.append(session)
        return session, adapter

    yield make
    for session in opened:
        session.close()
