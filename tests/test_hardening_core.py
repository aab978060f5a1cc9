"""The coordinator under outside probing: rotated tokens, remembered errors, fork, clocks.

Each test pins a promise that a probe once broke: one refresh per generation, the login
survives, no token leaks, every wait is bounded. Real servers on 127.0.0.1, real threads,
real forked processes; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_refresh import (
    FileTokenStore,
    InvalidGrantError,
    InvalidTokenResponseError,
    LoginRequiredError,
    MemoryTokenStore,
    RedisTokenStore,
    RefreshAdapter,
    RefreshError,
    RefreshTokenGrant,
    Token,
    TokenEndpointUnavailableError,
    TokenStore,
    TokenStoreError,
)
from requests_refresh.coordinator import Coordinator
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession
from .servers import Reply, ScriptedServer, Seen

#: The longest any single wait in this module may take.
BOUND = 10.0


class Clock:
    """Real time plus an offset the test moves, forward or back."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def expired(token: Token, now: float | None = None, ago: float = 5.0) -> Token:
    """``token`` as if it had expired ``ago`` seconds before ``now``."""
    now = time.time() if now is None else now
    return dataclasses.replace(token, expires_at=now - ago, issued_at=now - ago - 60)


def get(session: requests.Session, url: str) -> requests.Response:
    return session.get(url, timeout=BOUND)


# -- 1. a rotated refresh token survives an unusable answer -------------------------------


class RotatingButUnusable:
    """A refresher whose first answer rotates the refresh token but is otherwise unusable.

    It refreshes for real at the server (which spends the presented refresh token), then
    reports the answer as unusable (as a grant does for ``expires_in: -1``), handing back
    the rotated refresh token on the error. Later calls refresh normally.
    """

    def __init__(self, server: AuthorizationServer) -> None:
        self.grant = RefreshTokenGrant(server.token_url, server.client_id)
        self.presented: list[str | None] = []
        self.rotated: Token | None = None

    def __call__(self, token: Token) -> Token:
        self.presented.append(token.refresh_token)
        new = self.grant(token)
        if self.rotated is None:
            self.rotated = new
            raise InvalidTokenResponseError(
                "the token response's expires_in is not positive", rotated_token=new
            )
        return new

    def close(self) -> None:
        self.grant.close()


