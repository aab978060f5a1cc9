"""discover(): RFC 8414 and OpenID Connect metadata, treated as hostile input."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from requests_refresh import (
    DiscoveryError,
    InsecureTransportError,
    ServerMetadata,
    device_login,
    discover,
)
from requests_refresh.testing import AuthorizationServer

from .servers import Reply, ScriptedServer, Seen, TrickledHead


def json_reply(document: object) -> Reply:
    return Reply(200, {"Content-Type": "application/json"}, json.dumps(document).encode())


def test_discovers_the_authorization_servers_endpoints(server: AuthorizationServer) -> None:
    """The metadata comes back as a frozen value with RFC 8414's field names."""
    metadata = discover(server.issuer)
    assert metadata.issuer == server.issuer
    assert metadata.token_endpoint == server.token_url
    assert metadata.authorization_endpoint == server.authorization_url
    assert metadata.device_authorization_endpoint == server.device_authorization_url
    assert metadata.revocation_endpoint == server.revocation_url
    assert metadata.code_challenge_methods_supported == ("S256",)
    assert metadata.introspection_endpoint is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        metadata.issuer = "x"  # type: ignore[misc]
    assert not hasattr(metadata, "__dict__")


def test_issuer_with_a_path_tries_rfc8414_insertion_then_openid_configuration() -> None:
    """For https://host/tenant the RFC 8414 path is tried first, then OIDC's appended path."""
    holder: dict[str, str] = {}

    def answer(seen: Seen) -> Reply:
        if seen.path == "/tenant/.well-known/openid-configuration":
            return json_reply({"issuer": holder["issuer"], "token_endpoint": "https://t/x"})
        return Reply(404)

    with ScriptedServer(answer) as scripted:
        holder["issuer"] = scripted.url + "/tenant"
        metadata = discover(holder["issuer"])
    assert [seen.path for seen in scripted.seen] == [
        "/.well-known/oauth-authorization-server/tenant",
        "/tenant/.well-known/openid-configuration",
    ]
    assert metadata.token_endpoint == "https://t/x"


def test_an_issuer_mismatch_is_refused() -> None:
    """A document naming another issuer is an error, and the next URL is not tried."""
    with (
        ScriptedServer(lambda seen: json_reply({"issuer": "https://evil.example"})) as scripted,
        pytest.raises(DiscoveryError, match="must match exactly") as caught,
    ):
        discover(scripted.url)
    assert "https://evil.example" in str(caught.value)
    assert len(scripted.seen) == 1


def test_a_trailing_slash_difference_is_pointed_out() -> None:
    """An issuer that differs only by a trailing '/' is refused with that hint."""
    holder: dict[str, str] = {}
    with ScriptedServer(lambda seen: json_reply({"issuer": holder["issuer"] + "/"})) as scripted:
        holder["issuer"] = scripted.url
        with pytest.raises(DiscoveryError, match="trailing '/'"):
            discover(scripted.url)


def test_a_missing_endpoint_is_named_when_a_flow_needs_it(server: AuthorizationServer) -> None:
    """No device_authorization_endpoint in the metadata: the error names it and the way out."""
    server.metadata_overrides = {"device_authorization_endpoint": None}
    with pytest.raises(DiscoveryError) as caught:
        device_login("test-client", issuer=server.issuer)
    message = str(caught.value)
    assert "device_authorization_endpoint" in message
    assert "device_authorization_url=" in message
    assert server.stats.device_authorizations == 0


def test_no_document_at_either_address_says_where_it_looked() -> None:
    """Two 404s: the error lists both URLs."""
    with (
        ScriptedServer(lambda seen: Reply(404)) as scripted,
        pytest.raises(DiscoveryError) as caught,
    ):
        discover(scripted.url)
    assert "oauth-authorization-server" in str(caught.value)
    assert "openid-configuration" in str(caught.value)


def test_a_huge_document_is_refused_without_reading_it_all() -> None:
    """A 1 MiB metadata document is refused (64 KiB at most)."""
    body = b'{"issuer": "' + b"x" * (1024 * 1024) + b'"}'
    with (
        ScriptedServer(lambda seen: Reply(200, {}, body)) as scripted,
        pytest.raises(DiscoveryError, match="too large"),
    ):
        discover(scripted.url)


