"""The token endpoint exchange against hostile and broken servers (issue 10, grant side).

A rotated refresh token in an unusable answer is handed back; token contents that cannot
go into a header are refused; server text is redacted and bounded; the grant's timeout
bounds the whole exchange; a TLS verification failure is a configuration error. Every
server is real, on 127.0.0.1.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import ssl
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_refresh import (
    FileTokenStore,
    InvalidTokenResponseError,
    MemoryTokenStore,
    RefreshAdapter,
    RefreshError,
    RefreshTokenGrant,
    Token,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    TokenStoreError,
)

from .servers import TrickledHead, write_self_signed_certificate

OLD = Token("at-OLD-access", "rt-OLD-refresh", expires_at=time.time() + 3600, scope="read")
#: How much longer than the grant's timeout a whole exchange may take.
SLACK = 2.0


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the endpoint sends: ``per_byte`` seconds between body bytes (a trickle);
    ``length=False`` sends no Content-Length and closes the connection at the end."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"Content-Type": "application/json"}
    )
    per_byte: float | None = None
    length: bool = True


def json_answer(payload: object, status: int = 200) -> Answer:
    return Answer(status, json.dumps(payload).encode())


@dataclasses.dataclass(frozen=True)
class Received:
    """A request the endpoint received."""

    headers: dict[str, str]  # names lower-cased
    body: bytes


class Endpoint:
    """A token endpoint on 127.0.0.1 answering each request with ``answer(received)``."""

    def __init__(
        self, answer: Callable[[Received], Answer], tls: ssl.SSLContext | None = None
    ) -> None:
        self.received: list[Received] = []
        self.arrived = threading.Event()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length),
                )
                outer.received.append(received)
                outer.arrived.set()
                reply = answer(received)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.length:
                    self.send_header("Content-Length", str(len(reply.body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    if reply.per_byte is None:
                        self.wfile.write(reply.body)
                        return
                    for index in range(len(reply.body)):
                        if outer.stopping.wait(reply.per_byte):
                            return
                        self.wfile.write(reply.body[index : index + 1])
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up: that is the point

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._httpd.server_address[1]}/token"

    def __enter__(self) -> Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Endpoint]]:
    """``serve(answer, tls=None)``: a running :class:`Endpoint`, stopped at teardown."""
    running: list[Endpoint] = []

    def start(answer: Callable[[Received], Answer], tls: ssl.SSLContext | None = None) -> Endpoint:
        endpoint = Endpoint(answer, tls).__enter__()
        running.append(endpoint)
        return endpoint

    yield start
    for endpoint in running:
        endpoint.__exit__(None, None, None)


def refresh_with(endpoint: Endpoint, token: Token = OLD, **options: Any) -> Token:
    with RefreshTokenGrant(endpoint.url, "app", **options) as grant:
        return grant(token)


# -- item 1: a rotated refresh token in an unusable answer --------------------------------

USABLE = {"access_token": "at-NEW", "token_type": "Bearer", "expires_in": 600}
UNUSABLE = {
    "expires_in negative": {"expires_in": -1},
    "scope not a string": {"scope": 5},
    "empty access_token": {"access_token": ""},
    "access_token with CRLF": {"access_token": "at\r\nX-Injected: 1"},
    "access_token not latin-1": {"access_token": "at-\u20ac"},
    "token_type with LF": {"token_type": "Bearer\nX-Injected: 1"},
    "token_type DPoP": {"token_type": "DPoP"},
}


@pytest.mark.parametrize("change", UNUSABLE.values(), ids=list(UNUSABLE))
def test_a_rotated_refresh_token_in_an_unusable_answer_is_handed_back(
    serve: Callable[..., Endpoint], change: dict[str, Any]
) -> None:
    """200 with a new refresh token but an unusable rest: the error carries it to store.

    Protects against: the new refresh token being thrown away with the error, so that
    the next attempt presents the spent one and reuse detection revokes the login.
    """
    endpoint = serve(
        lambda _: json_answer({**USABLE, "refresh_token": "rt-NEW-rotated", **change})
    )
    with pytest.raises(InvalidTokenResponseError) as caught:
        refresh_with(endpoint)
    rotated = caught.value.rotated_token
    assert rotated is not None
    assert rotated.refresh_token == "rt-NEW-rotated"
    assert (rotated.access_token, rotated.expires_at, rotated.scope) == (
        OLD.access_token,
        OLD.expires_at,
        OLD.scope,
    )
    assert "rt-NEW-rotated" not in str(caught.value)
    assert "rt-NEW-rotated" not in repr(caught.value)
    assert "kept" in str(caught.value)


@pytest.mark.parametrize("refresh_token", [None, "", 5, ["rt"]])
def test_no_rotated_token_without_a_usable_refresh_token(
    serve: Callable[..., Endpoint], refresh_token: object
) -> None:
    """An unusable answer without a usable refresh token carries no token to store."""
    payload: dict[str, Any] = {**USABLE, "expires_in": -1}
    if refresh_token is not None:
        payload["refresh_token"] = refresh_token
    endpoint = serve(lambda _: json_answer(payload))
    with pytest.raises(InvalidTokenResponseError) as caught:
        refresh_with(endpoint)
    assert caught.value.rotated_token is None


@pytest.mark.parametrize("error", [None, "", 0, False, [], {}])
def test_a_success_with_an_empty_error_field_is_a_token(
    serve: Callable[..., Endpoint], error: object
) -> None:
    """200 with a token and ``"error": null`` (or another empty or non-string error) is a token.

    Protects against: such an answer being taken for an error, so that the new refresh
    token it carries is thrown away and the next refresh presents the spent one.
    """
    payload = {**USABLE, "refresh_token": "rt-NEW-rotated", "error": error}
    endpoint = serve(lambda _: json_answer(payload))
    token = refresh_with(endpoint)
    assert (token.access_token, token.refresh_token) == ("at-NEW", "rt-NEW-rotated")
    assert "error" not in token.extra


@pytest.mark.parametrize("error", [True, ["invalid_grant"], {"code": "invalid_grant"}])
def test_an_error_field_that_is_not_a_string_is_an_invalid_response(
    serve: Callable[..., Endpoint], error: object
) -> None:
    """``"error": true`` (or a list, an object) is no token: on a 200 its new refresh token
    is handed back to be stored; on a 400 the message says the error is not a string.

    Protects against: a token installed from an answer that says it is an error, and a
    400 with such an error reported as having no OAuth error at all.
    """
    payload = {**USABLE, "refresh_token": "rt-NEW-rotated", "error": error}
    endpoint = serve(lambda _: json_answer(payload))
    with pytest.raises(
        InvalidTokenResponseError, match="error field that is not a string"
    ) as caught:
        refresh_with(endpoint)
    assert caught.value.rotated_token is not None
    assert caught.value.rotated_token.refresh_token == "rt-NEW-rotated"
    refused = serve(lambda _: json_answer({"error": error}, status=400))
    with pytest.raises(InvalidTokenResponseError, match="an error that is not a string"):
        refresh_with(refused)


def test_an_unusable_success_with_a_null_error_hands_back_the_rotated_token(
    serve: Callable[..., Endpoint],
) -> None:
    """200 with ``"error": null``, a new refresh token and ``expires_in: -1``: it is kept."""
    payload = {**USABLE, "refresh_token": "rt-NEW-rotated", "expires_in": -1, "error": None}
    endpoint = serve(lambda _: json_answer(payload))
    with pytest.raises(InvalidTokenResponseError) as caught:
        refresh_with(endpoint)
    assert caught.value.rotated_token is not None
    assert caught.value.rotated_token.refresh_token == "rt-NEW-rotated"


NEW_ACCESS = "at-NEW-live-access/+token"
NEW_REFRESH = "rt-NEW-live-refresh/+token"
NEW_SECRETS = {
    "expires_in negative": (200, {"expires_in": -1}),
    "token_type DPoP": (200, {"token_type": "DPoP", "id_token": "eyJ-NEW-live-id-token"}),
    "an error besides": (200, {"error": "invalid_request", "device_code": "dc-NEW-live"}),
    "error status": (400, {"error": "invalid_scope"}),
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, f"access_token={NEW_ACCESS}&refresh_token={NEW_REFRESH}".encode()),
        (400, ("[" * 40 + json.dumps({"refresh_token": NEW_REFRESH}) + "]" * 40).encode()),
        (
            200,
            json.dumps(
                {"access_token": NEW_ACCESS, "jwt": NEW_REFRESH, "expires_in": -1}
            ).encode(),
        ),
    ],
    ids=["form-encoded error", "error nested too deep", "a jwt field"],
)
def test_an_answer_whose_secrets_cannot_be_told_apart_is_attached_without_them(
    serve: Callable[..., Endpoint], status: int, body: bytes
) -> None:
    """An answer that is not a JSON object, or names a secret field oddly, shows no secret.

    Protects against: a form-encoded or too-deeply-nested error answer (or a ``jwt``
    field) kept whole in ``exc.response``, with the new tokens it carried.
    """
    endpoint = serve(lambda _: Answer(status, body))
    with pytest.raises(RefreshError) as caught:
        refresh_with(endpoint)
    assert caught.value.response is not None
    shown = caught.value.response.text + str(caught.value) + repr(caught.value)
    assert NEW_ACCESS not in shown
    assert NEW_REFRESH not in shown


@pytest.mark.parametrize(("status", "change"), NEW_SECRETS.values(), ids=list(NEW_SECRETS))
def test_an_error_for_an_answer_with_new_tokens_shows_none_of_them(
    serve: Callable[..., Endpoint], status: int, change: dict[str, Any]
) -> None:
    """An answer carrying new tokens but raising: its tokens are in no text of the error.

    Protects against: ``exc.response.text`` holding the live new access and refresh
    tokens (only the secrets the request carried were masked), for a log line that
    prints the response of any failed refresh.
    """
    payload = {**USABLE, "access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, **change}
    secrets = [NEW_ACCESS, NEW_REFRESH, *(str(v) for v in change.values() if "NEW" in str(v))]
    body = json.dumps(payload).replace("/", "\\/").encode()  # as PHP encodes it
    endpoint = serve(lambda _: Answer(status, body))
    with pytest.raises(RefreshError) as caught:
        refresh_with(endpoint)
    exc = caught.value
    assert exc.response is not None
    texts = {
        "str": str(exc),
        "repr": repr(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "response.text": exc.response.text,
        "response.content": exc.response.content.decode("latin-1"),
    }
    for what, text in texts.items():
        for secret in secrets:
            for form in (secret, secret.replace("/", "\\/")):
                assert form not in text, f"a new token in {what}"
    if isinstance(exc, InvalidTokenResponseError) and exc.rotated_token is not None:
        assert exc.rotated_token.refresh_token == NEW_REFRESH  # still handed back to store
    assert json.loads(exc.response.content)["expires_in"] == payload["expires_in"]


def test_a_success_that_is_not_json_is_attached_without_its_body(
    serve: Callable[..., Endpoint],
) -> None:
    """A form-encoded 200 (what GitHub sends without Accept): the error has no body.

    Protects against: a body whose tokens cannot be found reaching ``exc.response``.
    """
    body = urllib.parse.urlencode({"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    endpoint = serve(lambda _: Answer(200, body.encode(), headers))
    with pytest.raises(InvalidTokenResponseError, match="not JSON") as caught:
        refresh_with(endpoint)
    assert caught.value.response is not None
    assert caught.value.response.content == b""
    assert NEW_ACCESS not in repr(caught.value.response.__dict__)


# -- item 5: token contents that cannot go into a header; token types ---------------------

UNSAFE = ["at\r\nX-Injected: 1", "at\nx", "at\x00x", "at\x7fx", "at\tx", "at-\xe9", "at-\u20ac"]


@pytest.mark.parametrize("value", UNSAFE)
@pytest.mark.parametrize("field", ["access_token", "token_type"])
def test_a_token_that_cannot_go_into_a_header_is_refused_at_refresh(
    serve: Callable[..., Endpoint], value: str, field: str
) -> None:
    """An access_token or token_type with control or non-ASCII characters: refused, unquoted.

    Protects against: header injection, and every later request failing with a raw
    ValueError or UnicodeEncodeError whose message holds the token.
    """
    endpoint = serve(lambda _: json_answer({**USABLE, field: value}))
    with pytest.raises(InvalidTokenResponseError) as caught:
        refresh_with(endpoint)
    assert field in str(caught.value)
    assert value not in str(caught.value)
    assert caught.value.rotated_token is None  # no refresh token came with it


@pytest.mark.parametrize("value", UNSAFE)
@pytest.mark.parametrize("field", ["access_token", "token_type"])
def test_a_token_value_refuses_what_cannot_go_into_a_header(value: str, field: str) -> None:
    """Token(...) refuses header-unsafe access_token/token_type with ValueError, unquoted.

    Protects against: a custom refresher or a stored token injecting headers.
    """
    fields: dict[str, Any] = {"access_token": "at-fine", field: value}
    with pytest.raises(ValueError, match=field) as caught:
        Token(**fields)
    assert value not in str(caught.value)


def test_a_stored_token_that_cannot_go_into_a_header_is_a_store_error(tmp_path: Path) -> None:
    """A token file whose access token holds CRLF is a TokenStoreError, not a raw error."""
    path = tmp_path / "tokens.json"
    entry = {"access_token": "at\r\nX-Injected: 1"}
    path.write_text(json.dumps({"version": 1, "tokens": {"default": entry}}))
    path.chmod(0o600)
    with pytest.raises(TokenStoreError) as caught:
        FileTokenStore(path).load()
    assert "X-Injected" not in str(caught.value)


def test_header_safe_tokens_with_unusual_characters_are_accepted() -> None:
    """Printable ASCII (RFC 6749 appendix A.12 VSCHAR) stays accepted: no over-refusal."""
    token = Token("a.b_c-d~e+f/g=h!#$%&'()*,:;<>?@[]^`{|} z", token_type="Bearer")
    assert token.authorization.startswith("Bearer a.b_c")


@pytest.mark.parametrize("token_type", ["DPoP", "mac", "N_A", "pop"])
def test_a_token_type_other_than_bearer_is_refused_unless_allowed(
    serve: Callable[..., Endpoint], token_type: str
) -> None:
    """token_type other than Bearer: refused (RFC 6749 section 7.1), accepted when allowed.

    Protects against: sending a DPoP or MAC token as if it were a bearer token.
    """
    endpoint = serve(lambda _: json_answer({**USABLE, "token_type": token_type}))
    with pytest.raises(InvalidTokenResponseError, match=r"7\.1.*token_types") as caught:
        refresh_with(endpoint)
    assert caught.value.rotated_token is None
    token = refresh_with(endpoint, token_types=("Bearer", token_type.upper()))
    assert token.token_type == token_type
    assert token.authorization == f"{token_type} at-NEW"


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer"])
def test_bearer_is_accepted_in_any_case(serve: Callable[..., Endpoint], token_type: str) -> None:
    """Bearer is the default type and compared case-insensitively (RFC 6749 section 5.1)."""
    endpoint = serve(lambda _: json_answer({**USABLE, "token_type": token_type}))
    assert refresh_with(endpoint).token_type == "Bearer"


def test_token_types_must_be_usable_scheme_names() -> None:
    """token_types is checked at construction: no empty list, no header-unsafe names."""
    for bad in ((), ("Bearer\r\n",), ("",)):
        with pytest.raises(ValueError, match="token_types"):
            RefreshTokenGrant("http://127.0.0.1:9/token", "app", token_types=bad)


def test_a_header_unsafe_token_fails_the_request_with_a_library_error(
    serve: Callable[..., Endpoint],
) -> None:
    """Through the adapter: an injected token is an InvalidTokenResponseError per request."""
    endpoint = serve(lambda _: json_answer({**USABLE, "access_token": "at\r\nX-Injected: 1"}))
    expired = dataclasses.replace(OLD, expires_at=time.time() - 10)
    adapter = RefreshAdapter(
        store=MemoryTokenStore(expired), refresher=RefreshTokenGrant(endpoint.url, "app")
    )
    with requests.Session() as session:
        adapter.mount(session, endpoint.url.rsplit("/", 1)[0] + "/")
        with pytest.raises(InvalidTokenResponseError) as caught:
            session.get(endpoint.url.rsplit("/", 1)[0] + "/api", timeout=10)
    assert "X-Injected" not in str(caught.value)


# -- item 6: servers that echo secrets ----------------------------------------------------

CLIENT_ID = "app id/+"
SECRET = "cs SECRET/+=:\u00e9"
REFRESH = "rt OLD/+=:SECRET"
ACCESS = "at-OLD-SECRET"


def secret_forms() -> dict[str, str]:
    """Every form in which the request carried a secret."""
    forms: dict[str, str] = {}
    for name, value in (("secret", SECRET), ("refresh", REFRESH), ("access", ACCESS)):
        forms[f"{name} raw"] = value
        forms[f"{name} quote_plus"] = urllib.parse.quote_plus(value, safe="")
        forms[f"{name} quote"] = urllib.parse.quote(value, safe="")
        forms[f"{name} quote /"] = urllib.parse.quote(value)
    pair = (
        f"{urllib.parse.quote_plus(CLIENT_ID, safe='')}:{urllib.parse.quote_plus(SECRET, safe='')}"
    )
    forms["basic"] = base64.b64encode(pair.encode()).decode()
    forms["basic raw pair"] = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    forms["basic secret"] = base64.b64encode(SECRET.encode()).decode()
    forms["basic encoded secret"] = base64.b64encode(
        urllib.parse.quote_plus(SECRET, safe="").encode()
    ).decode()
    return forms


def echo(received: Received) -> str:
    """Everything the request carried, in every encoding, and a forged log line."""
    return (
        " | ".join(
            [
                received.body.decode(),
                received.headers.get("authorization", ""),
                *secret_forms().values(),
            ]
        )
        + "\r\nWARNING forged log line"
    )


def echoing(where: str, status: int = 400) -> Callable[[Received], Answer]:
    def answer(received: Received) -> Answer:
        text = echo(received)
        payload = {"error": "invalid_request", "error_description": "x"}
        if where == "error":
            payload = {"error": text}
        else:
            payload["error_description"] = text
        return json_answer(payload, status)

    return answer


def assert_clean(text: str, what: str) -> None:
    for form, value in secret_forms().items():
        assert value not in text, f"{what} holds the {form} form of a secret"


@pytest.mark.parametrize("where", ["error_description", "error"])
@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("status", [400, 503])
def test_an_echoing_token_endpoint_leaks_no_secret(
    serve: Callable[..., Endpoint], where: str, auth_method: str, status: int
) -> None:
    """Secrets echoed in error or error_description, in any encoding, never reach the error.

    Protects against: the refresh token, client secret or Basic credentials in exception
    messages, attributes, and the request attached to the error.
    """
    endpoint = serve(echoing(where, status))
    grant = RefreshTokenGrant(endpoint.url, CLIENT_ID, SECRET, auth_method=auth_method)  # type: ignore[arg-type]
    with grant, pytest.raises(TokenEndpointError) as caught:
        grant(Token(ACCESS, REFRESH))
    exc = caught.value
    for what, text in (
        ("str", str(exc)),
        ("repr", repr(exc)),
        ("error", exc.error or ""),
        ("error_description", exc.error_description or ""),
    ):
        assert_clean(text, what)
        assert "\n" not in text, f"{what} holds a line break"
        assert "\r" not in text, f"{what} holds a line break"
    assert "<redacted>" in str(exc)
    assert exc.response is not None
    request = exc.response.request
    assert request.body is None
    assert "Authorization" not in request.headers
    assert_clean(exc.response.text, "response.text")


def test_a_huge_error_code_makes_a_short_message(serve: Callable[..., Endpoint]) -> None:
    """A 500 KB error code (and description) is cut: the message and attributes stay short.

    Protects against: megabyte-long exception messages and log lines.
    """
    endpoint = serve(
        lambda _: json_answer({"error": "e" * 500_000, "error_description": "d" * 500_000})
    )
    with pytest.raises(TokenEndpointError) as caught:
        refresh_with(endpoint)
    assert len(str(caught.value)) < 1_000
    assert caught.value.error is not None
    assert len(caught.value.error) <= 100
    assert caught.value.error_description is not None
    assert len(caught.value.error_description) <= 400


def test_a_hostile_content_type_is_redacted_and_cut(serve: Callable[..., Endpoint]) -> None:
    """The Content-Type quoted for a body that is not JSON is redacted and bounded."""

    def answer(received: Received) -> Answer:
        form = dict(urllib.parse.parse_qsl(received.body.decode()))
        return Answer(
            200, b"<html>", {"Content-Type": "text/html; x=" + form["refresh_token"] + "y" * 5000}
        )

    endpoint = serve(answer)
    with pytest.raises(InvalidTokenResponseError) as caught:
        refresh_with(endpoint)
    assert OLD.refresh_token not in str(caught.value)  # type: ignore[operator]
    assert len(str(caught.value)) < 1_000


def test_an_echoing_token_endpoint_leaks_nothing_into_logs(
    serve: Callable[..., Endpoint], caplog: pytest.LogCaptureFixture
) -> None:
    """Through a real adapter and session, at DEBUG: no secret in any log record."""
    endpoint = serve(echoing("error_description", 503))
    origin = endpoint.url.rsplit("/", 1)[0]
    adapter = RefreshAdapter(
        store=MemoryTokenStore(Token(ACCESS, REFRESH, expires_at=time.time() - 10)),
        refresher=RefreshTokenGrant(endpoint.url, CLIENT_ID, SECRET),
    )
    caplog.set_level(logging.DEBUG)
    with requests.Session() as session:
        adapter.mount(session, origin + "/")
        for _ in range(2):  # the second request gets the remembered error
            with pytest.raises(TokenEndpointUnavailableError) as caught:
                session.get(origin + "/api", timeout=10)
            assert_clean(str(caught.value), "the error")
    assert "forged" in caplog.text  # the server's text did reach the log, redacted
    assert_clean(caplog.text, "the log")
    assert not [r for r in caplog.records if "\n" in r.getMessage()]


# -- item 7: the grant's timeout bounds the whole exchange; bounded bodies ----------------


def test_a_trickling_token_endpoint_fails_within_the_timeout(
    serve: Callable[..., Endpoint],
) -> None:
    """A body sent one byte at a time ends the refresh at the grant's timeout.

    Protects against: a per-read timeout letting a trickle hold the refresh for minutes.
    """
    body = json.dumps({**USABLE, "refresh_token": "rt-trickled"}).encode()
    endpoint = serve(lambda _: Answer(200, body, per_byte=0.2))
    started = time.monotonic()
    with pytest.raises(TokenEndpointUnavailableError, match=r"exceeded.*timeout of 1 s"):
        refresh_with(endpoint, timeout=1.0)
    assert time.monotonic() - started < 1.0 + SLACK


@pytest.mark.parametrize("part", ["headers", "status"])
@pytest.mark.parametrize("timeout", [1.0, (0.5, 0.5)], ids=["number", "connect-read"])
def test_a_token_endpoint_trickling_its_head_fails_within_the_timeout(
    part: str, timeout: float | tuple[float, float]
) -> None:
    """A status line or headers sent a piece at a time end the refresh at the timeout.

    Protects against: the timeout bounding each read only, so that a server sending a
    header line every 0.1 s holds the refresh (and every thread waiting on it) for ever.
    """
    with TrickledHead(part) as server:
        started = time.monotonic()
        grant = RefreshTokenGrant(server.url + "/token", "app", timeout=timeout)
        with grant, pytest.raises(TokenEndpointUnavailableError, match=r"exceeded.*of 1 s"):
            grant(OLD)
        assert time.monotonic() - started < 1.0 + SLACK
        assert server.arrived.is_set()


def test_a_proxy_trickling_its_connect_answer_fails_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through an http proxy, a CONNECT answer sent a line at a time ends at the timeout.

    Protects against: the deadline watching the connection only once connect() returns,
    while connect() itself reads the proxy's answer for as long as the proxy likes.
    """
    with TrickledHead("headers") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        started = time.monotonic()
        grant = RefreshTokenGrant("https://auth.example/token", "app", timeout=1.0)
        with grant, pytest.raises(TokenEndpointUnavailableError, match=r"exceeded.*of 1 s"):
            grant(OLD)
        assert time.monotonic() - started < 1.0 + SLACK
        assert proxy.arrived.is_set()


