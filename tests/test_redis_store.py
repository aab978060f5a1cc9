"""RedisTokenStore against a real redis-server: the contract, the lease, compare-and-set
saves, no Redis on the fast path, outages, lost data, and no secret in what it says."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from requests_refresh import (
    RedisTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
    TokenStore,
    TokenStoreConflictError,
    TokenStoreError,
)
from requests_refresh.stores._json import MAX_TOKEN_SIZE
from requests_refresh.testing import AuthorizationServer, TokenStoreContract

from .redis_server import REDIS_SERVER, RedisServer, free_port
from .store_contract import make_token

redis = pytest.importorskip("redis", reason="redis-py is not installed (the redis extra)")

_keys = itertools.count()


def unique_key(name: str) -> str:
    """A login key no other test uses on the shared server."""
    return f"{name}-{next(_keys)}"


def expired(token: Token) -> Token:
    """The same login with an access token that has already expired."""
    return Token(token.access_token, token.refresh_token, expires_at=time.time() - 1)


@pytest.fixture
def stores() -> Iterator[list[RedisTokenStore]]:
    """Stores a test makes from URLs; their clients are closed at teardown."""
    made: list[RedisTokenStore] = []
    yield made
    for store in made:
        store.close()


class TestRedisTokenStore(TokenStoreContract):
    """The shipped contract, every handle with a client of its own."""

    shared = True

    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer, stores: list[RedisTokenStore]) -> None:
        self.url = redis_server.url
        self.key = unique_key("contract")
        self.made = stores

    def make_store(self) -> TokenStore:
        store = RedisTokenStore(self.url, self.key)
        self.made.append(store)
        return store

    def reopen_store(self, store: TokenStore) -> TokenStore:
        return self.make_store()


def test_both_keys_of_a_login_are_in_one_hash_slot() -> None:
    """The token and the lock share a cluster hash slot, whatever the key and prefix."""
    key_slot = pytest.importorskip("redis.crc").key_slot
    for key, prefix in [("default", "requests-refresh"), ("a}b{c", "x"), ("k", "p{q}")]:
        store = RedisTokenStore(redis.Redis(), key, prefix=prefix)
        assert key_slot(store.token_key.encode()) == key_slot(store.lock_key.encode())


def test_logins_under_other_keys_are_left_alone(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """Saving, clearing and locking one key leaves the other keys' tokens and locks alone."""
    one = RedisTokenStore(redis_server.url, unique_key("one"), lock_timeout=0)
    two = RedisTokenStore(redis_server.url, unique_key("two"), lock_timeout=0)
    stores += [one, two]
    one.save(make_token(1))
    two.save(make_token(2))
    one.clear()
    assert two.load() == make_token(2)
    with one.lock(), two.lock():  # both free at once: separate locks
        assert one.load() is None


def test_a_client_with_str_replies_works_too(redis_server: RedisServer) -> None:
    """A client given by the caller, decoding replies to str, reads what a URL store saved."""
    client = redis_server.client(decode_responses=True)
    try:
        key = unique_key("client")
        RedisTokenStore(client, key).save(make_token(1))
        with RedisTokenStore(client, key).lock():
            assert RedisTokenStore(client, key).load() == make_token(1)
    finally:
        client.close()


# -- the lease ---------------------------------------------------------------------------


