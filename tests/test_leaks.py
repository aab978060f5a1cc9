"""Secrets stay where they belong: not in logs, reprs, errors, redirects or refreshes."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import logging
import socket
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
    InsecureTransportError,
    MemoryTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    RequestsRefreshError,
    Token,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    device_login,
    revoke_token,
)
from requests_refresh.testing import AuthorizationServer

from .servers import write_self_signed_certificate

# -- a small recording server -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request a :class:`Recorder` received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Recorder:
    """An HTTP(S) server on a loopback address that records every request.

    ``/redirect/<status>?to=<url>`` answers that redirect; ``/token`` answers a token
    response (``at-new``); ``/token-redirect`` redirects to ``/token``; ``/api`` answers
    401 unless the token is ``at-new``; anything else answers 200.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        self.seen: list[Seen] = []
        self._mutex = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._mutex:
                    recorder.seen.append(
                        Seen(self.command, self.path, dict(self.headers.items()), body)
                    )
                parts = urllib.parse.urlsplit(self.path)
                status, headers, payload = 200, {}, b"{}"
                if parts.path.startswith("/redirect/"):
                    status = int(parts.path.rsplit("/", 1)[1])
                    headers["Location"] = urllib.parse.parse_qs(parts.query)["to"][0]
                elif parts.path == "/token-redirect":
                    status, headers["Location"] = 302, "/token"
                elif parts.path == "/token":
                    payload = json.dumps(
                        {"access_token": "at-new", "token_type": "Bearer", "expires_in": 600}
                    ).encode()
                elif parts.path == "/api" and self.headers.get("Authorization") != "Bearer at-new":
                    status = 401
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def authorizations(self) -> list[str | None]:
        with self._mutex:
            return [seen.headers.get("Authorization") for seen in self.seen]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    return write_self_signed_certificate(tmp_path_factory.mktemp("tls"))


def local_refresher(token: Token) -> Token:
    return Token("at-refreshed-LEAK", "rt-refreshed-LEAK", expires_at=time.time() + 600)


def leak_session(origin: str, mount: str) -> tuple[requests.Session, RefreshAdapter]:
    """A session whose adapter holds ``at-original-LEAK``, mounted on ``origin`` as told."""
    adapter = RefreshAdapter(
        store=MemoryTokenStore(
            Token("at-original-LEAK", "rt-original-LEAK", expires_at=time.time() + 600)
        ),
        refresher=local_refresher,
        origin=origin if mount == "session.mount" else None,
    )
    session = requests.Session()
    if mount == "session.mount":
        session.mount(origin + "/", adapter)
    else:
        adapter.mount(session, origin + "/")
    if mount == "broad":
        # The adapter also sees every other URL: only its origin check guards the token.
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session, adapter


def foreign_warning(mount: str) -> contextlib.AbstractContextManager[object]:
    """The warning a broadly mounted adapter gives when it sees another origin."""
    if mount == "broad":
        return pytest.warns(UserWarning, match="without the token")
    return contextlib.nullcontext()


#: How the adapter is mounted: on the origin through its own mount() (which records the
#: prefix) or the session's with origin=; or on the origin and on every http(s) URL.
MOUNTS = ["adapter.mount", "session.mount", "broad"]
REDIRECTS = [301, 302, 303, 307, 308]


# -- 7a. redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("change", ["host", "port"])
def test_no_token_on_a_redirect_to_another_origin(
    recorder: Recorder, status: int, change: str, mount: str
) -> None:
    """A redirect to another host or port arrives without the token.

    Protects against: handing the bearer token to whatever origin the API redirects to.
    The host change redirects 127.0.0.1 to ``localhost`` on the same port: the same
    server, so only the origin's name differs and the recorder sees both hops.
    """
    other = None if change == "host" else Recorder()
    target = (
        f"http://localhost:{recorder.port}/landed"
        if other is None
        else f"http://127.0.0.1:{other.port}/landed"
    )
    landing = recorder if other is None else other
    try:
        session, _ = leak_session(recorder.url, mount)
        with session, foreign_warning(mount):
            response = session.get(
                f"{recorder.url}/redirect/{status}", params={"to": target}, timeout=10
            )
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [status]
        landed = [s for s in landing.seen if s.path == "/landed"]
        assert len(landed) == 1
        assert "Authorization" not in landed[0].headers
        assert recorder.authorizations()[0] == "Bearer at-original-LEAK"  # the first hop had it
    finally:
        if other is not None:
            other.close()


@pytest.mark.parametrize("mount", MOUNTS)
@pytest.mark.parametrize("status", REDIRECTS)
def test_no_token_on_a_redirect_to_https(
    recorder: Recorder, certificate: tuple[Path, Path], status: int, mount: str
) -> None:
    """A redirect from http to https arrives without the token.

    Protects against: the token following a scheme change. A real TLS server with a
    self-signed certificate on 127.0.0.1, necessarily on another port: this is a scheme
    and port change, not a scheme change alone.
    """
    cert_file, key_file = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    secure = Recorder(tls=context)
    try:
        session, _ = leak_session(recorder.url, mount)
        with session, foreign_warning(mount):
            response = session.get(
                f"{recorder.url}/redirect/{status}",
                params={"to": f"{secure.url}/landed"},
                timeout=10,
                verify=str(cert_file),
            )
        assert response.status_code == 200
        assert [seen.path for seen in secure.seen] == ["/landed"]
        assert "Authorization" not in secure.seen[0].headers
    finally:
        secure.close()