def test_a_deadline_timer_that_cannot_start_is_a_library_error(
    serve: Callable[..., Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process out of threads gets TokenEndpointUnavailableError, not a raw RuntimeError.

    Protects against: the deadline watch's thread failing to start (a process at its
    thread limit) escaping the library's error tree. Thread exhaustion cannot be made
    real here without harming the test run, so Timer.start is made to fail as it would.
    """
    endpoint = serve(lambda _: json_answer(USABLE))

    def cannot_start(self: threading.Timer) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Timer, "start", cannot_start)
    with pytest.raises(TokenEndpointUnavailableError) as caught:
        refresh_with(endpoint)
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert endpoint.received == []


def test_a_tls_token_endpoint_trickling_its_headers_fails_within_the_timeout(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over https too, headers sent a line at a time end the refresh at the timeout."""
    cert_file, key_file = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    with TrickledHead("headers", tls=context) as server:
        started = time.monotonic()
        grant = RefreshTokenGrant(server.url + "/token", "app", timeout=1.0)
        with grant, pytest.raises(TokenEndpointUnavailableError, match=r"exceeded.*of 1 s"):
            grant(OLD)
        assert time.monotonic() - started < 1.0 + SLACK


def test_the_exchange_deadline_leaves_no_thread_behind(serve: Callable[..., Endpoint]) -> None:
    """After exchanges that finish in time and one cut at its deadline, no watchdog is left.

    Protects against: a deadline timer per exchange that is never cancelled or joined, so
    that every refresh leaves a thread sleeping until its timeout.
    """
    endpoint = serve(lambda _: json_answer({**USABLE, "refresh_token": "rt-NEW"}))
    with RefreshTokenGrant(endpoint.url, "app", timeout=30.0) as grant:
        for _ in range(5):
            assert grant(OLD).refresh_token == "rt-NEW"
            assert not [t for t in threading.enumerate() if "deadline" in t.name]
    with TrickledHead() as server, RefreshTokenGrant(server.url, "app", timeout=0.5) as grant:
        with pytest.raises(TokenEndpointUnavailableError):
            grant(OLD)
        assert not [t for t in threading.enumerate() if "deadline" in t.name]


def test_a_session_passed_in_is_left_as_it_was(serve: Callable[..., Endpoint]) -> None:
    """The grant sends with a session passed in, and neither mounts on it nor closes it."""
    endpoint = serve(lambda _: json_answer(USABLE))
    with requests.Session() as session:
        adapters = dict(session.adapters)
        with RefreshTokenGrant(endpoint.url, "app", session=session, timeout=5.0) as grant:
            assert grant(OLD).access_token == "at-NEW"
        assert dict(session.adapters) == adapters
        assert session.post(endpoint.url, timeout=5).status_code == 200


def test_waiting_threads_get_the_grants_timeout_error(serve: Callable[..., Endpoint]) -> None:
    """Threads waiting on a trickling refresh get its TokenEndpointUnavailableError.

    Protects against: waiters timing out with RefreshTimeoutError because the grant's
    timeout did not bound the exchange (refresh_timeout is larger than it).
    """
    body = json.dumps(USABLE).encode()
    endpoint = serve(lambda _: Answer(200, body, per_byte=0.3))
    origin = endpoint.url.rsplit("/", 1)[0]
    adapter = RefreshAdapter(
        store=MemoryTokenStore(dataclasses.replace(OLD, expires_at=time.time() - 10)),
        refresher=RefreshTokenGrant(endpoint.url, "app", timeout=2.0),
        refresh_timeout=6.0,
    )
    errors: dict[str, BaseException] = {}

    def call(name: str) -> None:
        try:
            session.get(origin + "/api", timeout=10)
        except requests.RequestException as exc:
            errors[name] = exc

    with requests.Session() as session:
        adapter.mount(session, origin + "/")
        refresher = threading.Thread(target=call, args=("refresher",))
        refresher.start()
        assert endpoint.arrived.wait(5)
        waiter = threading.Thread(target=call, args=("waiter",))
        waiter.start()
        refresher.join(15)
        waiter.join(15)
    assert not refresher.is_alive()
    assert not waiter.is_alive()
    assert adapter.stats.waits == 1
    assert isinstance(errors["refresher"], TokenEndpointUnavailableError)
    assert isinstance(errors["waiter"], TokenEndpointUnavailableError)


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, InvalidTokenResponseError),
        (400, TokenEndpointError),
        (503, TokenEndpointUnavailableError),
    ],
)
def test_a_response_over_the_size_cap_is_not_read(
    serve: Callable[..., Endpoint], length: bool, status: int, error: type[RefreshError]
) -> None:
    """A body over 1 MiB: an error by status (2xx: invalid response), read no further."""
    body = b'{"access_token": "' + b"a" * (4 << 20) + b'"}'
    endpoint = serve(lambda _: Answer(status, body, length=length))
    with pytest.raises(error, match="MiB") as caught:
        refresh_with(endpoint)
    assert type(caught.value) is error


