"""The same scenarios on every third-party server (the ``idp`` fixture runs each in turn).

1. The refresh token grant with rotation: a storm of threads at an expired token.
2. Processes and threads sharing a FileTokenStore, with short-lived tokens.
3. The same with a RedisTokenStore.
4. Client credentials from an empty store: a storm at the start and one at expiry.
5. The device flow and the browser flow, the user played through the server's own
   pages with ``requests``; each token then refreshes through the adapter.

Both servers rotate refresh tokens (the old one dies at once) and detect reuse (a spent
refresh token presented again revokes the login), so any second refresh of one
generation would show as ``invalid_grant`` and failed requests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from requests_refresh import (
    ClientCredentialsGrant,
    DeviceAuthorization,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
    TokenStore,
    browser_login,
    device_login,
)

from ..workers.process import Worker
from .accounts import CONFIDENTIAL, DEVICE, PUBLIC, SERVICE, USERNAME, Client
from .idp import IdP
from .load import session_for, storm, wait_until_expired

STORM_THREADS = 32
PROCESSES = 4
THREADS = 8
SECONDS = 10.0
#: Sent with every client credentials request, as an API's audience would be.
AUDIENCE = "https://api.example.test/"


def grant_for(idp: IdP, client: Client) -> RefreshTokenGrant:
    """The refresh token grant for ``client``: HTTP Basic with a secret, else public."""
    return RefreshTokenGrant(idp.token_url, client.client_id, client.client_secret)


@pytest.mark.parametrize("client", [PUBLIC, CONFIDENTIAL], ids=lambda c: c.client_id)
def test_storm_at_an_expired_token_refreshes_once(idp: IdP, client: Client) -> None:
    """32 threads at an expired token: 1 refresh call, 0 failures, the login still refreshes."""
    token = idp.login(client)
    adapter = RefreshAdapter(
        store=MemoryTokenStore(token), refresher=grant_for(idp, client), pool_maxsize=64
    )
    wait_until_expired(token)
    before = idp.stats()
    with session_for(adapter, idp.origin) as session:
        outcomes = storm(session, idp.resource_url, STORM_THREADS)
    served = idp.stats().since(before)
    adapter.close()

    assert outcomes == {"ok": STORM_THREADS}
    assert served.refresh_calls == 1
    assert served.refreshes == 1
    assert served.invalid_grant == 0
    assert adapter.stats.refreshes == 1
    # The family was not revoked: the current refresh token still works.
    current = adapter.store.load()
    assert current is not None
    with grant_for(idp, client) as grant:
        assert grant(current).access_token != current.access_token


@dataclasses.dataclass(frozen=True)
class SharedStore:
    """One store the worker processes share: what they are told, and one for the test."""

    where: str  # a file path or a Redis URL, as tests/workers/file_store_worker.py reads it
    open: Callable[[], contextlib.AbstractContextManager[TokenStore]]  # closed at exit


@pytest.fixture(params=["file", "redis"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path, idp: IdP) -> SharedStore:
    """A FileTokenStore, then a RedisTokenStore on a real redis-server (skips without one)."""
    if request.param == "file":
        path = tmp_path / "tokens.json"
        return SharedStore(str(path), lambda: contextlib.nullcontext(FileTokenStore(path)))
    redis_url = request.getfixturevalue("redis_server").url
    key = f"interop-{idp.name}-{time.time_ns()}"
    return SharedStore(
        f"{redis_url}#key={key}", lambda: contextlib.closing(RedisTokenStore(redis_url, key))
    )


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="the workers are POSIX processes")
def test_processes_sharing_a_store_refresh_once_per_generation(
    idp: IdP, shared_store: SharedStore, workers: list[Worker]
) -> None:
    """4 processes x 8 threads, one shared store, 2 s tokens, 10 s: 1.00 calls/generation."""
    with shared_store.open() as store:
        store.save(idp.login(PUBLIC))
    for _ in range(PROCESSES):
        workers.append(
            Worker(
                "storm",
                shared_store.where,
                idp.origin,
                PUBLIC.client_id,
                str(THREADS),
                str(SECONDS),
            )
        )
    for worker in workers:
        worker.expect("ready", timeout=60)
    before = idp.stats()
    started = time.monotonic()
    for worker in workers:
        worker.send("go")
    reports = [worker.result(timeout=SECONDS + 60) for worker in workers]
    elapsed = time.monotonic() - started
    served = idp.stats().since(before)

    failures = {
        outcome: n
        for report in reports
        for outcome, n in report["outcomes"].items()
        if outcome != "ok"
    }
    assert failures == {}, (reports, served)
    assert sum(report["requests"] for report in reports) > PROCESSES * THREADS
    assert served.invalid_grant == 0, served
    # 1.00 refresh calls per generation: every call made a generation, one process
    # made each, and the others adopted it from the store.
    assert served.refresh_calls == served.refreshes
    assert sum(report["stats"]["refreshes"] for report in reports) == served.refreshes
    assert served.refreshes >= SECONDS / idp.access_ttl
    assert served.refreshes <= elapsed / (idp.access_ttl / 2) + 3
    # The login is alive at the end.
    with shared_store.open() as store:
        current = store.load()
    assert current is not None
    with grant_for(idp, PUBLIC) as grant:
        grant(current)


def test_client_credentials_get_one_token_per_generation_from_an_empty_store(idp: IdP) -> None:
    """32 threads at an empty store, then 32 at expiry: 2 token calls, each with scope and
    audience, 0 failures."""
    assert SERVICE.client_secret is not None
    grant = ClientCredentialsGrant(
        idp.token_url,
        SERVICE.client_id,
        SERVICE.client_secret,
        scope="read",
        extra_params={"audience": AUDIENCE},
    )
    adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=grant, pool_maxsize=64)
    before = idp.stats()
    with session_for(adapter, idp.origin) as session:
        first = storm(session, idp.resource_url, STORM_THREADS)
        token = adapter.store.load()
        assert token is not None
        wait_until_expired(token)
        at_expiry = storm(session, idp.resource_url, STORM_THREADS)
    served = idp.stats().since(before)
    adapter.close()

    assert first == at_expiry == {"ok": STORM_THREADS}
    assert served.calls == {"client_credentials": 2}, served
    assert served.issued == {"client_credentials": 2}, served
    assert adapter.stats.refreshes == 2
    assert served.params == {
        "client_credentials scope=read": 2,
        f"client_credentials audience={AUDIENCE}": 2,
    }
    current = adapter.store.load()
    assert current is not None
    assert current.access_token != token.access_token
    assert current.scope == "read"
    assert current.refresh_token is None


def assert_refreshes_through_the_adapter(idp: IdP, client: Client, token: Token) -> None:
    """``token`` serves a request as it is, then, once expired, is refreshed: 1 call."""
    assert token.refresh_token is not None
    adapter = RefreshAdapter(store=MemoryTokenStore(token), refresher=grant_for(idp, client))
    before = idp.stats()
    with session_for(adapter, idp.origin) as session:
        fresh = session.get(idp.resource_url, timeout=30)
        wait_until_expired(token)
        renewed = session.get(idp.resource_url, timeout=30)
    served = idp.stats().since(before)
    adapter.close()
    assert fresh.status_code == renewed.status_code == 200
    assert fresh.json() == renewed.json() == {"user": USERNAME}
    assert adapter.stats.refreshes == 1
    assert served.refresh_calls == served.refreshes == 1
    current = adapter.store.load()
    assert current is not None
    assert current.refresh_token not in (None, token.refresh_token)


def test_device_login_approved_on_the_servers_pages_then_refreshes(idp: IdP) -> None:
    """device_login: the user approves on the server's pages as it polls; the token refreshes."""
    shown: list[DeviceAuthorization] = []
    approved = threading.Event()
    failures: list[BaseException] = []
    before = idp.stats()

    def approve(code: DeviceAuthorization) -> None:
        try:
            # The user is slower than the first poll: the server answers it "pending".
            deadline = time.monotonic() + 20
            while not idp.stats().since(before).errors["authorization_pending"]:
                assert time.monotonic() < deadline, "device_login never polled"
                time.sleep(0.05)  # polling a condition with a deadline
            idp.approve_device(code.verification_uri, code.user_code)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
        approved.set()

    def on_code(code: DeviceAuthorization) -> None:
        shown.append(code)
        threading.Thread(target=approve, args=(code,), name="the user").start()

    token = device_login(
        DEVICE.client_id,
        device_authorization_url=idp.device_authorization_url,
        token_url=idp.token_url,
        scope="read",
        on_code=on_code,
        timeout=30,
    )
    assert approved.wait(timeout=30)
    assert failures == []
    assert len(shown) == 1
    assert shown[0].verification_uri.startswith(idp.origin + "/")
    assert token.scope == "read"
    polls = idp.stats().since(before)
    assert polls.errors["authorization_pending"] >= 1
    assert polls.issued == {DEVICE.grant: 1}
    assert_refreshes_through_the_adapter(idp, DEVICE, token)


def test_browser_login_through_the_servers_pages_then_refreshes(idp: IdP) -> None:
    """browser_login: sign-in and consent on the server's pages, back to the loopback
    listener; the token refreshes."""
    pages: list[requests.Response] = []
    done = threading.Event()

    def open_browser(url: str) -> None:
        try:
            back = idp.consent(url)  # sign in, approve: the redirect to the listener
            pages.append(requests.get(back, timeout=30))  # which the browser then loads
        finally:
            done.set()

    token = browser_login(
        PUBLIC.client_id,
        authorization_url=idp.authorize_url,
        token_url=idp.token_url,
        scope="read",
        open_browser=open_browser,
        timeout=30,
    )
    assert done.wait(timeout=30)
    assert [page.status_code for page in pages] == [200]
    assert "Signed in" in pages[0].text
    assert token.scope == "read"
    assert_refreshes_through_the_adapter(idp, PUBLIC, token)
