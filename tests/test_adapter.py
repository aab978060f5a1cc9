"""RefreshAdapter against a real authorization server: attach, refresh, replay, single flight."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from requests_refresh import (
    InvalidGrantError,
    MemoryTokenStore,
    NoTokenError,
    RefreshAdapter,
    RefreshError,
    RefreshTimeoutError,
    RefreshTokenGrant,
    Token,
    TokenEndpointUnavailableError,
)
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession
from .servers import Reply, ScriptedServer, Seen

WAIT = 30  # seconds: the bound on every join and event wait in this module


def expired(token: Token) -> Token:
    """The same token as the client sees it once its lifetime is over."""
    return dataclasses.replace(token, expires_at=time.time() - 1, issued_at=time.time() - 61)


def refused(token: Token) -> Token:
    """A token the server will refuse (as if revoked) that the client thinks is fine."""
    return dataclasses.replace(token, access_token="no-longer-valid")


def run_threads(count: int, work: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``work`` in ``count`` threads released together; return results and errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(timeout=WAIT)
        try:
            result = work()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"
    return results, errors


# -- 1. the token is attached to a copy ------------------------------------------------------


def test_token_is_attached_and_the_callers_request_is_not_changed(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """The request goes out with 'Bearer <token>'; the caller's PreparedRequest is untouched."""
    session, _ = make_session()
    prepared = session.prepare_request(requests.Request("GET", server.resource_url))
    response = session.send(prepared, timeout=WAIT)
    assert response.status_code == 200
    assert "Authorization" not in prepared.headers
    assert str(response.request.headers["Authorization"]).startswith("Bearer at-")


