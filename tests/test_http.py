"""Plain http is refused for tokens except to loopback, also through the per-origin cache."""

from __future__ import annotations

import functools

import pytest
import requests

from requests_refresh import InsecureTransportError, MemoryTokenStore, RefreshAdapter, Token
from requests_refresh._http import require_safe_origin, require_safe_transport

check_transport = functools.partial(require_safe_transport, configure="RefreshAdapter")

REFUSED = [
    "http://example.com/x",
    "http://127.0.0.1.evil.test/",
    "http://10.0.0.1",
    "http://evil.test?@127.0.0.1/",
    "http://evil.test#@127.0.0.1/",
    "http://localhost.evil.test/",
]
ALLOWED = [
    "https://example.com/x",
    "http://localhost:1/",
    "http://api.localhost/",
    "http://[::1]:5/a",
    "http://127.0.0.2/",
]


@pytest.mark.parametrize("check", [check_transport, require_safe_origin])
@pytest.mark.parametrize("url", REFUSED)
def test_plain_http_to_a_remote_host_is_refused(check: object, url: str) -> None:
    """Hosts that only look like loopback are still remote: refused, twice in a row."""
    for _ in range(2):  # the second call goes through the cache
        with pytest.raises(InsecureTransportError, match="allow_insecure_http"):
            check(url)  # type: ignore[operator]


@pytest.mark.parametrize("check", [check_transport, require_safe_origin])
@pytest.mark.parametrize("url", ALLOWED)
def test_https_and_loopback_are_allowed(check: object, url: str) -> None:
    """https anywhere, and plain http to loopback names and addresses."""
    check(url)  # type: ignore[operator]


def test_the_adapter_refuses_before_anything_is_sent() -> None:
    """No token, no connection: the request fails with a message that says what to do."""
    adapter = RefreshAdapter(
        store=MemoryTokenStore(Token("t")),
        refresher=lambda t: t,
        origin="http://api.example.invalid",
    )
    with requests.Session() as session:
        session.mount("http://api.example.invalid/", adapter)
        with pytest.raises(InsecureTransportError, match="use https"):
            session.get("http://api.example.invalid/resource", timeout=5)