@pytest.mark.parametrize("mount", MOUNTS)
def test_a_redirect_within_the_origin_keeps_the_token(recorder: Recorder, mount: str) -> None:
    """Control: a same-origin redirect does carry the token (so the checks above can fail)."""
    session, _ = leak_session(recorder.url, mount)
    with session:
        session.get(
            f"{recorder.url}/redirect/302", params={"to": f"{recorder.url}/landed"}, timeout=10
        )
    assert recorder.authorizations() == ["Bearer at-original-LEAK"] * 2


def test_no_token_over_plain_http_to_a_remote_host() -> None:
    """Plain http to a host that is not loopback is refused before anything is sent.

    Protects against: a bearer token crossing a network in clear text.
    """
    calls: list[Token] = []

    def refresher(token: Token) -> Token:
        calls.append(token)
        return token

    urls = ("http://api.example.invalid/x", "http://10.0.0.1:1/x", "http://[2001:db8::1]/")
    adapter = RefreshAdapter(
        store=MemoryTokenStore(Token("at-original-LEAK", "rt-original-LEAK")),
        refresher=refresher,
        origin=[url.rsplit("/", 1)[0] for url in urls],
    )
    with requests.Session() as session:
        session.mount("http://", adapter)
        for url in urls:
            with pytest.raises(InsecureTransportError) as caught:
                session.get(url, timeout=1)
            assert "LEAK" not in str(caught.value)
    assert calls == []
    with pytest.raises(InsecureTransportError):
        RefreshTokenGrant("http://auth.example.invalid/token", "client")


# -- 7b. the refresh request ----------------------------------------------------------------


def test_the_refresh_request_carries_only_token_endpoint_parameters(recorder: Recorder) -> None:
    """The token endpoint gets grant parameters only: no body, query, cookie or bearer.

    Protects against: the refresh reusing the refused request's data, headers or
    session (leaking a payload, a cookie or the old access token to the token endpoint).
    """
    grant = RefreshTokenGrant(
        recorder.url + "/token", "client-LEAK", "secret-LEAK", auth_method="client_secret_post"
    )
    adapter = RefreshAdapter(
        store=MemoryTokenStore(Token("at-old-LEAK", "rt-old-LEAK", expires_at=time.time() + 600)),
        refresher=grant,
    )
    with requests.Session() as session:
        adapter.mount(session, recorder.url + "/")
        session.cookies.set("session", "cookie-body-LEAK")
        response = session.post(
            recorder.url + "/api",
            params={"q": "query-body-LEAK"},
            json={"password": "original-body-LEAK"},
            headers={"X-Api-Key": "header-body-LEAK"},
            timeout=10,
        )
        assert response.status_code == 200
    token_requests = [seen for seen in recorder.seen if seen.path.startswith("/token")]
    assert len(token_requests) == 1
    sent = token_requests[0]
    form = urllib.parse.parse_qs(sent.body.decode())
    assert set(form) <= {"grant_type", "refresh_token", "scope", "client_id", "client_secret"}
    assert form["refresh_token"] == ["rt-old-LEAK"]
    assert sent.path == "/token"
    everything = sent.body.decode() + sent.path + json.dumps(sent.headers)
    for leaked in ("original-body", "query-body", "cookie-body", "header-body", "at-old"):
        assert leaked not in everything


def test_a_redirect_from_the_token_endpoint_is_not_followed(recorder: Recorder) -> None:
    """A 302 from the token endpoint is an error, and the refresh token goes nowhere else.

    Protects against: a misconfigured or hostile token endpoint redirecting the refresh
    token (and client secret) to another URL.
    """
    grant = RefreshTokenGrant(recorder.url + "/token-redirect", "client")
    with grant, pytest.raises(TokenEndpointError) as caught:
        grant(Token("at", "rt-LEAK"))
    assert caught.value.status_code == 302
    assert [seen.path for seen in recorder.seen] == ["/token-redirect"]


# -- 7c. logs, reprs, errors ----------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def all_logs() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger, at DEBUG, while the test runs."""
    root = logging.getLogger()
    handler = _Capture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("requests_refresh", "urllib3", "requests")]
    old_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield handler.records
    for logger, level in zip(loggers, old_levels, strict=True):
        logger.setLevel(level)
    root.setLevel(old_level)
    root.removeHandler(handler)