@pytest.mark.parametrize("shape", ["list", "object"])
def test_deeply_nested_json_is_an_invalid_response(
    serve: Callable[..., Endpoint], shape: str
) -> None:
    """JSON nested 200,000 deep is an InvalidTokenResponseError, never a RecursionError."""
    depth = 200_000
    opened, closed = ("[", "]") if shape == "list" else ('{"":', "}")  # under 1 MiB
    nested = opened * depth + "1" + closed * depth
    body = ('{"access_token": "at-NEW", "extra": ' + nested + "}").encode()
    endpoint = serve(lambda _: Answer(200, body))
    with pytest.raises(InvalidTokenResponseError, match="nested"):
        refresh_with(endpoint)


def test_moderately_nested_extra_fields_are_kept(serve: Callable[..., Endpoint]) -> None:
    """Control: extra fields nested a few levels deep (authorization_details) are kept."""
    details = [{"type": "x", "locations": [{"a": [1, 2, {"b": "c"}]}]}]
    endpoint = serve(lambda _: json_answer({**USABLE, "authorization_details": details}))
    assert refresh_with(endpoint).extra["authorization_details"] == details


# -- item 12: TLS verification failure -----------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_a_tls_verification_failure_is_a_configuration_error(
    serve: Callable[..., Endpoint], certificate: tuple[Path, Path]
) -> None:
    """An untrusted certificate: TokenEndpointError saying what to check, not "unavailable".

    Protects against: a misconfigured CA bundle being retried for ever as a transient
    outage.
    """
    cert_file, key_file = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    endpoint = serve(lambda _: json_answer(USABLE), tls=context)
    with pytest.raises(TokenEndpointError, match=r"TLS.*verif.*CA bundle.*verify=") as caught:
        refresh_with(endpoint)
    assert not isinstance(caught.value, TokenEndpointUnavailableError)
    assert caught.value.status_code is None
    with requests.Session() as session:
        session.verify = str(cert_file)
        session.trust_env = False  # else requests lets REQUESTS_CA_BUNDLE win over verify
        assert refresh_with(endpoint, session=session).access_token == "at-NEW"
