"""A 403 earned by a token that has since been replaced is replayed, without a refresh.

Some servers (django-oauth-toolkit's default views) answer a token they no longer know
with a bare 403, not 401: a request sent just before our own refresh deleted its token
must not come back to the caller as "forbidden".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, Token

from .servers import Reply, ScriptedServer, Seen

WAIT = 30  # seconds: the bound on every wait in this module
START = time.time()
OLD = Token("at-old", "rt-old", expires_at=START + 3600)
NEW = Token("at-new", "rt-new", expires_at=START + 7200)
SCOPE = 'Bearer error="insufficient_scope", scope="admin"'


class Api:
    """A server that knows only the newest token and refuses any other with 403."""

    def __init__(self, challenge: str | None = None) -> None:
        self.valid = OLD.authorization
        self.challenge = challenge
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.refreshes = 0

    def script(self, seen: Seen) -> Reply:
        if seen.path == "/forbidden":
            return Reply(403)
        if seen.path == "/slow" and seen.authorization == OLD.authorization:
            self.arrived.set()
            assert self.release.wait(WAIT)
        if seen.authorization != self.valid:
            headers = {"WWW-Authenticate": self.challenge} if self.challenge else {}
            return Reply(403, headers, b"Forbidden")
        return Reply(200, body=b"ok")

    def refresher(self, token: Token) -> Token:
        """Rotate, and forget the old access token, as the server side would."""
        self.refreshes += 1
        self.valid = NEW.authorization
        return NEW


@pytest.fixture
def clock() -> list[float]:
    return [START]


def serve(api: Api, clock: list[float]) -> tuple[ScriptedServer, RefreshAdapter]:
    adapter = RefreshAdapter(
        store=MemoryTokenStore(OLD), refresher=api.refresher, clock=lambda: clock[0]
    )
    return ScriptedServer(api.script), adapter


def race(api: Api, clock: list[float]) -> tuple[requests.Response, RefreshAdapter]:
    """A request sent with the old token is answered after a refresh replaced it."""
    server, adapter = serve(api, clock)
    slow: dict[str, requests.Response] = {}
    with server, requests.Session() as session:
        adapter.mount(session, server.url + "/")
        sender = threading.Thread(
            target=lambda: slow.update(r=session.get(server.url + "/slow", timeout=WAIT))
        )
        sender.start()
        assert api.arrived.wait(WAIT)  # the old token is in flight
        clock[0] = START + 3590  # due: the next request refreshes ahead of expiry
        assert session.get(server.url + "/fast", timeout=WAIT).status_code == 200
        assert api.refreshes == 1
        api.release.set()  # now the old token's 403 arrives
        sender.join(WAIT)
    assert not sender.is_alive()
    return slow["r"], adapter


def test_a_403_for_a_replaced_token_is_replayed_with_the_current_one(clock: list[float]) -> None:
    """The generation rule for 403: replayed once with the new token, no second refresh."""
    api = Api()
    response, adapter = race(api, clock)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [403]
    assert response.request.headers["Authorization"] == NEW.authorization
    assert api.refreshes == 1
    assert adapter.stats.replays == 1


def test_an_insufficient_scope_403_for_a_replaced_token_comes_back(clock: list[float]) -> None:
    """insufficient_scope is about rights, not the token's age: never replayed (RFC 6750)."""
    api = Api(challenge=SCOPE)
    response, adapter = race(api, clock)
    assert response.status_code == 403
    assert adapter.stats.replays == 0


@pytest.fixture
def forbidden(clock: list[float]) -> Iterator[tuple[ScriptedServer, RefreshAdapter, Api]]:
    api = Api()
    server, adapter = serve(api, clock)
    with server:
        yield server, adapter, api


def test_a_403_earned_by_the_current_token_comes_back_as_it_is(
    forbidden: tuple[ScriptedServer, RefreshAdapter, Api],
) -> None:
    """A real "forbidden" for the current token: no refresh, no replay, one request."""
    server, adapter, api = forbidden
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        response = session.get(server.url + "/forbidden", timeout=WAIT)
    assert response.status_code == 403
    assert api.refreshes == 0
    assert len(server.seen) == 1
    assert adapter.stats.replays == 0