def test_a_rotated_refresh_token_in_an_unusable_answer_is_saved_and_used_next(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """The refresh token rotated by a failed refresh is stored and presented next time.

    Protects against: discarding the new refresh token of an answer that is otherwise
    unusable, then presenting the spent one after the cool-off, which a server with
    reuse detection punishes by revoking the login.
    """
    clock = Clock()
    store = MemoryTokenStore(expired(server.login()))
    refresher = RotatingButUnusable(server)
    session, adapter = make_session(store=store, refresher=refresher, clock=clock)

    with pytest.raises(InvalidTokenResponseError) as caught:
        get(session, server.resource_url)
    assert refresher.rotated is not None
    stored = store.load()
    assert stored is not None
    assert stored.refresh_token == refresher.rotated.refresh_token
    assert caught.value.rotated_token is None, "the error must not carry the secret on"

    clock.advance(2.0)  # past the first cool-off (at most 1 s)
    assert get(session, server.resource_url).status_code == 200
    assert refresher.presented[1] == refresher.rotated.refresh_token
    assert server.stats.reuse_detected == 0
    assert not server.revoked
    assert adapter.stats.failures == 1
    assert adapter.stats.refreshes == 1


def test_after_a_rotated_failure_the_valid_access_token_stays_in_use(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A failed early refresh that rotated the refresh token keeps the valid access token.

    Protects against: dropping a still-valid access token (or installing the unusable
    one) because the answer that rotated the refresh token was unusable.
    """
    clock = Clock()
    login = server.login()
    store = MemoryTokenStore(login)
    refresher = RotatingButUnusable(server)
    seen: list[str | None] = []

    def answer(request: Seen) -> Reply:
        seen.append(request.authorization)
        return Reply()

    with ScriptedServer(answer) as api:
        session, adapter = make_session(store=store, refresher=refresher, clock=clock, leeway=30.0)
        adapter.mount(session, api.url + "/")
        clock.advance(45.0)  # 60 s tokens: due at 30 s, still valid
        assert get(session, api.url + "/a").status_code == 200
        assert seen == [f"Bearer {login.access_token}"]
        assert refresher.rotated is not None
        assert store.load() == refresher.rotated

        clock.advance(2.0)  # past the cool-off: the next refresh uses the rotated token
        assert get(session, api.url + "/b").status_code == 200
    assert refresher.presented == [login.refresh_token, refresher.rotated.refresh_token]
    assert seen[1] not in (seen[0], f"Bearer {refresher.rotated.access_token}")
    assert not server.revoked


# -- 2. remembered errors are raised as fresh copies ----------------------------------------


def dead_login_refresher(token: Token) -> Token:
    raise InvalidGrantError(
        "the refresh token was refused", error="invalid_grant", status_code=400
    )


def traceback_depth(error: BaseException) -> int:
    return len(traceback.extract_tb(error.__traceback__))


def test_a_dead_login_raises_a_fresh_error_each_time_with_flat_memory(
    server: AuthorizationServer,
) -> None:
    """10,000 requests after invalid_grant: fresh errors, flat tracebacks, flat memory.

    Protects against: raising the same exception object on every request, whose
    traceback grows by a few frames per raise and keeps every request body alive.
    """
    store = MemoryTokenStore(expired(server.login()))
    adapter = RefreshAdapter(store=store, refresher=dead_login_refresher)
    body = b"x" * 100_000
    errors: list[InvalidGrantError] = []
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")

        def fail_once() -> InvalidGrantError:
            with pytest.raises(InvalidGrantError) as caught:
                session.post(server.resource_url, data=body, timeout=BOUND)
            return caught.value

        errors.append(fail_once())
        errors.append(fail_once())
        depth = traceback_depth(errors[-1])
        for _ in range(10):
            fail_once()
        gc.collect()  # an error and its traceback's frames form a cycle
        baseline = sys.getallocatedblocks()
        for i in range(10_000):
            last = fail_once()
            if i % 500 == 0:
                assert traceback_depth(last) == depth, f"traceback grew by request {i}"
        gc.collect()
        grown = sys.getallocatedblocks() - baseline
    first, second = errors
    assert second is not first
    assert type(second) is type(first)
    assert second.__cause__ is first.__cause__ is not None
    assert vars(second) == vars(first)
    assert str(second) == str(first)
    assert traceback_depth(last) == depth
    assert grown < 1000, f"{grown} more memory blocks in use after 10,000 failed requests"
    assert server.stats.resource_requests == 0


def test_waiting_threads_each_get_their_own_copy_of_the_refreshers_error() -> None:
    """Threads that waited on a failed refresh get equal errors, not one shared object.

    Protects against: one exception object raised in many threads at once, its
    traceback rewritten by each of them.
    """
    entered, release = threading.Event(), threading.Event()

    def refresher(token: Token) -> Token:
        entered.set()
        assert release.wait(BOUND)
        raise TokenEndpointUnavailableError("down", status_code=503, retry_after=7.0)

    coordinator = Coordinator(
        MemoryTokenStore(expired(Token("at", "rt"))),
        refresher,
        leeway=30,
        refresh_timeout=BOUND,
        cooloff=1.0,
        max_cooloff=60.0,
    )
    outcomes: list[BaseException] = []

    def request() -> None:
        try:
            coordinator.acquire()
        except BaseException as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=request, daemon=True) for _ in range(4)]
    threads[0].start()
    assert entered.wait(BOUND)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + BOUND
    while coordinator.stats.waits < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert coordinator.stats.waits == 3, "the other threads did not wait on the refresh"
    release.set()
    for thread in threads:
        thread.join(timeout=BOUND)
    assert len(outcomes) == 4
    assert len({id(error) for error in outcomes}) == 4
    assert all(type(error) is TokenEndpointUnavailableError for error in outcomes)
    assert len({id(error.__cause__) for error in outcomes}) == 1
    assert all(getattr(error, "retry_after", None) == 7.0 for error in outcomes)


@pytest.mark.parametrize("when", ["at start", "after invalid_grant"])
def test_threads_waiting_on_a_slow_store_read_give_up_at_refresh_timeout(when: str) -> None:
    """While one thread's store.load() hangs (Redis in an outage), the other threads wait
    for it at most refresh_timeout each, all at once, then share its outcome.

    Protects against: the store read under the coordinator's lock, which threads wait for
    without a timeout, one read after another: N threads x the store's own timeout.
    """
    entered, release = threading.Event(), threading.Event()
    loads: list[float] = []
    good = Token("at", "rt", expires_at=time.time() + 3600)

    class SlowStore(MemoryTokenStore):
        def load(self) -> Token | None:
            loads.append(time.monotonic())
            if hold.is_set():
                entered.set()
                assert release.wait(BOUND)
            return super().load()

    def refresher(token: Token) -> Token:
        raise InvalidGrantError("the login is gone", error="invalid_grant")

    hold = threading.Event()
    store = SlowStore(good if when == "at start" else expired(good))
    coordinator = Coordinator(
        store, refresher, leeway=30, refresh_timeout=0.5, cooloff=1.0, max_cooloff=60.0
    )
    if when == "after invalid_grant":
        with pytest.raises(InvalidGrantError):
            coordinator.acquire()
        store.save(good)  # a new login: the next read picks it up
    hold.set()
    outcomes: list[tuple[str, float]] = []

    def request() -> None:
        started = time.monotonic()
        try:
            token, _ = coordinator.acquire()
            outcome = "ok" if token == good else "stale token"
        except BaseException as exc:
            outcome = type(exc).__name__
        outcomes.append((outcome, time.monotonic() - started))

    reader = threading.Thread(target=request, daemon=True)
    reader.start()
    assert entered.wait(BOUND)
    loads_before = len(loads)
    waiters = [threading.Thread(target=request, daemon=True) for _ in range(4)]
    for thread in waiters:
        thread.start()
    for thread in waiters:
        thread.join(BOUND)
    assert [outcome for outcome, _ in outcomes] == ["RefreshTimeoutError"] * 4
    assert all(elapsed < 0.5 + 2.0 for _, elapsed in outcomes)
    assert len(loads) == loads_before, "a waiting thread read the store too"
    hold.clear()
    release.set()
    reader.join(BOUND)
    assert outcomes[-1][0] == "ok"
    assert [coordinator.acquire()[0] for _ in range(3)] == [good] * 3


# -- 3. fork ---------------------------------------------------------------------------


def fork_while_a_request_is_blocked(
    session: requests.Session, url: str, entered: threading.Event, release: threading.Event
) -> None:
    """A thread of the parent sends a request that blocks (``entered`` is set, then it
    waits on ``release``); meanwhile a forked child's request must succeed, and then the
    parent's too."""
    statuses: list[int] = []
    holder = threading.Thread(target=lambda: statuses.append(get(session, url).status_code))
    holder.start()
    try:
        assert entered.wait(BOUND)
        assert in_child(status_of(session, url)) == "200"
    finally:
        release.set()
        holder.join(timeout=BOUND)
    assert statuses == [200], "the parent was affected"


def in_child(work: Callable[[], str], bound: float = BOUND) -> str:
    """Run ``work`` in a forked child; return what it reported, or fail if it hung.

    The child writes ``work()``'s result (or the name of what it raised) to a pipe and
    leaves with ``os._exit``. The parent waits at most ``bound`` seconds, then kills the
    child by its PID.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        os.close(read_end)
        try:
            report = work()
        except BaseException as exc:
            report = f"raised {type(exc).__name__}"
        os.write(write_end, report.encode()[:512])
        os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], bound)
        report = os.read(read_end, 512).decode() if ready else "hung"
    finally:
        os.close(read_end)
        if report == "hung":
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert report != "hung", f"the forked child did not finish within {bound} s"
    assert os.waitstatus_to_exitcode(status) == 0
    return report


def status_of(session: requests.Session, url: str) -> Callable[[], str]:
    return lambda: str(session.get(url, timeout=BOUND).status_code)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_child_forked_while_a_thread_holds_the_coordinator_lock_works(
    server: AuthorizationServer,
) -> None:
    """A child forked while another thread holds the coordinator's lock sends requests.

    Protects against: the child inheriting a lock held by a thread that does not exist
    there, and blocking on it for ever.
    """
    parent = os.getpid()
    entered, release = threading.Event(), threading.Event()

    class SlowStore(MemoryTokenStore):
        def load(self) -> Token | None:
            if os.getpid() == parent and not release.is_set():
                entered.set()  # the coordinator's lock is held around this load
                assert release.wait(BOUND)
            return super().load()

    store = SlowStore(server.login())
    adapter = RefreshAdapter(
        store=store,
        refresher=RefreshTokenGrant(server.token_url, server.client_id),
        refresh_timeout=2.0,
    )
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        fork_while_a_request_is_blocked(session, server.resource_url, entered, release)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_child_forked_during_a_refresh_refreshes_for_itself(
    server: AuthorizationServer,
) -> None:
    """A child forked while a refresh is in flight is not left waiting on it.

    Protects against: the child seeing a refresh in flight that no thread of it will
    ever finish, and raising RefreshTimeoutError on every request for ever.
    """
    parent = os.getpid()
    entered, release = threading.Event(), threading.Event()
    grant = RefreshTokenGrant(server.token_url, server.client_id)
    second_login = server.login()  # what the parent's refresh ends with

    def refresher(token: Token) -> Token:
        if os.getpid() != parent:
            return grant(token)
        entered.set()
        assert release.wait(BOUND)
        return second_login

    adapter = RefreshAdapter(
        store=MemoryTokenStore(expired(server.login())),
        refresher=refresher,
        refresh_timeout=2.0,
    )
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        fork_while_a_request_is_blocked(session, server.resource_url, entered, release)
        assert adapter.stats.refreshes == 1
    assert not server.revoked


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
@pytest.mark.parametrize("kind", ["file", "redis"])
def test_a_child_forked_while_a_thread_holds_a_store_lock_works(
    server: AuthorizationServer, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A child forked while a thread holds a FileTokenStore's or RedisTokenStore's lock
    refreshes after it.

    Protects against: the child inheriting the store's thread lock held by a thread it
    does not have, and failing every refresh with a lock timeout.
    """
    store: TokenStore
    if kind == "file":
        store = FileTokenStore(tmp_path / "tokens.json", lock_timeout=3.0)
    else:
        redis_server = request.getfixturevalue("redis_server")
        store = RedisTokenStore(redis_server.url, f"fork-{os.getpid()}", lock_timeout=3.0)
        store.clear()
    store.save(expired(server.login()))
    adapter = RefreshAdapter(
        store=store, refresher=RefreshTokenGrant(server.token_url, server.client_id)
    )
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock():
            entered.set()
            assert release.wait(BOUND)

    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        holder = threading.Thread(target=hold)
        holder.start()
        # The parent's thread lets go of the file lock shortly after the fork: the child
        # waits for that (a wait between processes), not for its copy of the thread lock.
        timer = threading.Timer(0.3, release.set)
        try:
            assert entered.wait(BOUND)
            timer.start()
            assert in_child(status_of(session, server.resource_url)) == "200"
        finally:
            timer.cancel()
            release.set()
            holder.join(timeout=BOUND)
        assert get(session, server.resource_url).status_code == 200
    assert not server.revoked


def redis_store_and_watcher(
    request: pytest.FixtureRequest, name: str
) -> tuple[RedisTokenStore, Any, Any]:
    """A RedisTokenStore with a 60 s lease on its own client; that client; another one."""
    redis_py = pytest.importorskip("redis", reason="redis-py is not installed (the redis extra)")
    url = request.getfixturevalue("redis_server").url
    client = redis_py.Redis.from_url(url, socket_timeout=BOUND)
    watcher = redis_py.Redis.from_url(url, socket_timeout=BOUND)
    request.addfinalizer(client.close)
    request.addfinalizer(watcher.close)
    store = RedisTokenStore(client, f"{name}-{os.getpid()}", lock_timeout=3.0, lease=60.0)
    store.save(Token("at", "rt"))
    return store, client, watcher


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_child_forked_inside_a_redis_lock_neither_renews_nor_releases_the_parents_lease(
    request: pytest.FixtureRequest,
) -> None:
    """A child forked inside ``with store.lock()`` does not hold the parent's Redis lease:
    a load under it is refused, and leaving the block leaves the parent's lock in Redis.

    Protects against: two processes both believing they hold the lock, the child
    renewing the parent's lease, and the child deleting the parent's lock on its way out
    of the block, letting a third process refresh while the parent does.
    """
    store, _, watcher = redis_store_and_watcher(request, "fork-inside")
    held = contextlib.ExitStack()
    held.enter_context(store.lock())
    try:
        parents = watcher.get(store.lock_key)
        watcher.pexpire(store.lock_key, 20_000)  # a renewal would set it back to 60 s

        def load_then_leave_the_block() -> str:
            try:
                store.load()
                read = "read under the parent's lease"
            except TokenStoreError:
                read = "refused"
            held.close()
            return read

        assert in_child(load_then_leave_the_block) == "refused"
        assert watcher.get(store.lock_key) == parents, "the child released the parent's lock"
        assert 0 < watcher.pttl(store.lock_key) <= 20_000, "the child renewed the lease"
        assert store.load() == Token("at", "rt")  # the parent still holds it
    finally:
        held.close()
    assert watcher.get(store.lock_key) is None


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_thread_of_a_forked_child_is_not_taken_for_the_parents_redis_lock_holder(
    request: pytest.FixtureRequest,
) -> None:
    """A child's new thread, even one with the id of the parent's lock holder (glibc
    reuses it), reads the token without the lock and leaves the parent's lease alone;
    the child's commands go over connections of its own.

    Protects against: the child's thread renewing (or, after a lost lease, failing on)
    the parent's lease with the lock token it inherited, and redis-py sharing the
    parent's pooled connections with the child.
    """
    store, client, watcher = redis_store_and_watcher(request, "fork-thread")
    parents_connection = client.client_id()
    entered, release = threading.Event(), threading.Event()
    holder_ident: list[int] = []

    def hold() -> None:
        with store.lock():
            holder_ident.append(threading.get_ident())
            entered.set()
            assert release.wait(BOUND)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(BOUND)
        watcher.pexpire(store.lock_key, 20_000)  # a renewal would set it back to 60 s

        def load_in_a_new_thread() -> str:
            # Threads that stay alive until the end, until one gets the holder's id.
            outcome: list[str] = []
            leave = threading.Event()

            def load_if_holders_id(checked: threading.Event) -> None:
                if threading.get_ident() == holder_ident[0]:
                    outcome.append(str(store.load() == Token("at", "rt")))
                checked.set()
                leave.wait(BOUND)

            try:
                for _ in range(16):
                    checked = threading.Event()
                    threading.Thread(
                        target=load_if_holders_id, args=(checked,), daemon=True
                    ).start()
                    assert checked.wait(BOUND)
                    if outcome:
                        break
            finally:
                leave.set()
            own = client.client_id() != parents_connection
            return f"loaded {outcome[0] if outcome else 'in no thread'}, own connection {own}"

        report = in_child(load_in_a_new_thread)
        if "in no thread" in report:
            pytest.skip("no thread of the child got the holder's id from this C library")
        assert report == "loaded True, own connection True"
        assert 0 < watcher.pttl(store.lock_key) <= 20_000, "the child renewed the lease"
        assert client.client_id() == parents_connection
    finally:
        release.set()
        holder.join(timeout=BOUND)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_forked_child_sends_over_connections_of_its_own() -> None:
    """After a fork, the adapter's requests in the child open a new connection; the
    parent keeps its pooled one.

    Protects against: the child taking the parent's pooled keep-alive connection, the
    two processes then writing requests and reading answers on one socket.
    """

    class PortEcho(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent."""

        def do_GET(self) -> None:
            body = str(self.client_address[1]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PortEcho)
    httpd.daemon_threads = True
    serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    adapter = RefreshAdapter(
        store=MemoryTokenStore(Token("at", "rt", expires_at=time.time() + 3600)),
        refresher=lambda token: token,
    )
    try:
        with requests.Session() as session:
            adapter.mount(session, url)
            parents_port = get(session, url).text
            childs_port = in_child(lambda: get(session, url).text)
            assert childs_port != parents_port
            assert get(session, url).text == parents_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        serving.join(timeout=BOUND)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_a_forked_childs_refresh_opens_a_connection_of_its_own() -> None:
    """After a fork, the grant's token request in the child opens a new connection; the
    parent keeps its pooled one.

    Protects against: the child posting its refresh token over the parent's pooled
    keep-alive connection to the token endpoint, the two processes then mixing answers.
    """

    class TokenPortEcho(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silent."""

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.dumps(
                {"access_token": f"port-{self.client_address[1]}", "expires_in": 3600}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), TokenPortEcho)
    httpd.daemon_threads = True
    serving = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    grant = RefreshTokenGrant(f"http://127.0.0.1:{httpd.server_address[1]}/token", "client")
    token = Token("at", "rt")
    try:
        parents_port = grant(token).access_token
        childs_port = in_child(lambda: grant(token).access_token)
        assert childs_port.startswith("port-")
        assert childs_port != parents_port
        assert grant(token).access_token == parents_port
    finally:
        grant.close()
        httpd.shutdown()
        httpd.server_close()
        serving.join(timeout=BOUND)


# -- 4. durations on a monotonic clock ------------------------------------------------------


def test_a_wall_clock_stepped_back_does_not_prolong_a_cooloff(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """After a failed refresh the clock steps back an hour: the cool-off still ends.

    Protects against: cool-offs measured on the wall clock, so that NTP or a VM resume
    stepping it back keeps a healthy token endpoint uncalled for an hour.
    """
    clock = Clock()
    store = MemoryTokenStore(expired(server.login(), ago=7200.0))
    session, _ = make_session(store=store, clock=clock, cooloff=0.05, max_cooloff=0.1)
    server.fail_next(500)
    with pytest.raises(TokenEndpointUnavailableError):
        get(session, server.resource_url)
    clock.advance(-3600.0)

    deadline = time.monotonic() + 5.0
    status = None
    while status != 200 and time.monotonic() < deadline:
        try:
            status = get(session, server.resource_url).status_code
        except TokenEndpointUnavailableError:
            time.sleep(0.02)  # still cooling off: ask again until the deadline
    assert status == 200, "the cool-off did not end after the clock stepped back"
    assert server.stats.token_requests == 2


def already_due_coordinator(now: list[float], calls: list[Token], good: list[bool]) -> Coordinator:
    """A coordinator on a fake clock whose refresher's tokens are due on arrival.

    While ``good[0]`` is true the refresher issues an hour-long token instead.
    """

    def refresher(token: Token) -> Token:
        calls.append(token)
        if good[0]:
            return Token("at-good", "rt", expires_at=now[0] + 3600, issued_at=now[0])
        return Token(f"at-{len(calls)}", "rt", expires_at=now[0] + 5)  # leeway is 30

    return Coordinator(
        MemoryTokenStore(Token("at-0", "rt", expires_at=now[0] - 1)),
        refresher,
        leeway=30.0,
        refresh_timeout=BOUND,
        cooloff=1.0,
        max_cooloff=60.0,
        clock=lambda: now[0],
    )


def test_tokens_due_on_arrival_back_off_like_a_failure_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tokens that arrive already due are refreshed ever more rarely, with a useful warning.

    Protects against: refreshing about once a second for ever when every token the
    server issues is already due (a server clock minutes behind, absolute expiry times).
    """
    now = [1_000_000.0]
    calls: list[Token] = []
    coordinator = already_due_coordinator(now, calls, [False])
    with caplog.at_level(logging.WARNING, logger="requests_refresh"):
        for _ in range(600):  # ten minutes, a request a second
            coordinator.acquire()
            now[0] += 1.0
    # Doubling from 1 s to 60 s: about 6 attempts to reach the cap, then one a minute.
    assert len(calls) <= 30, f"{len(calls)} refreshes in ten minutes"
    assert len(calls) >= 8, "refreshes stopped altogether"
    warning = next(r.getMessage() for r in caplog.records if "already due" in r.getMessage())
    for hint in ("clock", "issued_at", "expires_in"):
        assert hint in warning


def test_a_usable_token_ends_the_already_due_streak() -> None:
    """Once a refresh brings a token that is not due, the next due one starts over at 1 s.

    Protects against: a past streak of bad tokens delaying refreshes for good.
    """
    now = [1_000_000.0]
    calls: list[Token] = []
    good = [False]
    coordinator = already_due_coordinator(now, calls, good)
    for _ in range(120):  # a streak: the hold has grown to tens of seconds
        coordinator.acquire()
        now[0] += 1.0
    good[0] = True
    now[0] += 120.0  # past any hold
    assert coordinator.acquire()[0].access_token == "at-good"
    good[0] = False
    now[0] += 3600 - 29  # the good token is due: its refresh brings a due one
    before = len(calls)
    coordinator.acquire()
    now[0] += 1.01  # a first hold is at most 1 s
    coordinator.acquire()
    assert len(calls) == before + 2


# -- 11. the on_refresh hook ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["same thread", "another thread"])
def test_an_on_refresh_hook_may_send_through_the_same_session(
    server: AuthorizationServer, where: str
) -> None:
    """A hook that sends a request through the session it serves gets an answer.

    Protects against: calling the hook while the refresh is still in flight (or a lock
    is held), so that its request waits on its own refresh until RefreshTimeoutError.
    """
    hook_statuses: list[object] = []
    session = requests.Session()

    def send() -> None:
        try:
            hook_statuses.append(get(session, server.resource_url).status_code)
        except requests.RequestException as exc:
            hook_statuses.append(type(exc).__name__)

    def on_refresh(old: Token, new: Token) -> None:
        if where == "same thread":
            send()
            return
        thread = threading.Thread(target=send)
        thread.start()
        thread.join(timeout=BOUND)

    adapter = RefreshAdapter(
        store=MemoryTokenStore(expired(server.login())),
        refresher=RefreshTokenGrant(server.token_url, server.client_id),
        on_refresh=on_refresh,
        refresh_timeout=2.0,
    )
    with session:
        adapter.mount(session, server.url + "/")
        started = time.monotonic()
        assert get(session, server.resource_url).status_code == 200
        assert time.monotonic() - started < 2.0
    assert hook_statuses == [200]
    assert adapter.stats.refreshes == 1


# -- 12. small mismatches ------------------------------------------------------------------


def test_a_memory_store_refuses_a_dict_at_construction() -> None:
    """MemoryTokenStore({...}) is refused at once, without echoing the dict.

    Protects against: a dict accepted and failing later with AttributeError deep inside
    a request.
    """
    with pytest.raises(TypeError, match=r"Token\.from_dict") as caught:
        MemoryTokenStore({"access_token": "secret-at"})  # type: ignore[arg-type]
    assert "secret-at" not in str(caught.value)


@pytest.mark.parametrize("field", ["expires_at", "issued_at"])
def test_a_time_in_milliseconds_is_refused_with_a_hint(field: str) -> None:
    """Token(expires_at=<milliseconds>) is refused and the message says to divide by 1000.

    Protects against: a token whose expiry lies in the year 50,000, so that it is never
    refreshed ahead of expiry and every request after its real expiry gets a 401.
    """
    milliseconds = time.time() * 1000
    with pytest.raises(ValueError, match="milliseconds") as caught:
        Token("at", "rt", **{field: milliseconds})  # type: ignore[arg-type]
    assert "1000" in str(caught.value)
    Token("at", "rt", **{field: time.time() + 10 * 365 * 24 * 3600})  # type: ignore[arg-type]


SECRET = "s3cr3t-refresh-token"


@pytest.fixture
def refusing_api() -> Iterator[ScriptedServer]:
    """A non-OAuth refresh endpoint that answers 401 to everything."""
    with ScriptedServer(lambda seen: Reply(401, body=b'{"message": "session ended"}')) as api:
        yield api


def test_a_custom_refreshers_failure_says_what_it_raised_and_how_to_report_a_dead_login(
    server: AuthorizationServer, make_session: MakeSession, refusing_api: ScriptedServer
) -> None:
    """A refresher's HTTPError is named with its status, never its URL, plus the advice.

    Protects against: a bare "the refresher raised HTTPError" that says neither what
    failed nor how a refresher makes LoginRequiredError reach its callers; and against a
    message quoting the URL, which may carry a secret in its query.
    """

    def refresher(token: Token) -> Token:
        answer = requests.post(f"{refusing_api.url}/auth?refresh={SECRET}", timeout=BOUND)
        answer.raise_for_status()
        raise AssertionError("unreachable")

    store = MemoryTokenStore(expired(server.login()))
    session, _ = make_session(store=store, refresher=refresher)
    with pytest.raises(RefreshError) as caught:
        get(session, server.resource_url)
    message = str(caught.value)
    assert "requests.exceptions.HTTPError" in message
    assert "401" in message
    assert "InvalidGrantError" in message
    assert SECRET not in message
    assert refusing_api.url not in message


@pytest.mark.parametrize(
    "error",
    [InvalidGrantError("the session ended"), LoginRequiredError("the session ended")],
    ids=["InvalidGrantError", "LoginRequiredError"],
)
def test_a_custom_refresher_reports_a_dead_login_with_invalid_grant(
    server: AuthorizationServer, make_session: MakeSession, error: LoginRequiredError
) -> None:
    """A custom refresher raising InvalidGrantError or LoginRequiredError ends the login.

    Protects against: a dead login reported by a custom refresher being retried after
    each cool-off like a transient failure instead of failing fast until a new login.
    """
    calls: list[Token] = []

    def refresher(token: Token) -> Token:
        calls.append(token)
        raise error

    clock = Clock()
    store = MemoryTokenStore(expired(server.login()))
    session, _ = make_session(store=store, refresher=refresher, clock=clock, cooloff=0.01)
    for _ in range(3):
        with pytest.raises(LoginRequiredError):
            get(session, server.resource_url)
        clock.advance(120.0)
    assert len(calls) == 1
    relogin = server.login()  # valid for a minute on the test's clock too
    store.save(dataclasses.replace(relogin, expires_at=clock() + 60, issued_at=clock()))
    assert get(session, server.resource_url).status_code == 200
    assert len(calls) == 1