def test_no_secret_in_logs_reprs_or_errors(all_logs: list[logging.LogRecord]) -> None:
    """A full run (refresh, 401 replay, failures, invalid_grant) leaks no secret.

    Protects against: tokens or the client secret in any log record at DEBUG (ours,
    urllib3's, requests'), in repr() of our objects, or in our errors' messages and
    formatted tracebacks (with their causes).
    """
    secret = "client-secret-LEAK"
    now = [time.time()]
    with AuthorizationServer(access_ttl=60.0, client_secret=secret) as server:
        seen_tokens: list[Token] = [server.login()]
        store = MemoryTokenStore(dataclasses.replace(seen_tokens[0], access_token="at-unknown"))
        seen_tokens.append(store.load())  # type: ignore[arg-type]
        grant = RefreshTokenGrant(server.token_url, server.client_id, secret, timeout=2.0)
        adapter = RefreshAdapter(
            store=store,
            refresher=grant,
            on_refresh=lambda old, new: seen_tokens.append(new),
            clock=lambda: now[0],
        )
        errors: list[BaseException] = []
        with requests.Session() as session:
            adapter.mount(session, server.url + "/")
            # A 401 for an unknown access token: refresh, replay.
            assert session.get(server.resource_url, timeout=10).status_code == 200
            # Expiry: refresh ahead of time.
            now[0] += 45
            assert session.get(server.resource_url, timeout=10).status_code == 200
            # Failures, each after its cool-off, with the secrets echoed in the answer.
            echoed = f"{seen_tokens[-1].refresh_token} {seen_tokens[-1].access_token} {secret}"
            for status, body in (
                (500, {"error": "server_error", "error_description": echoed}),
                (400, {"error": "invalid_client", "error_description": echoed}),
                (200, {"access_token": "at-broken-LEAK", "expires_in": "soon"}),
                (400, {"error": "invalid_grant", "error_description": echoed}),
            ):
                now[0] += 3600
                server.fail_next(status, body=body)
                try:
                    session.get(server.resource_url, timeout=10)
                except RequestsRefreshError as exc:
                    errors.append(exc)
                else:
                    pytest.fail(f"no error for a forced {status}")
        texts = [repr(adapter), repr(grant), repr(store), *map(repr, seen_tokens)]

    secrets = {secret, "at-broken-LEAK"}
    for token in seen_tokens:
        secrets.add(token.access_token)
        if token.refresh_token:
            secrets.add(token.refresh_token)
    assert len(errors) == 4
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert any(record.name.startswith("urllib3") for record in all_logs)
    assert any(record.name == "requests_refresh" for record in all_logs)
    texts += [formatter.format(record) for record in all_logs]
    for text in texts:
        for value in secrets:
            assert value not in text, f"a secret in: {text[:200]}"


# -- 7d. errors without an answer ------------------------------------------------------------

CLIENT_SECRET = "cs-CLIENT-SECRET-leak"
REFRESH_SECRET = "rt-REFRESH-SECRET-leak"


@contextlib.contextmanager
def unanswered(kind: str) -> Iterator[str]:
    """A loopback URL whose server refuses the connection, or accepts it and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        if kind == "refused":
            listener.close()
        yield f"http://127.0.0.1:{port}"


def _refresh(url: str) -> None:
    with RefreshTokenGrant(url + "/token", "app", CLIENT_SECRET, timeout=0.5) as grant:
        grant(Token("at-x", REFRESH_SECRET))


def _revoke(url: str) -> None:
    revoke_token(
        REFRESH_SECRET,
        "app",
        client_secret=CLIENT_SECRET,
        revocation_url=url + "/revoke",
        timeout=0.5,
    )


def _device(url: str) -> None:
    device_login(
        "app",
        client_secret=CLIENT_SECRET,
        auth_method="client_secret_post",
        device_authorization_url=url + "/device",
        token_url=url + "/token",
        extra_params={"resource": REFRESH_SECRET},
        http_timeout=0.5,
    )


@pytest.mark.parametrize("call", [_refresh, _revoke, _device], ids=["grant", "revoke", "device"])
@pytest.mark.parametrize("kind", ["refused", "timeout"])
def test_a_transport_error_keeps_no_credentials_in_its_chained_request(
    call: Callable[[str], None], kind: str
) -> None:
    """No connection or no answer: the chained requests error's request has no secret left.

    Protects against: the error's ``__cause__`` (a requests ConnectionError or Timeout)
    keeping the request it could not send, with the refresh token in its body and the
    client's credentials in its Authorization header, for a traceback or a debugger.
    """
    with unanswered(kind) as url, pytest.raises(TokenEndpointUnavailableError) as caught:
        call(url)
    chained: list[BaseException] = []
    cause: BaseException | None = caught.value
    while cause is not None and len(chained) < 10:
        chained.append(cause)
        cause = cause.__cause__ or cause.__context__
    requests_errors = [e for e in chained if isinstance(e, requests.RequestException)]
    assert any(not isinstance(e, RequestsRefreshError) for e in requests_errors)
    for error in requests_errors:
        request = error.request
        if isinstance(request, requests.PreparedRequest):
            assert request.body is None
            assert "Authorization" not in request.headers
    text = "".join(traceback.format_exception(caught.value))
    basic = base64.b64encode(f"app:{CLIENT_SECRET}".encode()).decode()
    for secret in (CLIENT_SECRET, REFRESH_SECRET, basic):
        assert secret not in text
