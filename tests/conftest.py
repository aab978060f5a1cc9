"""Shared fixtures: a real authorization server on 127.0.0.1 and sessions mounted on it,
and real Redis servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, RefreshTokenGrant, TokenStore
from requests_refresh.testing import AuthorizationServer

from .redis_server import REDIS_SERVER, RedisServer
from .workers.process import Worker


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 (AOF on, its own directory), shared by the session.

    Tests keep to their own keys. Skips, saying why, without redis-server or redis-py.
    """
    pytest.importorskip("redis", reason="redis-py is not installed (the redis extra)")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop, restart or wipe it."""
    pytest.importorskip("redis", reason="redis-py is not installed (the redis extra)")
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Worker processes started by a test; all ended at teardown."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()
