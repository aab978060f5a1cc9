"""RefreshAdapter with what users already mount or set: urllib3 Retry, their own
Authorization, CacheControl and requests-cache (the real packages, a real server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_cache
from cachecontrol import CacheControl, CacheControlAdapter
from urllib3.util.retry import Retry

from requests_refresh import MemoryTokenStore, RefreshAdapter, Token

from .servers import Reply, ScriptedServer, Seen

WAIT = 10  # seconds: the timeout of every request in this module
START = time.time()
OLD = Token("at-old", "rt-old", expires_at=START + 3600)


class Api:
    """Knows one valid token at a time; ``/cached`` is cacheable for a minute; ``/flaky``
    fails once with 503. Its refresher rotates the token as an authorization server would."""

    def __init__(self) -> None:
        self.valid = OLD.authorization
        self.generation = 0
        self.flaky_failures = 1
        self._lock = threading.Lock()

    def script(self, seen: Seen) -> Reply:
        if seen.path == "/flaky":
            with self._lock:
                if self.flaky_failures:
                    self.flaky_failures -= 1
                    return Reply(503)
        if seen.authorization != self.valid:
            return Reply(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        headers = {"Cache-Control": "max-age=60"} if seen.path == "/cached" else {}
        return Reply(200, headers, seen.path.encode())

    def refresher(self, token: Token) -> Token:
        with self._lock:
            self.generation += 1
            new = Token(f"at-{self.generation}", f"rt-{self.generation}", expires_at=START + 7200)
            self.valid = new.authorization
            return new

    def expire(self) -> None:
        """The server stops accepting the current token (expiry on its clock)."""
        self.valid = "none"


@pytest.fixture
def api() -> Iterator[tuple[Api, ScriptedServer]]:
    state = Api()
    with ScriptedServer(state.script) as server:
        yield state, server


def paths_seen(server: ScriptedServer) -> list[str]:
    return [seen.path for seen in server.seen]


# -- urllib3 Retry --------------------------------------------------------------------------


@pytest.mark.parametrize("forcelist", [[401], [401, 500, 502, 503], (503, 401)])
def test_a_retry_policy_that_retries_401_is_refused(forcelist: list[int]) -> None:
    """Retry(status_forcelist=[401, ...]) would resend the refused token: refused up front.

    Protects against: urllib3 re-sending a stale token four times and never refreshing.
    """
    with pytest.raises(ValueError, match=r"401.*status_forcelist.*without a refresh"):
        RefreshAdapter(
            store=MemoryTokenStore(OLD),
            refresher=lambda token: token,
            max_retries=Retry(total=3, status_forcelist=forcelist),
        )


def test_retries_of_a_503_keep_working_with_the_current_token(
    api: tuple[Api, ScriptedServer],
) -> None:
    """A 503 is retried by urllib3, after a refresh, with the new token both times."""
    state, server = api
    clock = [START + 3590]  # the old token is due: the request refreshes first
    adapter = RefreshAdapter(
        store=MemoryTokenStore(OLD),
        refresher=state.refresher,
        clock=lambda: clock[0],
        max_retries=Retry(total=2, status_forcelist=[503], backoff_factor=0),
    )
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        response = session.get(server.url + "/flaky", timeout=WAIT)
    assert response.status_code == 200
    assert [seen.authorization for seen in server.seen] == ["Bearer at-1", "Bearer at-1"]


# -- the request's own Authorization ------------------------------------------------------------


@pytest.mark.parametrize("way", ["headers", "auth", "session.auth"])
def test_a_request_with_its_own_authorization_is_sent_as_it_is(
    api: tuple[Api, ScriptedServer], way: str
) -> None:
    """An explicit credential wins: no token added, no refresh on its 401, one warning.

    Protects against: session.auth, auth= or an Authorization header silently replaced
    by the bearer token (another identity than the caller asked for).
    """
    state, server = api
    adapter = RefreshAdapter(store=MemoryTokenStore(OLD), refresher=state.refresher)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        options: dict[str, Any] = {}
        if way == "headers":
            options["headers"] = {"Authorization": "Basic dXNlcjpwdw=="}
        elif way == "auth":
            options["auth"] = ("user", "pw")
        else:
            session.auth = ("user", "pw")
        with pytest.warns(UserWarning, match="its own Authorization"):
            session.get(server.url + "/x", timeout=WAIT, **options)
        # Once: a second warning would fail the test (the suite turns them into errors).
        response = session.get(server.url + "/x", timeout=WAIT, **options)
    assert response.status_code == 401  # the server knows only bearer tokens
    assert [seen.authorization for seen in server.seen] == ["Basic dXNlcjpwdw=="] * 2
    assert state.generation == 0  # that 401 was not about our token
    assert adapter.stats.replays == 0


# -- CacheControl ---------------------------------------------------------------------------


# CacheControl annotates send() differently from requests: mypy sees a conflict.
class CachingRefreshAdapter(CacheControlAdapter, RefreshAdapter):  # type: ignore[misc]
    """The README's recipe: the cache answers when it can, RefreshAdapter sends the rest."""