def test_a_redirect_to_another_host_is_not_followed() -> None:
    """A redirect off the issuer's origin is refused; one within it is followed."""
    holder: dict[str, str] = {}

    def answer(seen: Seen) -> Reply:
        if seen.path == "/.well-known/oauth-authorization-server":
            return Reply(302, {"Location": "/moved"})
        if seen.path == "/moved":
            return Reply(302, {"Location": "http://localhost:1/elsewhere"})
        return Reply(404)

    with ScriptedServer(answer) as scripted:
        holder["issuer"] = scripted.url
        with pytest.raises(DiscoveryError, match="another origin"):
            discover(scripted.url)
    assert [seen.path for seen in scripted.seen] == [
        "/.well-known/oauth-authorization-server",
        "/moved",
    ]


def test_a_hostile_issuer_value_is_cut_short_in_the_message() -> None:
    """A 50,000-character issuer in the document does not flood the error message."""
    with (
        ScriptedServer(lambda seen: json_reply({"issuer": "y" * 50_000})) as scripted,
        pytest.raises(DiscoveryError) as caught,
    ):
        discover(scripted.url)
    assert len(str(caught.value)) < 600


def test_a_field_of_the_wrong_type_is_refused() -> None:
    """A token_endpoint that is not a URL string is an error naming the field."""
    holder: dict[str, str] = {}

    def answer(seen: Seen) -> Reply:
        return json_reply({"issuer": holder["issuer"], "token_endpoint": ["a", "b"]})

    with ScriptedServer(answer) as scripted:
        holder["issuer"] = scripted.url
        with pytest.raises(DiscoveryError, match="token_endpoint"):
            discover(scripted.url)


def test_a_slow_server_times_out_with_a_discovery_error() -> None:
    """A server that does not answer within timeout: DiscoveryError, promptly."""
    release = threading.Event()

    def answer(seen: Seen) -> Reply:
        release.wait(10)
        return Reply(404)

    with ScriptedServer(answer) as scripted:
        try:
            with pytest.raises(DiscoveryError, match="did not arrive"):
                discover(scripted.url, timeout=0.3)
        finally:
            release.set()


def test_a_trickled_document_is_bounded_by_the_timeout() -> None:
    """A document sent a byte at a time: DiscoveryError within the timeout, not when it ends.

    Protects against: a reader that checks the time only between large reads, which a
    server sending one byte just inside each read timeout stretches without end.
    """
    body = json.dumps({"issuer": "x" * 200}).encode()  # 10 s at this pace
    with ScriptedServer(lambda seen: Reply(200, {}, body, per_byte=0.05)) as scripted:
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match="did not arrive"):
            discover(scripted.url, timeout=0.5)
        assert time.monotonic() - started < 0.5 + 2.0


@pytest.mark.parametrize("part", ["headers", "status"])
def test_a_trickled_head_is_bounded_by_the_timeout(part: str) -> None:
    """A status line or headers sent a piece at a time: DiscoveryError within the timeout.

    Protects against: the timeout bounding each read only, so that a server sending a
    header line every 0.1 s holds discovery (and the login waiting on it) for ever.
    """
    with TrickledHead(part) as server:
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match="did not arrive within 1"):
            discover(server.url, timeout=1.0)
        assert time.monotonic() - started < 1.0 + 2.0
        assert server.arrived.is_set()


def test_deeply_nested_metadata_is_refused() -> None:
    """A document nesting arrays 100 deep is refused, as a token response would be."""
    holder: dict[str, str] = {}

    def answer(seen: Seen) -> Reply:
        nested = "[" * 100 + "]" * 100
        text = '{"issuer": ' + json.dumps(holder["issuer"]) + ', "x": ' + nested + "}"
        return Reply(200, {"Content-Type": "application/json"}, text.encode())

    with ScriptedServer(answer) as scripted:
        holder["issuer"] = scripted.url
        with pytest.raises(DiscoveryError, match="nested"):
            discover(scripted.url)


def test_metadata_is_asked_for_uncompressed() -> None:
    """Accept-Encoding: identity, so that the size limit counts what the server sends."""
    with ScriptedServer(lambda seen: Reply(404)) as scripted, pytest.raises(DiscoveryError):
        discover(scripted.url)
    assert {seen.headers["accept-encoding"] for seen in scripted.seen} == {"identity"}


def test_plain_http_to_another_host_is_refused() -> None:
    """An http issuer that is not loopback is refused before anything is sent."""
    with pytest.raises(InsecureTransportError):
        discover("http://auth.example.com")


def test_require_names_the_missing_endpoint() -> None:
    """ServerMetadata.require() raises DiscoveryError naming the endpoint."""
    metadata = ServerMetadata(issuer="https://auth.example.com")
    with pytest.raises(DiscoveryError, match="revocation_endpoint"):
        metadata.require("revocation_endpoint")
