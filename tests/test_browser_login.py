"""browser_login (RFC 8252, PKCE) driven headlessly: open_browser follows the URL with requests."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
import urllib.parse

import pytest
import requests

from requests_refresh import (
    AuthorizationDeniedError,
    InvalidGrantError,
    LoginError,
    LoginTimeoutError,
    TokenEndpointUnavailableError,
    browser_login,
)
from requests_refresh.testing import AuthorizationServer

from .servers import TrickledHead


class Browser:
    """An open_browser that follows the URL with requests and keeps the pages it saw.

    browser_login runs it in a thread of its own and may return as soon as the listener
    has answered, before the answer has reached this "browser": :attr:`first_page` waits
    for it (at most 10 s).
    """

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.pages: list[requests.Response] = []
        self._loaded = threading.Event()

    def __call__(self, url: str) -> None:
        self.urls.append(url)
        self.pages.append(requests.get(url, timeout=10))
        self._loaded.set()

    @property
    def first_page(self) -> requests.Response:
        assert self._loaded.wait(10), "the browser never finished loading the page"
        return self.pages[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.urls[0]).query))


def test_success_returns_a_token_and_tells_the_user_to_go_back(
    server: AuthorizationServer,
) -> None:
    """The browser brings a code back; it is exchanged; the page says return to the terminal."""
    browser = Browser()
    token = browser_login(server.client_id, issuer=server.issuer, open_browser=browser)
    assert token.refresh_token is not None
    page = browser.first_page
    assert page.status_code == 200
    assert "return to the terminal" in page.text
    assert page.url.startswith("http://127.0.0.1:")
    assert urllib.parse.urlsplit(page.url).path == "/callback"
    assert server.stats.code_exchanges == 1
    query = browser.query
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"].startswith("http://127.0.0.1:")
    assert len(query["state"]) >= 32


def test_extra_params_and_scope_go_into_the_authorization_request(
    server: AuthorizationServer,
) -> None:
    """prompt/access_type/audience reach the authorization endpoint as given."""
    browser = Browser()
    browser_login(
        server.client_id,
        authorization_url=server.authorization_url,
        token_url=server.token_url,
        scope="read offline_access",
        extra_params={"prompt": "consent", "access_type": "offline", "audience": "api"},
        open_browser=browser,
        redirect_path="/done",
    )
    query = browser.query
    assert query["prompt"] == "consent"
    assert query["access_type"] == "offline"
    assert query["audience"] == "api"
    assert query["scope"] == "read offline_access"
    assert query["redirect_uri"].endswith("/done")


@pytest.mark.parametrize("state", ["wrong-state", None])
def test_a_wrong_or_missing_state_is_ignored_and_its_code_never_exchanged(
    server: AuthorizationServer, state: str | None
) -> None:
    """A forged redirect gets an error page; the listener goes on to the real answer."""
    forged: list[requests.Response] = []
    browser = Browser()

    def attacker_then_user(url: str) -> None:
        redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))[
            "redirect_uri"
        ]
        params = {"code": "ac-forged-code"}
        if state is not None:
            params["state"] = state
        forged.append(requests.get(redirect_uri, params=params, timeout=10))
        browser(url)

    token = browser_login(server.client_id, issuer=server.issuer, open_browser=attacker_then_user)
    assert token.access_token
    assert forged[0].status_code == 400
    assert "does not belong" in forged[0].text
    assert "return to the terminal" in forged[0].text.lower()
    assert all(form.get("code") != "ac-forged-code" for form in server.token_params)
    assert server.stats.code_exchanges == 1


def test_the_user_denies(server: AuthorizationServer) -> None:
    """error=access_denied is AuthorizationDeniedError; the page says why, and to go back."""
    server.consent = "deny"
    browser = Browser()
    with pytest.raises(AuthorizationDeniedError, match="run the login again") as caught:
        browser_login(server.client_id, issuer=server.issuer, open_browser=browser)
    assert caught.value.error == "access_denied"
    assert "access_denied" in browser.first_page.text
    assert "Return to the terminal" in browser.first_page.text
    assert server.stats.token_requests == 0


def test_timeout_when_the_browser_never_comes_back(server: AuthorizationServer) -> None:
    """An open_browser that does nothing: LoginTimeoutError after timeout, port closed."""
    urls: list[str] = []
    with pytest.raises(LoginTimeoutError, match=r"did not come back within 0\.3 s"):
        browser_login(
            server.client_id, issuer=server.issuer, open_browser=urls.append, timeout=0.3
        )
    redirect_uri = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(urls[0]).query))[
        "redirect_uri"
    ]
    with pytest.raises(requests.ConnectionError):
        requests.get(redirect_uri, timeout=5)


def test_the_server_checks_the_pkce_verifier(server: AuthorizationServer) -> None:
    """A code issued for another code_challenge is refused at the token endpoint."""

    def tampering_browser(url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        digest = hashlib.sha256(b"the attacker's verifier").digest()
        query["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        requests.get(parts._replace(query=urllib.parse.urlencode(query)).geturl(), timeout=10)

    with pytest.raises(InvalidGrantError):
        browser_login(server.client_id, issuer=server.issuer, open_browser=tampering_browser)
    assert server.stats.pkce_failures == 1
    assert server.stats.code_exchanges == 0


def test_the_server_refuses_a_request_without_pkce(server: AuthorizationServer) -> None:
    """The test server's authorization endpoint insists on PKCE S256 (invalid_request)."""
    redirect = "http://127.0.0.1:9/callback"
    answer = requests.get(
        server.authorization_url,
        params={
            "response_type": "code",
            "client_id": server.client_id,
            "redirect_uri": redirect,
            "state": "s",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303
    back = urllib.parse.urlsplit(answer.headers["Location"])
    location = dict(urllib.parse.parse_qsl(back.query))
    assert location["error"] == "invalid_request"
    assert location["state"] == "s"


def test_the_consent_page_is_a_form_a_browser_submits(server: AuthorizationServer) -> None:
    """consent="page" shows Allow/Deny forms; posting Allow redirects back with a code."""
    server.consent = "page"

    def clicking_browser(url: str) -> None:
        page = requests.get(url, timeout=10)
        assert "<form method='post' action='/authorize' id='approve'>" in page.text
        fields = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        fields["decision"] = "approve"
        requests.post(server.authorization_url, data=fields, timeout=10)

    token = browser_login(server.client_id, issuer=server.issuer, open_browser=clicking_browser)
    assert token.access_token
    assert server.stats.code_exchanges == 1


def test_an_open_browser_that_raises_ends_the_login(server: AuthorizationServer) -> None:
    """open_browser raising is a LoginError with the cause chained, not a hang."""

    def broken(url: str) -> None:
        raise OSError("no such browser")

    with pytest.raises(LoginError, match="open_browser raised OSError") as caught:
        browser_login(server.client_id, issuer=server.issuer, open_browser=broken, timeout=30)
    assert isinstance(caught.value.__cause__, OSError)


def test_extra_params_may_not_set_what_the_flow_sets(server: AuthorizationServer) -> None:
    """state or redirect_uri in extra_params is a ValueError naming it; no browser opens."""
    opened: list[str] = []
    with pytest.raises(ValueError, match=r"\['redirect_uri', 'state'\]"):
        browser_login(
            server.client_id,
            issuer=server.issuer,
            open_browser=opened.append,
            extra_params={"state": "fixed", "redirect_uri": "https://evil.example/"},
        )
    assert opened == []


def test_a_trickled_token_endpoint_head_is_bounded_by_http_timeout(
    server: AuthorizationServer,
) -> None:
    """The code's exchange at a token endpoint sending headers a line at a time ends in time.

    Protects against: the timeout bounding each read only, so that a server sending a
    header line every 0.1 s holds the login for ever after the browser came back.
    """
    browser = Browser()
    with TrickledHead() as trickler:
        started = time.monotonic()
        with pytest.raises(TokenEndpointUnavailableError, match="exceeded the timeout of 1 s"):
            browser_login(
                server.client_id,
                authorization_url=server.authorization_url,
                token_url=trickler.url + "/token",
                open_browser=browser,
                http_timeout=1.0,
                timeout=30,
            )
        assert time.monotonic() - started < 1.0 + 5.0
        assert trickler.arrived.is_set()
    assert browser.first_page.status_code == 200


def test_a_port_in_use_is_a_login_error_that_says_to_pass_port_0(
    server: AuthorizationServer,
) -> None:
    """port= taken by another listener: LoginError naming the port and port=0; nothing leaks.

    Protects against: a raw OSError (Address already in use) that says nothing of what
    to do, and a login that leaves its session or listening socket open behind it.
    """
    opened: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        descriptors = len(os.listdir("/proc/self/fd"))
        with pytest.raises(LoginError, match=rf"127\.0\.0\.1:{port} is in use.*port=0") as caught:
            browser_login(
                server.client_id,
                authorization_url=server.authorization_url,
                token_url=server.token_url,
                open_browser=opened.append,
                port=port,
            )
        assert len(os.listdir("/proc/self/fd")) == descriptors
    assert isinstance(caught.value.__cause__, OSError)
    assert opened == []
    assert server.stats.token_requests == 0
