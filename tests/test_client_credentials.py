"""ClientCredentialsGrant: a refresher that starts from nothing, single-flight like a refresh."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from requests_refresh import (
    ClientCredentialsGrant,
    MemoryTokenStore,
    NoTokenError,
    RefreshAdapter,
    Token,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from requests_refresh.testing import AuthorizationServer

THREADS = 64


@pytest.fixture
def confidential() -> Iterator[AuthorizationServer]:
    """A server whose client must authenticate with a secret."""
    with AuthorizationServer(access_ttl=60.0, client_secret="s3cret-value") as running:
        yield running


class Clock:
    """A clock a test moves forward, to expire tokens without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def storm(session: requests.Session, url: str, threads: int = THREADS) -> list[int | str]:
    """``threads`` GETs released together; each thread's status code or error name."""
    barrier = threading.Barrier(threads)
    results: list[int | str] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            outcome: int | str = session.get(url, timeout=30).status_code
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return results


def test_storm_from_an_empty_store_and_at_expiry_makes_one_call_per_generation(
    confidential: AuthorizationServer,
) -> None:
    """64 threads on an empty store: one token call; at expiry: one more; 0 failures."""
    clock = Clock()
    grant = ClientCredentialsGrant(confidential.token_url, "test-client", "s3cret-value")
    adapter = RefreshAdapter(
        store=MemoryTokenStore(), refresher=grant, leeway=0, clock=clock, pool_maxsize=THREADS
    )
    with requests.Session() as session:
        adapter.mount(session, confidential.url + "/")

        first = storm(session, confidential.resource_url)
        assert first == [200] * THREADS
        assert confidential.stats.client_credentials == 1
        assert adapter.stats.generation == 0

        clock.offset = 61.0  # every thread now holds an expired token
        second = storm(session, confidential.resource_url)
        assert second == [200] * THREADS
        assert confidential.stats.client_credentials == 2
        assert adapter.stats.generation == 1
        assert adapter.stats.failures == 0
        assert confidential.stats.token_requests == 2


def test_scope_and_extra_params_are_sent_on_every_acquisition(
    confidential: AuthorizationServer,
) -> None:
    """The first acquisition, one at expiry and one after a 401 all carry audience and scope."""
    clock = Clock()
    extra = {"audience": "https://api.example.test/", "resource": "urn:example:api"}
    grant = ClientCredentialsGrant(
        confidential.token_url,
        "test-client",
        "s3cret-value",
        scope="read write",
        extra_params=extra,
    )
    adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=grant, clock=clock)
    with requests.Session() as session:
        adapter.mount(session, confidential.url + "/")
        assert session.get(confidential.resource_url, timeout=10).status_code == 200
        clock.offset = 120.0
        assert session.get(confidential.resource_url, timeout=10).status_code == 200
        confidential.revoke()  # the current token is refused: a 401, then a new token
        assert session.get(confidential.resource_url, timeout=10).status_code == 200

    sent = confidential.token_params
    assert len(sent) == 3
    for form in sent:
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == "read write"
        assert form["audience"] == extra["audience"]
        assert form["resource"] == extra["resource"]
    assert adapter.stats.replays == 1


def test_a_failed_first_acquisition_reaches_every_waiter_once(
    confidential: AuthorizationServer,
) -> None:
    """A 503 on the first acquisition: one call, every thread gets the error; later, it works."""
    clock = Clock()
    grant = ClientCredentialsGrant(confidential.token_url, "test-client", "s3cret-value")
    adapter = RefreshAdapter(
        store=MemoryTokenStore(), refresher=grant, clock=clock, pool_maxsize=16
    )
    confidential.fail_next(503, headers={"Retry-After": "5"})
    with requests.Session() as session:
        adapter.mount(session, confidential.url + "/")
        outcomes = storm(session, confidential.resource_url, threads=16)
        assert outcomes == ["TokenEndpointUnavailableError"] * 16
        assert confidential.stats.token_requests == 1
        with pytest.raises(TokenEndpointUnavailableError):
            session.get(confidential.resource_url, timeout=10)  # still cooling off
        assert confidential.stats.token_requests == 1
        clock.offset = 10.0
        assert session.get(confidential.resource_url, timeout=10).status_code == 200
    assert confidential.stats.client_credentials == 1


def test_a_wrong_secret_is_a_typed_error_that_never_shows_the_secret(
    confidential: AuthorizationServer,
) -> None:
    """invalid_client comes back as TokenEndpointError; the secret is not in the message."""
    grant = ClientCredentialsGrant(confidential.token_url, "test-client", "wrong-secret-value")
    with pytest.raises(TokenEndpointError) as caught:
        grant.acquire()
    assert caught.value.error == "invalid_client"
    assert "wrong-secret-value" not in str(caught.value)
    assert "wrong-secret-value" not in repr(grant)


def test_from_issuer_discovers_the_token_endpoint(confidential: AuthorizationServer) -> None:
    """from_issuer() finds the token endpoint in the server's metadata."""
    with ClientCredentialsGrant.from_issuer(
        confidential.issuer, "test-client", "s3cret-value", scope="read"
    ) as grant:
        assert grant.token_url == confidential.token_url
        token = grant.acquire()
    assert token.scope == "read"
    assert token.refresh_token is None


def test_a_custom_refresher_with_acquire_starts_from_nothing(
    server: AuthorizationServer,
) -> None:
    """Any refresher with acquire() -> Token gets the first token; __call__ the later ones."""
    calls: list[str] = []

    class Login:
        def acquire(self) -> Token:
            calls.append("acquire")
            return server.login()

        def __call__(self, token: Token) -> Token:
            calls.append("refresh")
            return server.login()

    clock = Clock()
    adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=Login(), clock=clock)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        assert session.get(server.resource_url, timeout=10).status_code == 200
        clock.offset = 120.0
        assert session.get(server.resource_url, timeout=10).status_code == 200
    assert calls == ["acquire", "refresh"]


def test_a_refresher_without_acquire_still_needs_a_stored_token(
    server: AuthorizationServer,
) -> None:
    """Without acquire(), an empty store is NoTokenError, as before."""
    adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=lambda token: token)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        with pytest.raises(NoTokenError):
            session.get(server.resource_url, timeout=10)


def test_a_cleared_store_gets_a_new_token_instead_of_an_error(
    confidential: AuthorizationServer,
) -> None:
    """Signing out (clearing the store) with client credentials just acquires again."""
    clock = Clock()
    store = MemoryTokenStore()
    grant = ClientCredentialsGrant(confidential.token_url, "test-client", "s3cret-value")
    adapter = RefreshAdapter(store=store, refresher=grant, clock=clock)
    with requests.Session() as session:
        adapter.mount(session, confidential.url + "/")
        assert session.get(confidential.resource_url, timeout=10).status_code == 200
        store.clear()
        clock.offset = 120.0
        assert session.get(confidential.resource_url, timeout=10).status_code == 200
    assert confidential.stats.client_credentials == 2
    assert store.load() is not None


def test_extra_params_may_not_override_the_grant(confidential: AuthorizationServer) -> None:
    """grant_type, client credentials and scope cannot be smuggled in through extra_params."""
    with pytest.raises(ValueError, match="grant_type"):
        ClientCredentialsGrant(
            confidential.token_url, "c", "s", extra_params={"grant_type": "password"}
        )