def test_cachecontrol_recipe_caches_and_refreshes(api: tuple[Api, ScriptedServer]) -> None:
    """CachingRefreshAdapter: a cached answer costs no request; a refusal still refreshes."""
    state, server = api
    adapter = CachingRefreshAdapter(store=MemoryTokenStore(OLD), refresher=state.refresher)
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        first = session.get(server.url + "/cached", timeout=WAIT)
        second = session.get(server.url + "/cached", timeout=WAIT)
        state.expire()
        refreshed = session.get(server.url + "/other", timeout=WAIT)
        third = session.get(server.url + "/cached", timeout=WAIT)
    assert [first.content, second.content, third.content] == [b"/cached"] * 3
    assert getattr(second, "from_cache", False)
    assert getattr(third, "from_cache", False)
    assert refreshed.status_code == 200
    assert [r.status_code for r in refreshed.history] == [401]
    assert state.generation == 1
    assert paths_seen(server) == ["/cached", "/other", "/other"]
    assert server.seen[-1].authorization == "Bearer at-1"


def test_cachecontrol_around_the_session_does_not_reach_the_adapter_origin(
    api: tuple[Api, ScriptedServer],
) -> None:
    """Why the recipe: CacheControl(session) mounts on 'http://', the adapter's more
    specific mount wins, and nothing is cached. Pinned so the README stays true."""
    state, server = api
    adapter = RefreshAdapter(store=MemoryTokenStore(OLD), refresher=state.refresher)
    with requests.Session() as plain:
        adapter.mount(plain, server.url + "/")
        session = CacheControl(plain)
        for _ in range(2):
            session.get(server.url + "/cached", timeout=WAIT)
    assert paths_seen(server) == ["/cached", "/cached"]


# -- requests-cache -------------------------------------------------------------------------


def test_requests_cache_session_caches_and_refreshes(api: tuple[Api, ScriptedServer]) -> None:
    """requests_cache.CachedSession caches above the adapter; refreshes work below it."""
    state, server = api
    adapter = RefreshAdapter(store=MemoryTokenStore(OLD), refresher=state.refresher)
    with requests_cache.CachedSession(backend="memory") as session:
        adapter.mount(session, server.url + "/")
        first = session.get(server.url + "/cached", timeout=WAIT)
        second = session.get(server.url + "/cached", timeout=WAIT)
        state.expire()
        refreshed = session.get(server.url + "/other", timeout=WAIT)
        third = session.get(server.url + "/cached", timeout=WAIT)
    assert [first.content, second.content, third.content] == [b"/cached"] * 3
    assert second.from_cache
    assert third.from_cache
    assert refreshed.status_code == 200
    assert state.generation == 1
    assert paths_seen(server) == ["/cached", "/other", "/other"]
