"""FileTokenStore across real processes: storms, kill -9 under the lock and during writes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import requests

from requests_refresh import (
    FileTokenStore,
    InvalidGrantError,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
)
from requests_refresh.testing import AuthorizationServer

from .workers.file_store_worker import loop_token
from .workers.process import Worker
from .workers.storm import run_storm

pytestmark = pytest.mark.skipif(os.name != "posix", reason="kill -9, fork and flock")


def expired(token: Token) -> Token:
    """The same login with an access token that has already expired."""
    return Token(token.access_token, token.refresh_token, expires_at=time.time() - 1)


def assert_valid_file(path: Path) -> Token:
    """The file parses as the store's JSON format; returns the default token."""
    data = json.loads(path.read_text())
    assert data["version"] == 1
    token = FileTokenStore(path).load()
    assert token is not None
    return token


@pytest.mark.slow
def test_storm_of_processes_and_threads_refreshes_once_per_generation(
    tmp_path: Path, workers: list[Worker]
) -> None:
    """8 processes x 16 threads on one file, 1 s tokens: no failure, one refresh per generation."""
    path = tmp_path / "tokens.json"
    run_storm(str(path), FileTokenStore(path).save, workers)
    assert_valid_file(path)


def test_kill_9_while_holding_the_lock_frees_it_for_the_others(
    tmp_path: Path, workers: list[Worker]
) -> None:
    """A process killed while it holds the lock (before its refresh) blocks nobody."""
    path = tmp_path / "tokens.json"
    with AuthorizationServer(access_ttl=60) as server:
        FileTokenStore(path).save(expired(server.login()))
        holder = Worker("hold-lock", str(path))
        workers.append(holder)
        holder.expect("locked")

        adapter = RefreshAdapter(
            store=FileTokenStore(path, lock_timeout=10),
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
        )
        outcome: list[object] = []
        done = threading.Event()

        def request() -> None:
            with requests.Session() as session:
                adapter.mount(session, server.url + "/")
                try:
                    outcome.append(session.get(server.resource_url, timeout=30).status_code)
                except Exception as exc:
                    outcome.append(exc)
            done.set()

        thread = threading.Thread(target=request)
        thread.start()
        assert not done.wait(0.3)  # waiting for the lock
        killed_at = time.monotonic()
        holder.kill()
        assert done.wait(10)
        waited = time.monotonic() - killed_at
        thread.join(timeout=10)
        adapter.close()

    assert outcome == [200]
    assert waited < 5
    assert server.stats.refreshes == 1
    assert assert_valid_file(path).refresh_token is not None


def test_kill_9_after_the_token_endpoint_answered_is_a_clear_error_not_a_hang(
    tmp_path: Path, workers: list[Worker]
) -> None:
    """Killed between the token endpoint's answer and the save: the file stays whole.

    The killed process spent the refresh token; its successor never reached the file.
    The next process finds the old (spent) token, presents it, and the server's reuse
    detection revokes the login: the honest outcome, reported as InvalidGrantError
    without waiting beyond the lock timeout. The user signs in again.
    """
    path = tmp_path / "tokens.json"
    with AuthorizationServer(access_ttl=60) as server:
        login = expired(server.login())
        FileTokenStore(path).save(login)
        refresher = Worker("refresh-and-hang", str(path), server.url, server.client_id)
        workers.append(refresher)
        refresher.expect("refreshed")
        assert server.stats.refreshes == 1
        refresher.kill()

        assert FileTokenStore(path).load() == login
        adapter = RefreshAdapter(
            store=FileTokenStore(path, lock_timeout=5),
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
        )
        started = time.monotonic()
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            with pytest.raises(InvalidGrantError):
                session.get(server.resource_url, timeout=30)
        adapter.close()
        assert time.monotonic() - started < 5
        assert server.stats.reuse_detected == 1
    assert assert_valid_file(path) == login


def test_kill_9_during_writes_never_leaves_a_corrupt_file(tmp_path: Path) -> None:
    """200 writers killed at random moments of their saves: the file is always whole."""
    rounds = 200
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(loop_token(-1))
    killer = Worker("save-loop", str(path), str(rounds))
    seen: set[int] = set()
    try:
        for round_ in range(rounds):
            killer.expect(f"killed {round_}", timeout=30)
            token = assert_valid_file(path)
            n = token.extra["n"]
            assert token == loop_token(n)
            assert token.extra == loop_token(n).extra
            seen.add(n)
            killer.send("next")
    finally:
        killer.close()
    # The writers got somewhere: many different tokens were found whole after a kill.
    assert len(seen) > rounds // 4
