"""A tiny scriptable HTTP server on a loopback address, for tests that need an answer
the authorization server does not give (redirects, scope errors, a held-back 401)."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the server sends; with ``per_byte``, that many seconds before each body byte."""

    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    per_byte: float | None = None


Script = Callable[[Seen], Reply]


class ScriptedServer:
    """Answers each request with ``script(seen)`` and records what it saw."""

    def __init__(self, script: Script, host: str = "127.0.0.1") -> None:
        self.script = script
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = _read_chunked(self)
                seen = Seen(
                    self.command,
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    body,
                )
                with outer._lock:
                    outer.seen.append(seen)
                reply = outer.script(seen)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.per_byte is None:
                    self.wfile.write(reply.body)
                    return
                try:
                    for index in range(len(reply.body)):
                        if outer._stopping.wait(reply.per_byte):
                            return
                        self.wfile.write(reply.body[index : index + 1])
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def _read_chunked(handler: BaseHTTPRequestHandler) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            handler.rfile.readline()
            return b"".join(chunks)
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()


def write_self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 in ``folder``: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class TrickledHead:
    """A server on 127.0.0.1 that never finishes the head of its answer.

    It reads a request, then sends ``HTTP/1.1 200 OK`` and one more header line every
    ``pace`` seconds (``part="headers"``), or its status line a byte every ``pace``
    seconds (``part="status"``), until the client goes away or the server is stopped.
    Each line arrives well inside a read timeout, so only a bound on the whole exchange
    ends it. ``arrived`` is set when a request has been read. With ``tls``, it speaks
    https.
    """

    def __init__(
        self, part: str = "headers", pace: float = 0.1, tls: ssl.SSLContext | None = None
    ) -> None:
        if part not in ("headers", "status"):
            raise ValueError(part)
        self.part = part
        self.tls = tls
        self.pace = pace
        self.arrived = threading.Event()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._handlers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> TrickledHead:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=10)
        for handler in self._handlers:
            handler.join(timeout=10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            handler = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            self._handlers.append(handler)
            handler.start()

    def _trickle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.recv(65536)
            self.arrived.set()
            if self.part == "headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                pieces = (b"X-Trickle: %d\r\n" % n for n in range(10**6))
            else:
                pieces = (b"HTTP/1.1 200 OK"[n : n + 1] or b"K" for n in range(10**6))
            for piece in pieces:
                if self._stopping.wait(self.pace):
                    return
                conn.sendall(piece)
        except OSError:
            return  # the client gave up: that is the point
        finally:
            conn.close()