def test_the_lease_is_renewed_while_the_lock_is_held(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A holder that keeps the lock for many leases keeps it: nobody else gets in."""
    key = unique_key("renew")
    holder = RedisTokenStore(redis_server.url, key, lease=0.2)
    other = RedisTokenStore(redis_server.url, key, lock_timeout=0)
    stores += [holder, other]
    with holder.lock():
        for _ in range(6):  # 1.2 s: six leases
            with pytest.raises(TokenStoreError, match="within 0 s"), other.lock():
                pass
            threading.Event().wait(0.2)
    with other.lock():  # released: free at once
        pass


def test_a_dead_holders_lock_frees_itself_when_its_lease_runs_out(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A lock whose holder vanished (never renewed) is taken once its lease runs out."""
    store = RedisTokenStore(redis_server.url, unique_key("dead"), lock_timeout=10)
    stores.append(store)
    client = redis_server.client()
    try:
        assert client.set(store.lock_key, "someone-else", nx=True, px=300)
        started = time.monotonic()
        with store.lock():
            waited = time.monotonic() - started
    finally:
        client.close()
    assert 0.1 < waited < 3


def test_the_wait_for_the_lock_is_bounded_by_lock_timeout(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A lock held elsewhere is given up on after lock_timeout, naming lock and server."""
    store = RedisTokenStore(redis_server.url, unique_key("busy"), lock_timeout=0.3)
    stores.append(store)
    client = redis_server.client()
    try:
        client.set(store.lock_key, "someone-else", px=60_000)
        started = time.monotonic()
        with pytest.raises(TokenStoreError) as caught, store.lock():
            pass
        waited = time.monotonic() - started
    finally:
        client.close()
    assert 0.3 <= waited < 2
    assert store.lock_key in str(caught.value)
    assert f"127.0.0.1:{redis_server.port}" in str(caught.value)


def test_release_leaves_a_lock_that_is_no_longer_ours(
    redis_server: RedisServer, stores: list[RedisTokenStore], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose lease ran out and was taken over does not delete the new holder's lock."""
    store = RedisTokenStore(redis_server.url, unique_key("release"))
    stores.append(store)
    client = redis_server.client()
    try:
        with caplog.at_level(logging.WARNING, logger="requests_refresh"), store.lock():
            client.set(store.lock_key, "the-next-holder")  # as if our lease ran out
        assert client.get(store.lock_key) == "the-next-holder"
    finally:
        client.close()
    assert "had run out before it was released" in caplog.text


# -- compare-and-set ---------------------------------------------------------------------


def test_a_save_that_lost_the_race_is_refused_and_the_newer_token_kept(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """Under the lock, a save after someone else stored a newer token raises and writes nothing."""
    key = unique_key("cas")
    holder = RedisTokenStore(redis_server.url, key)
    signin = RedisTokenStore(redis_server.url, key)
    stores += [holder, signin]
    holder.save(make_token(1))
    with holder.lock():
        assert holder.load() == make_token(1)
        signin.save(make_token(2))  # a sign-in that does not take the lock
        with pytest.raises(TokenStoreConflictError) as caught:
            holder.save(make_token(3))
        assert holder.load() == make_token(2)  # what the adapter then adopts
    assert signin.load() == make_token(2)
    assert isinstance(caught.value, TokenStoreError)
    assert "secret" not in str(caught.value)


def test_a_token_cleared_meanwhile_is_not_written_back(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A holder that read a token which was then cleared (signed out) cannot store it again."""
    key = unique_key("cleared")
    holder = RedisTokenStore(redis_server.url, key)
    other = RedisTokenStore(redis_server.url, key)
    stores += [holder, other]
    holder.save(make_token(1))
    with holder.lock():
        holder.load()
        other.clear()
        with pytest.raises(TokenStoreConflictError):
            holder.save(make_token(2))
    assert other.load() is None


def test_consecutive_saves_of_one_holder_succeed(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """The version a save writes becomes the holder's: a second save in the same hold works."""
    store = RedisTokenStore(redis_server.url, unique_key("twice"))
    stores.append(store)
    store.save(make_token(1))
    with store.lock():
        store.load()
        store.save(make_token(2))
        store.save(make_token(3))
    assert store.load() == make_token(3)


def test_a_load_under_a_lock_whose_lease_ran_out_is_refused(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A holder that lost its lease learns it when it reads, before it spends a refresh token."""
    store = RedisTokenStore(redis_server.url, unique_key("lost"))
    stores.append(store)
    store.save(make_token(1))
    client = redis_server.client()
    try:
        with store.lock():
            client.set(store.lock_key, "the-next-holder")
            with pytest.raises(TokenStoreError, match="lost before the token was read"):
                store.load()
    finally:
        client.close()


# -- through the adapter -----------------------------------------------------------------


def test_requests_with_a_valid_token_send_no_redis_command(
    redis_server: RedisServer, server: AuthorizationServer, stores: list[RedisTokenStore]
) -> None:
    """The fast path: 50 requests with a valid token cost zero Redis commands."""
    store = RedisTokenStore(redis_server.url, unique_key("fast"))
    stores.append(store)
    store.save(server.login())
    adapter = RefreshAdapter(
        store=store, refresher=RefreshTokenGrant(server.token_url, server.client_id)
    )
    probe = redis_server.client()
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        assert session.get(server.resource_url, timeout=10).status_code == 200  # loads
        before = redis_server.command_calls(probe)
        statuses = [session.get(server.resource_url, timeout=10).status_code for _ in range(50)]
        after = redis_server.command_calls(probe)
    probe.close()
    assert statuses == [200] * 50
    assert after - before == 0


def test_a_refresher_that_stalls_past_the_lease_keeps_the_lock(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A refresh stalled for many leases: the other host waits and adopts, presenting nothing."""
    key = unique_key("stall")
    with AuthorizationServer(access_ttl=60) as server:
        first = RedisTokenStore(redis_server.url, key, lease=0.2)
        second = RedisTokenStore(redis_server.url, key, lease=0.2, lock_timeout=20)
        stores += [first, second]
        first.save(expired(server.login()))
        grant = RefreshTokenGrant(server.token_url, server.client_id)
        presented, resume = threading.Event(), threading.Event()

        def stalling(token: Token) -> Token:
            new = grant(token)
            presented.set()
            resume.wait(20)  # stalled between the token endpoint's answer and the save
            return new

        outcomes: dict[str, Any] = {}

        def request(name: str, store: RedisTokenStore, refresher: Any) -> None:
            adapter = RefreshAdapter(store=store, refresher=refresher)
            with requests.Session() as session:
                adapter.mount(session, server.url + "/")
                try:
                    outcomes[name] = session.get(server.resource_url, timeout=30).status_code
                except requests.RequestException as exc:
                    outcomes[name] = exc
            outcomes[name + " stats"] = adapter.stats

        one = threading.Thread(target=request, args=("first", first, stalling))
        one.start()
        assert presented.wait(10)
        two = threading.Thread(target=request, args=("second", second, grant))
        two.start()
        two.join(timeout=1.0)  # five leases
        assert two.is_alive(), outcomes  # still waiting for the lock
        resume.set()
        one.join(timeout=20)
        two.join(timeout=20)
        served = server.stats

    assert outcomes["first"] == 200
    assert outcomes["second"] == 200
    assert served.refreshes == 1
    assert served.reuse_detected == 0
    assert served.invalid_grant == 0
    assert outcomes["second stats"].adopted == 1


def test_the_adapter_adopts_the_token_that_won_the_race(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A sign-in saved during a refresh wins: the refresh is not saved, the adapter adopts."""
    key = unique_key("race")
    with AuthorizationServer(access_ttl=60) as server:
        store = RedisTokenStore(redis_server.url, key)
        signin = RedisTokenStore(redis_server.url, key)
        stores += [store, signin]
        store.save(expired(server.login()))
        grant = RefreshTokenGrant(server.token_url, server.client_id)
        new_login = server.login()

        def refresher(token: Token) -> Token:
            refreshed = grant(token)
            signin.save(new_login)  # someone signs in while the refresh is in flight
            return refreshed

        adapter = RefreshAdapter(store=store, refresher=refresher)
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            assert session.get(server.resource_url, timeout=10).status_code == 200
        stats = adapter.stats
    assert store.load() == new_login
    assert stats.adopted == 1
    assert stats.refreshes == 0


def test_redis_stopped_and_started_again_loses_nothing(own_redis_server: RedisServer) -> None:
    """An outage: valid tokens keep working, then bounded errors, then recovery, same login."""
    store = RedisTokenStore(own_redis_server.url, socket_timeout=2)
    with AuthorizationServer(access_ttl=2.0) as server:
        store.save(server.login())
        adapter = RefreshAdapter(
            store=store,
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
            leeway=0.5,
            cooloff=0.1,
            max_cooloff=0.3,
        )
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            assert session.get(server.resource_url, timeout=10).status_code == 200
            own_redis_server.stop()
            # The token is still valid: requests go on without Redis.
            assert session.get(server.resource_url, timeout=10).status_code == 200
            threading.Event().wait(2.2)  # the token's lifetime runs out
            slowest = 0.0
            for _ in range(5):
                started = time.monotonic()
                with pytest.raises(TokenStoreError) as caught:
                    session.get(server.resource_url, timeout=10)
                slowest = max(slowest, time.monotonic() - started)
            assert f"127.0.0.1:{own_redis_server.port}" in str(caught.value)
            own_redis_server.start()
            deadline = time.monotonic() + 10
            while True:
                try:
                    status = session.get(server.resource_url, timeout=10).status_code
                    break
                except TokenStoreError:
                    assert time.monotonic() < deadline, "no recovery after Redis came back"
                    threading.Event().wait(0.05)
        served = server.stats
    store.close()
    assert slowest < 2.5
    assert status == 200
    assert served.invalid_grant == 0
    assert served.reuse_detected == 0
    assert not server.revoked


def test_a_server_that_lost_its_data_reads_as_no_token_and_says_so(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Restarted without its data: load() is None, a warning names the likely cause."""
    store = RedisTokenStore(own_redis_server.url)
    store.save(make_token(1))
    assert store.load() == make_token(1)
    own_redis_server.wipe()
    own_redis_server.start()
    with caplog.at_level(logging.WARNING, logger="requests_refresh"):
        assert store.load() is None
    store.close()
    assert "lost its data" in caplog.text
    assert "appendonly yes" in caplog.text


def test_a_holder_whose_save_meets_an_empty_server_still_saves(
    own_redis_server: RedisServer,
) -> None:
    """After the server lost its data mid-refresh, the just-refreshed token is kept, not lost."""
    store = RedisTokenStore(own_redis_server.url)
    store.save(make_token(1))
    with store.lock():
        assert store.load() == make_token(1)
        own_redis_server.wipe()
        own_redis_server.start()
        store.save(make_token(2))
    assert store.load() == make_token(2)
    store.close()


# -- hostile values ----------------------------------------------------------------------

#: A stored value no token is: JSON nested 200,000 deep, with a secret-looking tail.
DEEP = "[" * 200_000 + "]" * 200_000 + "sekrit"


@pytest.mark.parametrize("under_lock", [False, True])
@pytest.mark.parametrize(
    "value",
    [DEEP, json.dumps({"access_token": "sekrit" * MAX_TOKEN_SIZE}), '{"access_token": "sekrit",'],
    ids=["nested 200,000 deep", "a token over MAX_TOKEN_SIZE", "broken JSON"],
)
def test_a_stored_value_that_is_no_token_is_a_store_error_that_quotes_nothing(
    redis_server: RedisServer, stores: list[RedisTokenStore], value: str, under_lock: bool
) -> None:
    """Deep, huge or broken JSON under the token key: TokenStoreError naming the key.

    Protects against: a raw RecursionError out of load(), a value of any size read into
    memory, and the stored content echoed in the message.
    """
    store = RedisTokenStore(redis_server.url, unique_key("hostile"))
    stores.append(store)
    client = redis.Redis.from_url(redis_server.url)
    client.hset(store.token_key, mapping={"token": value, "version": 1})
    client.close()
    held = store.lock() if under_lock else contextlib.nullcontext()
    with held, pytest.raises(TokenStoreError) as caught:
        store.load()
    message = str(caught.value)
    assert store.token_key in message
    assert "clear" in message
    assert "sekrit" not in message
    assert len(message) < 1000


def test_a_token_too_large_to_load_back_is_not_saved(
    redis_server: RedisServer, stores: list[RedisTokenStore]
) -> None:
    """A save over MAX_TOKEN_SIZE is refused and the stored token stays."""
    store = RedisTokenStore(redis_server.url, unique_key("huge"))
    stores.append(store)
    store.save(make_token(1))
    with pytest.raises(TokenStoreError, match="nothing was written"):
        store.save(Token("a" * MAX_TOKEN_SIZE))
    assert store.load() == make_token(1)


# -- secrets -----------------------------------------------------------------------------


def test_an_unreachable_server_is_named_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listening: a quick TokenStoreError naming host:port, never the URL's password."""
    port = free_port()
    store = RedisTokenStore(f"redis://user:hunter2-pw@127.0.0.1:{port}/0", socket_timeout=1)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="requests_refresh"):
        for action in (store.load, store.clear, lambda: store.save(make_token(1))):
            with pytest.raises(TokenStoreError) as caught:
                action()
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "hunter2" not in str(caught.value)
        with pytest.raises(TokenStoreError) as caught, store.lock():
            pass
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(store)
    assert "hunter2" not in caplog.text
    store.close()


def test_wrong_credentials_are_reported_without_them(tmp_path: Any) -> None:
    """A server with a password refuses a wrong one: the error says check credentials, not them."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    protected = RedisServer(tmp_path / "redis", password="right-pw-123")
    protected.start()
    try:
        good = RedisTokenStore(protected.url)
        good.save(make_token(1))
        bad = RedisTokenStore(f"redis://:wrong-pw-456@127.0.0.1:{protected.port}/0")
        with pytest.raises(TokenStoreError, match="credentials") as caught:
            bad.load()
        assert good.load() == make_token(1)
        good.close()
        bad.close()
    finally:
        protected.stop()
    text = str(caught.value) + repr(bad) + repr(good)
    assert "wrong-pw" not in text
    assert "right-pw" not in text


def test_a_url_that_is_not_redis_is_refused_without_echoing_it() -> None:
    """A mistyped URL is a ValueError that lists the schemes and does not quote the URL."""
    with pytest.raises(ValueError, match="redis://") as caught:
        RedisTokenStore("http://user:pw-secret@host/")
    assert "pw-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [("lock_timeout", -1), ("lease", 0), ("socket_timeout", float("nan")), ("key", "")],
)
def test_bad_options_are_refused(option: str, value: Any) -> None:
    """Nonsense settings fail at construction, not at the first refresh."""
    with pytest.raises(ValueError, match=option):
        RedisTokenStore(redis.Redis(), **{option: value})
