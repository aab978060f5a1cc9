"""RedisTokenStore across real processes: the fleet storm, and a holder frozen past its lease."""

from __future__ import annotations

import os
import signal
import time

import pytest

from requests_refresh import RedisTokenStore, Token
from requests_refresh.testing import AuthorizationServer

from .redis_server import RedisServer
from .workers.process import Worker
from .workers.storm import run_storm

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGSTOP and fork")


def expired(token: Token) -> Token:
    """The same login with an access token that has already expired."""
    return Token(token.access_token, token.refresh_token, expires_at=time.time() - 1)


@pytest.mark.slow
def test_fleet_storm_refreshes_once_per_generation(
    redis_server: RedisServer, workers: list[Worker]
) -> None:
    """8 processes x 16 threads, each with its own Redis client, 1 s tokens: one refresh each."""
    where = redis_server.url + "#key=fleet"
    store = RedisTokenStore(redis_server.url, "fleet")
    try:
        run_storm(where, store.save, workers)
        assert store.load() is not None
    finally:
        store.close()


def test_a_holder_frozen_past_its_lease_does_not_overwrite_a_newer_token(
    redis_server: RedisServer, workers: list[Worker]
) -> None:
    """A process frozen (SIGSTOP) after its refresh loses its lease; its save then loses too.

    Meanwhile someone signs in again. When the frozen process resumes, its save is
    refused (the version moved on), it adopts the new login and its request succeeds
    with it: the newer token is not overwritten, and no refresh token was presented twice.
    """
    with AuthorizationServer(access_ttl=60) as server:
        signin = RedisTokenStore(redis_server.url, "frozen")
        signin.save(expired(server.login()))
        frozen = Worker(
            "refresh-and-hang",
            redis_server.url + "#key=frozen&lease=0.3",
            server.url,
            server.client_id,
        )
        workers.append(frozen)
        frozen.expect("refreshed")
        os.kill(frozen.pid, signal.SIGSTOP)  # a GC pause, a VM freeze
        try:
            probe = redis_server.client()
            deadline = time.monotonic() + 10
            while probe.exists(signin.lock_key):  # its lease runs out: nobody renews it
                assert time.monotonic() < deadline, "the frozen holder's lease never ran out"
                time.sleep(0.02)  # polling a condition with a deadline
            probe.close()
            new_login = server.login()
            signin.save(new_login)
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        frozen.send("go")
        report = frozen.result(timeout=30)
        served = server.stats
        stored = signin.load()
        signin.close()

    assert report == {"outcome": "status 200", "adopted": 1}
    assert stored == new_login
    assert served.refreshes == 1
    assert served.reuse_detected == 0
    assert served.invalid_grant == 0
