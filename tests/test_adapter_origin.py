"""The token goes only to the origins the user named, however the adapter is mounted."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest
import requests

from requests_refresh import MemoryTokenStore, NoOriginError, RefreshAdapter, Token

from .servers import Reply, ScriptedServer, Seen

WAIT = 10  # seconds: the timeout of every request in this module
TOKEN = Token("at-origin-LEAK", "rt-origin-LEAK", expires_at=time.time() + 3600)


def ok(seen: Seen) -> Reply:
    return Reply(200, body=b"ok")


@pytest.fixture
def api() -> Iterator[ScriptedServer]:
    """The API the user means: a server on 127.0.0.1."""
    with ScriptedServer(ok) as running:
        yield running


@pytest.fixture
def other() -> Iterator[ScriptedServer]:
    """Another host on the loopback network (127.0.0.10): it must never see the token."""
    with ScriptedServer(ok, host="127.0.0.10") as running:
        yield running


def adapter_for(**options: object) -> RefreshAdapter:
    return RefreshAdapter(store=MemoryTokenStore(TOKEN), refresher=lambda t: t, **options)  # type: ignore[arg-type]


def test_a_prefix_without_trailing_slash_does_not_send_the_token_to_a_longer_port(
    other: ScriptedServer,
) -> None:
    """session.mount('http://127.0.0.1:4100') also routes :41000; the token stays home."""
    near = f"http://127.0.0.10:{str(other.port)[:-1]}"  # a prefix of the other server's URL
    adapter = adapter_for(origin=near)
    with requests.Session() as session:
        session.mount(near, adapter)
        assert session.get_adapter(other.url + "/x") is adapter  # the mistake is routed to us
        with pytest.warns(UserWarning, match=r"adapter\.mount\(session"):
            response = session.get(other.url + "/x", timeout=WAIT)
    assert response.status_code == 200
    assert other.seen[0].authorization is None


def test_a_host_prefix_does_not_send_the_token_to_a_longer_host(
    api: ScriptedServer, other: ScriptedServer
) -> None:
    """Mounted on 'http://127.0.0.1' (no port, no slash): 127.0.0.10 gets no token."""
    adapter = adapter_for(origin=api.url)
    with requests.Session() as session:
        session.mount("http://127.0.0.1", adapter)
        with pytest.warns(UserWarning, match="without the token"):
            session.get(other.url + "/x", timeout=WAIT)
        session.get(api.url + "/x", timeout=WAIT)
    assert other.seen[0].authorization is None
    assert api.seen[0].authorization == TOKEN.authorization


def test_a_broad_mount_sends_the_token_only_to_the_named_origin_and_warns_once(
    api: ScriptedServer, other: ScriptedServer
) -> None:
    """session.mount('http://', adapter) with origin=: other hosts get no token, one warning."""
    adapter = adapter_for(origin=api.url)
    with requests.Session() as session:
        session.mount("http://", adapter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                session.get(other.url + "/x", timeout=WAIT)
                session.get(api.url + "/x", timeout=WAIT)
    assert [str(w.message)[:40] for w in caught] == [
        f"RefreshAdapter sent a request to {other.url}"[:40]
    ]
    assert "LEAK" not in str(caught[0].message)
    assert [seen.authorization for seen in other.seen] == [None] * 3
    assert [seen.authorization for seen in api.seen] == [TOKEN.authorization] * 3


def test_the_origin_is_compared_exactly_not_by_name_resolution(api: ScriptedServer) -> None:
    """'localhost' and '127.0.0.1' reach the same server but are different origins."""
    adapter = adapter_for(origin=api.url)
    with requests.Session() as session:
        session.mount("http://", adapter)
        with pytest.warns(UserWarning, match="without the token"):
            session.get(f"http://localhost:{api.port}/x", timeout=WAIT)
    assert api.seen[0].authorization is None


def test_several_origins_and_the_default_port(api: ScriptedServer) -> None:
    """origin= takes a list; ':80' and no port are the same origin for http."""
    adapter = adapter_for(origin=["https://api.example.com", api.url + "/"])
    assert adapter.origins == ("https://api.example.com", api.url)
    assert adapter_for(origin="HTTP://Example.com:80/").origins == ("http://example.com",)
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.get(api.url + "/x", timeout=WAIT)
    assert api.seen[0].authorization == TOKEN.authorization


def test_a_bare_session_mount_without_origin_is_a_loud_error(api: ScriptedServer) -> None:
    """No origin known: the request fails before anything is sent, saying how to mount."""
    adapter = adapter_for()
    with requests.Session() as session:
        session.mount("http://", adapter)
        for _ in range(2):
            with pytest.raises(NoOriginError, match=r"adapter\.mount\(session, .*origin=") as e:
                session.get(api.url + "/x", timeout=WAIT)
            assert "LEAK" not in str(e.value)
    assert api.seen == []


def test_adapter_mount_teaches_the_origin(api: ScriptedServer, other: ScriptedServer) -> None:
    """adapter.mount() is enough: the prefix's origin gets the token, nothing else does."""
    adapter = adapter_for()
    with requests.Session() as session:
        adapter.mount(session, api.url + "/")
        session.mount("http://", adapter)  # an extra, broad mount by mistake
        session.get(api.url + "/x", timeout=WAIT)
        with pytest.warns(UserWarning, match="without the token"):
            session.get(other.url + "/x", timeout=WAIT)
    assert adapter.origins == (api.url,)
    assert api.seen[0].authorization == TOKEN.authorization
    assert other.seen[0].authorization is None