def test_no_token_stored_says_how_to_sign_in(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """An empty store is NoTokenError before anything is sent."""
    session, _ = make_session(store=MemoryTokenStore())
    with pytest.raises(NoTokenError, match="sign in"):
        session.get(server.resource_url, timeout=WAIT)
    assert server.stats.resource_requests == 0


# -- 2. proactive refresh ----------------------------------------------------------------------


def test_expired_token_is_refreshed_before_sending(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A token known to be expired is refreshed first: no 401 round trip."""
    session, adapter = make_session(store=MemoryTokenStore(expired(server.login())))
    response = session.get(server.resource_url, timeout=WAIT)
    assert response.status_code == 200
    assert response.history == []
    assert server.stats.refreshes == 1
    assert server.stats.resource_unauthorized == 0
    assert adapter.stats.refreshes == 1


def test_64_threads_at_an_expired_token_make_exactly_one_refresh(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """The storm: 64 threads released at once at an expired token, one refresh, 64 successes."""
    server.latency = 0.2  # a refresh slow enough for every thread to arrive during it
    session, adapter = make_session(store=MemoryTokenStore(expired(server.login())))
    results, errors = run_threads(
        64, lambda: session.get(server.resource_url, timeout=WAIT).status_code
    )
    assert errors == []
    assert results == [200] * 64
    assert server.stats.refreshes == 1
    assert server.stats.token_requests == 1
    assert server.stats.invalid_grant == 0
    assert not server.revoked
    assert adapter.stats.generation == 1
    assert adapter.stats.waits > 0


def test_refresh_ahead_window_one_thread_refreshes_and_nobody_blocks(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """Inside the leeway, one thread refreshes while the others send with the valid token."""
    now = time.time()
    login = dataclasses.replace(server.login(), expires_at=now + 20, issued_at=now - 100)
    refresh_started, others_done = threading.Event(), threading.Event()
    grant = RefreshTokenGrant(server.token_url, server.client_id)

    def slow_refresher(token: Token) -> Token:
        refresh_started.set()
        assert others_done.wait(WAIT)  # the refresh ends only after the others finished
        return grant(token)

    session, adapter = make_session(store=MemoryTokenStore(login), refresher=slow_refresher)
    refresher = threading.Thread(target=session.get, args=(server.resource_url,))
    refresher.start()
    assert refresh_started.wait(WAIT)
    results, errors = run_threads(
        15, lambda: session.get(server.resource_url, timeout=WAIT).status_code
    )
    others_done.set()
    refresher.join(WAIT)
    grant.close()
    assert errors == []
    assert results == [200] * 15
    assert adapter.stats.waits == 0
    assert server.stats.refreshes == 1


# -- 3. reactive refresh ---------------------------------------------------------------------


def test_a_refused_token_is_refreshed_and_the_request_replayed(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A 401 triggers one refresh and one replay; the 401 is in history."""
    session, adapter = make_session(store=MemoryTokenStore(refused(server.login())))
    response = session.get(server.resource_url, timeout=WAIT)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Authorization"] != "Bearer no-longer-valid"
    assert server.stats.refreshes == 1
    assert adapter.stats.replays == 1


def test_a_second_401_goes_back_to_the_caller() -> None:
    """At most one replay per request: a server that refuses everything gets no loop."""
    with AuthorizationServer(always_refuse=True) as server:
        grant = RefreshTokenGrant(server.token_url, server.client_id)
        adapter = RefreshAdapter(store=MemoryTokenStore(server.login()), refresher=grant)
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            response = session.get(server.resource_url, timeout=WAIT)
        assert response.status_code == 401
        assert [r.status_code for r in response.history] == [401]
        assert server.stats.resource_requests == 2
        assert server.stats.refreshes == 1


@pytest.fixture
def held_back() -> Iterator[tuple[ScriptedServer, threading.Event, threading.Event, list[str]]]:
    """A resource that refuses the first token, holding the /slow answer until released."""
    arrived, release = threading.Event(), threading.Event()
    refused_tokens: list[str] = []

    def script(seen: Seen) -> Reply:
        if seen.path == "/slow" and seen.authorization in refused_tokens:
            arrived.set()
            assert release.wait(WAIT)
        if seen.authorization in refused_tokens:
            return Reply(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Reply(200, body=b"ok")

    with ScriptedServer(script) as resource:
        yield resource, arrived, release, refused_tokens


def test_a_401_earned_by_an_older_token_is_replayed_without_a_second_refresh(
    server: AuthorizationServer,
    held_back: tuple[ScriptedServer, threading.Event, threading.Event, list[str]],
) -> None:
    """The generation rule: a 401 for generation g after g+1 exists replays, no refresh."""
    resource, arrived, release, refused_tokens = held_back
    login = server.login()
    refused_tokens.append(login.authorization)
    grant = RefreshTokenGrant(server.token_url, server.client_id)
    adapter = RefreshAdapter(store=MemoryTokenStore(login), refresher=grant)
    with requests.Session() as session:
        adapter.mount(session, resource.url + "/")
        slow: dict[str, requests.Response] = {}
        sender = threading.Thread(
            target=lambda: slow.update(r=session.get(resource.url + "/slow", timeout=WAIT))
        )
        sender.start()
        assert arrived.wait(WAIT)  # generation 0 is in flight
        fast = session.get(resource.url + "/fast", timeout=WAIT)  # 401, refresh -> gen 1
        assert fast.status_code == 200
        assert server.stats.refreshes == 1
        release.set()  # now generation 0's 401 arrives
        sender.join(WAIT)
    assert slow["r"].status_code == 200
    assert [r.status_code for r in slow["r"].history] == [401]
    assert server.stats.refreshes == 1  # no second refresh
    assert adapter.stats.replays == 2
    assert adapter.stats.generation == 1


def test_insufficient_scope_is_never_a_reason_to_refresh(server: AuthorizationServer) -> None:
    """RFC 6750: a 403 insufficient_scope comes back as is, even if 403 is configured."""
    challenge = 'Bearer error="insufficient_scope", scope="admin"'
    with ScriptedServer(lambda seen: Reply(403, {"WWW-Authenticate": challenge})) as resource:
        adapter = RefreshAdapter(
            store=MemoryTokenStore(server.login()),
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
            should_refresh=lambda response: response.status_code in (401, 403),
        )
        with requests.Session() as session:
            adapter.mount(session, resource.url + "/")
            response = session.get(resource.url + "/admin", timeout=WAIT)
    assert response.status_code == 403
    assert server.stats.token_requests == 0
    assert len(resource.seen) == 1


def test_should_refresh_hook_decides_what_a_refusal_is(server: AuthorizationServer) -> None:
    """An API that says 'expired' with 419 can be taught to the adapter."""
    login = server.login()

    def script(seen: Seen) -> Reply:
        return Reply(419) if seen.authorization == login.authorization else Reply(200)

    with ScriptedServer(script) as resource:
        adapter = RefreshAdapter(
            store=MemoryTokenStore(login),
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
            should_refresh=lambda response: response.status_code == 419,
        )
        with requests.Session() as session:
            adapter.mount(session, resource.url + "/")
            response = session.get(resource.url + "/", timeout=WAIT)
    assert response.status_code == 200
    assert server.stats.refreshes == 1


# -- 4. single flight and failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ({"status": 400, "body": {"error": "invalid_grant"}}, InvalidGrantError),
        ({"status": 500}, TokenEndpointUnavailableError),
        ({"status": 200, "delay": 3.0}, TokenEndpointUnavailableError),  # grant times out
    ],
    ids=["invalid_grant", "http_500", "timeout"],
)
def test_a_failed_refresh_reaches_all_16_waiting_threads_with_one_call(
    server: AuthorizationServer,
    make_session: MakeSession,
    fault: dict[str, Any],
    error_type: type[Exception],
) -> None:
    """Every waiter gets the same error; the token endpoint was called once."""
    server.fail_next(**{"delay": 0.3, **fault})
    login = expired(server.login())
    store = MemoryTokenStore(login)
    grant = RefreshTokenGrant(server.token_url, server.client_id, timeout=1.0)
    session, _ = make_session(store=store, refresher=grant)
    started = time.monotonic()
    results, errors = run_threads(16, lambda: session.get(server.resource_url, timeout=WAIT))
    assert results == []
    assert len(errors) == 16
    assert all(type(error) is error_type for error in errors)
    assert len({id(error.__cause__) for error in errors}) == 1  # copies of one error
    assert server.stats.token_requests == 1
    assert store.load() == login  # nothing lost
    assert time.monotonic() - started < 10


def test_waiting_is_bounded_by_refresh_timeout(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A refresher that hangs never hangs the waiters: RefreshTimeoutError after the bound."""
    entered, release = threading.Event(), threading.Event()

    def hanging(token: Token) -> Token:
        entered.set()
        assert release.wait(WAIT)
        return dataclasses.replace(token, expires_at=time.time() + 60)

    session, _ = make_session(
        store=MemoryTokenStore(expired(server.login())), refresher=hanging, refresh_timeout=0.2
    )
    stuck = threading.Thread(target=lambda: session.get(server.resource_url, timeout=WAIT))
    stuck.start()
    assert entered.wait(WAIT)
    try:
        _, errors = run_threads(8, lambda: session.get(server.resource_url, timeout=WAIT))
    finally:
        release.set()
        stuck.join(WAIT)
    assert len(errors) == 8
    assert all(isinstance(error, RefreshTimeoutError) for error in errors)
    assert "refresh_timeout" in str(errors[0])


def test_a_refresher_killed_by_keyboardinterrupt_never_leaves_waiters_hanging(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """The interrupt stays in its thread; every waiter gets a RefreshError at once."""
    entered, release = threading.Event(), threading.Event()

    def interrupted(token: Token) -> Token:
        entered.set()
        assert release.wait(WAIT)
        raise KeyboardInterrupt

    session, _ = make_session(
        store=MemoryTokenStore(expired(server.login())), refresher=interrupted
    )
    outcome: list[BaseException] = []

    def first() -> None:
        try:
            session.get(server.resource_url, timeout=WAIT)
        except BaseException as exc:
            outcome.append(exc)

    refresher = threading.Thread(target=first)
    refresher.start()
    assert entered.wait(WAIT)
    waiters_ready = threading.Barrier(9)
    errors: list[BaseException] = []

    def wait_for_refresh() -> None:
        waiters_ready.wait(WAIT)
        try:
            session.get(server.resource_url, timeout=WAIT)
        except BaseException as exc:
            errors.append(exc)

    waiters = [threading.Thread(target=wait_for_refresh) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    waiters_ready.wait(WAIT)
    release.set()
    for thread in [refresher, *waiters]:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert [type(exc) for exc in outcome] == [KeyboardInterrupt]
    assert len(errors) == 8
    assert all(type(error) is RefreshError for error in errors)
    assert "interrupted" in str(errors[0])


def test_a_plain_callable_refresher_works(server: AuthorizationServer) -> None:
    """A non-OAuth API: any refresher(token) -> Token function is enough."""
    calls: list[Token] = []

    def refresh(token: Token) -> Token:
        calls.append(token)
        answer = requests.post(
            server.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": token.refresh_token,
                "client_id": server.client_id,
            },
            timeout=WAIT,
        )
        pair = answer.json()
        return Token(pair["access_token"], pair["refresh_token"], time.time() + 60)

    adapter = RefreshAdapter(store=MemoryTokenStore(refused(server.login())), refresher=refresh)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        assert session.get(server.resource_url, timeout=WAIT).status_code == 200
    assert len(calls) == 1


def test_a_refresher_handing_out_expired_tokens_does_not_refresh_in_a_loop(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A token that is already due when it arrives is sent once, not refreshed again."""
    calls: list[Token] = []

    def stale(token: Token) -> Token:
        calls.append(token)
        assert len(calls) < 3, "refreshed in a loop"
        return expired(server.login())

    session, _ = make_session(store=MemoryTokenStore(expired(server.login())), refresher=stale)
    assert session.get(server.resource_url, timeout=WAIT).status_code == 200
    assert len(calls) == 1


def test_no_refresh_loop_even_with_the_cooloff_turned_off(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """With cooloff=0 nothing delays the next refresh: the request still sends once."""
    calls: list[Token] = []

    def stale(token: Token) -> Token:
        calls.append(token)
        assert len(calls) < 3, "refreshed in a loop"
        return expired(server.login())

    session, _ = make_session(
        store=MemoryTokenStore(expired(server.login())), refresher=stale, cooloff=0
    )
    assert session.get(server.resource_url, timeout=WAIT).status_code == 200
    assert len(calls) == 1


def test_a_refresher_returning_something_else_is_a_clear_error(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A refresher bug (returning a dict) is named, not an AttributeError deep inside."""
    session, _ = make_session(
        store=MemoryTokenStore(expired(server.login())),
        refresher=lambda token: {"access_token": "x"},
    )
    with pytest.raises(RefreshError, match="returned dict, not a Token"):
        session.get(server.resource_url, timeout=WAIT)


# -- 5 and 6. bodies and the refused response ------------------------------------------------


BODY = b"0123456789" * 1000 + b"\xff\x00 end"


def replayed_body(response: requests.Response) -> tuple[int, str]:
    data = response.json()
    return data["body_length"], data["body_sha256"]


def sha(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("make_kwargs", "expected"),
    [
        (lambda: {"data": BODY}, BODY),
        (lambda: {"data": "text body, ascii"}, b"text body, ascii"),
        (lambda: {"json": {"a": [1, 2], "b": "é"}}, json.dumps({"a": [1, 2], "b": "é"}).encode()),
        (lambda: {"data": {"field": "value"}}, b"field=value"),
    ],
    ids=["bytes", "str", "json", "form"],
)
def test_bodies_are_replayed_byte_for_byte(
    server: AuthorizationServer,
    make_session: MakeSession,
    make_kwargs: Callable[[], dict[str, Any]],
    expected: bytes,
) -> None:
    """The replay carries exactly the body of the first attempt."""
    session, _ = make_session(store=MemoryTokenStore(refused(server.login())))
    response = session.post(server.resource_url, timeout=WAIT, **make_kwargs())
    assert response.status_code == 200
    assert response.history[0].status_code == 401
    assert replayed_body(response) == sha(expected)


def test_a_file_body_is_rewound_to_where_it_started(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A file positioned at offset 10 is sent from offset 10 both times, never empty."""
    session, _ = make_session(store=MemoryTokenStore(refused(server.login())))
    body = io.BytesIO(BODY)
    body.seek(10)
    response = session.post(server.resource_url, data=body, timeout=WAIT)
    assert response.status_code == 200
    assert response.history[0].status_code == 401
    assert replayed_body(response) == sha(BODY[10:])


def test_a_generator_body_is_never_sent_twice(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """An unrewindable body gets its 401 back; the token is still refreshed for a retry."""
    session, adapter = make_session(store=MemoryTokenStore(refused(server.login())))
    chunks = (part for part in [b"one ", b"two"])
    response = session.post(server.resource_url, data=chunks, timeout=WAIT)
    assert response.status_code == 401
    assert response.history == []
    assert adapter.stats.replays == 0
    assert server.stats.resource_requests == 1
    assert server.stats.refreshes == 1
    retry = session.post(server.resource_url, data=(p for p in [b"one ", b"two"]), timeout=WAIT)
    assert retry.status_code == 200
    assert replayed_body(retry) == sha(b"one two")


@pytest.mark.parametrize("stream", [False, True])
def test_the_401_is_read_and_its_connection_reused(
    server: AuthorizationServer, make_session: MakeSession, stream: bool
) -> None:
    """The refused response is consumed so the replay reuses the same connection."""
    session, adapter = make_session(store=MemoryTokenStore(refused(server.login())))
    response = session.get(server.resource_url, timeout=WAIT, stream=stream)
    assert response.status_code == 200
    assert response.history[0].content == b'{"error": "invalid_token"}'
    (pool,) = adapter.poolmanager.pools._container.values()
    assert pool.num_connections == 1
    response.close()


# -- 8. store, hooks, counters -----------------------------------------------------------------


class RecordingStore(MemoryTokenStore):
    """Remembers what the resource server had seen when each token was saved."""

    def __init__(self, token: Token, resource: ScriptedServer) -> None:
        super().__init__(token)
        self.resource = resource
        self.seen_at_save: list[set[str | None]] = []

    def save(self, token: Token) -> None:
        self.seen_at_save.append({seen.authorization for seen in self.resource.seen})
        super().save(token)


def test_a_new_token_is_saved_before_it_is_used_and_the_hook_runs_once(
    server: AuthorizationServer,
) -> None:
    """The store has the new token before any request carries it; on_refresh(old, new) once."""
    login = server.login()
    with ScriptedServer(
        lambda seen: Reply(401) if seen.authorization == login.authorization else Reply(200)
    ) as resource:
        store = RecordingStore(login, resource)
        hook_calls: list[tuple[Token, Token]] = []
        adapter = RefreshAdapter(
            store=store,
            refresher=RefreshTokenGrant(server.token_url, server.client_id),
            on_refresh=lambda old, new: hook_calls.append((old, new)),
        )
        with requests.Session() as session:
            adapter.mount(session, resource.url + "/")
            results, errors = run_threads(
                8, lambda: session.get(resource.url + "/", timeout=WAIT).status_code
            )
    new = store.load()
    assert errors == []
    assert results == [200] * 8
    assert new is not None
    assert new != login
    assert len(store.seen_at_save) == 1
    assert new.authorization not in store.seen_at_save[0]
    assert hook_calls == [(login, new)]
    stats = adapter.stats
    assert (stats.refreshes, stats.generation, stats.failures) == (1, 1, 0)
    assert stats.replays >= 1


def test_a_failing_hook_does_not_lose_the_new_token(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """An on_refresh that raises is logged; the refreshed token is still saved and used."""

    def broken_hook(old: Token, new: Token) -> None:
        raise RuntimeError("hook bug")

    store = MemoryTokenStore(expired(server.login()))
    session, _ = make_session(store=store, on_refresh=broken_hook)
    assert session.get(server.resource_url, timeout=WAIT).status_code == 200
    assert server.stats.refreshes == 1
    assert store.load() != server.login()


def test_a_new_login_saved_after_invalid_grant_is_picked_up_without_restart(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """After InvalidGrantError, saving a fresh login to the store is enough."""
    store = MemoryTokenStore(expired(server.login()))
    server.fail_next(400, body={"error": "invalid_grant"})
    session, _ = make_session(store=store)
    with pytest.raises(InvalidGrantError):
        session.get(server.resource_url, timeout=WAIT)
    with pytest.raises(InvalidGrantError):  # fails fast: no second call
        session.get(server.resource_url, timeout=WAIT)
    assert server.stats.token_requests == 1
    store.save(server.login())
    assert session.get(server.resource_url, timeout=WAIT).status_code == 200


def test_options_are_checked_at_construction(server: AuthorizationServer) -> None:
    """Bad arguments fail when the adapter is built, with the name of the culprit."""
    grant = RefreshTokenGrant(server.token_url, server.client_id)
    with pytest.raises(TypeError, match="TokenStore"):
        RefreshAdapter(store={}, refresher=grant)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leeway"):
        RefreshAdapter(store=MemoryTokenStore(), refresher=grant, leeway=-1)
    with pytest.raises(TypeError, match="callable"):
        RefreshAdapter(store=MemoryTokenStore(), refresher="grant")  # type: ignore[arg-type]
    grant.close()


def test_closing_the_session_closes_the_grants_session(server: AuthorizationServer) -> None:
    """session.close() reaches the adapter, which closes its refresher."""
    grant = RefreshTokenGrant(server.token_url, server.client_id)
    closed: list[bool] = []
    original = grant.close

    def close() -> None:
        closed.append(True)
        original()

    grant.close = close  # type: ignore[method-assign]
    adapter = RefreshAdapter(store=MemoryTokenStore(server.login()), refresher=grant)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
    assert closed == [True]