def test_a_path_prefix_still_limits_the_token_to_that_path(api: ScriptedServer) -> None:
    """adapter.mount(session, '<origin>/v1/'): /v2/ on the same origin gets no token."""
    adapter = adapter_for()
    with requests.Session() as session:
        adapter.mount(session, api.url + "/v1/")
        session.mount("http://", adapter)
        session.get(api.url + "/v1/x", timeout=WAIT)
        with pytest.warns(UserWarning, match="without the token"):
            session.get(api.url + "/v2/x", timeout=WAIT)
    assert [seen.authorization for seen in api.seen] == [TOKEN.authorization, None]


@pytest.mark.parametrize(
    "origin",
    [
        "api.example.com",
        "ftp://api.example.com",
        "https://",
        "https://api.example.com/v1/",
        "https://api.example.com/?q=1",
        "https://user:pw@api.example.com",
        "https://api.example.com:99999",
    ],
)
def test_an_origin_that_is_not_one_is_refused_at_construction(origin: str) -> None:
    """origin= is scheme://host[:port] and nothing else; the message says what is wrong."""
    with pytest.raises(ValueError, match="origin"):
        adapter_for(origin=origin)


def test_an_international_host_is_mounted_as_requests_sends_it() -> None:
    """adapter.mount(session, 'http://bücher.example/'): the punycode host gets the token.

    Protects against: a mount that never matches (requests sends xn--bcher-kva.example),
    so that every request to the host the user named went out without a token.
    """
    proxy_seen: list[Seen] = []

    def proxy(seen: Seen) -> Reply:
        proxy_seen.append(seen)
        return Reply(200, body=b"ok")

    adapter = adapter_for(allow_insecure_http=True)
    with ScriptedServer(proxy) as forward, requests.Session() as session:
        session.trust_env = False
        adapter.mount(session, "http://bücher.example/")
        assert adapter.origins == ("http://xn--bcher-kva.example",)
        # A plain-http proxy sees the absolute URL and the headers as sent.
        session.get("http://bücher.example/x", proxies={"http": forward.url}, timeout=WAIT)
    assert proxy_seen[0].path == "http://xn--bcher-kva.example/x"
    assert proxy_seen[0].authorization == TOKEN.authorization


def test_an_international_origin_keyword_is_normalised() -> None:
    """origin='https://bücher.example' is stored in the form requests sends."""
    assert adapter_for(origin="https://BÜCHER.example").origins == (
        "https://xn--bcher-kva.example",
    )
