"""HTTP for the library's own requests: where a token may go, and reading answers safely.

Where: plain http only to loopback, and the origin (scheme, host, port) of a URL, compared
as requests sends it. Reading: bodies bounded in size and time, JSON bounded in nesting,
server text cut short before it goes into a message, and a refused answer drained in
bounded memory and time before its request is sent again. The deadline on a request's
head is :mod:`._deadline`'s.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import json
import time
import urllib.parse
import zlib
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from requests.models import PreparedRequest, Response

from .exceptions import InsecureTransportError

__all__ = [
    "JSON_HEADERS",
    "MAX_BODY",
    "MAX_JSON_DEPTH",
    "BodyBrokenError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "Origin",
    "drain",
    "format_origin",
    "load_json",
    "origin_of",
    "read_body",
    "require_safe_origin",
    "require_safe_transport",
    "split_prefix",
    "total_seconds",
    "where",
]

#: The largest answer read from a metadata, device authorization or revocation endpoint.
MAX_BODY = 64 * 1024
#: The deepest nesting of JSON arrays and objects accepted in an answer. Deeper ones are
#: refused before anything recurses over them (a store's json.dumps, a copy).
MAX_JSON_DEPTH = 32
#: Request headers for a JSON answer. identity: the size limit counts what the server
#: sends, and no decompression bomb hides behind it.
JSON_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}
_CHUNK = 16384


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def require_safe_transport(url: str, *, configure: str) -> None:
    """Refuse plain http to anything but loopback.

    ``configure`` names what takes ``allow_insecure_http=True`` (``"RefreshAdapter"``,
    ``"RefreshTokenGrant"``, ...), for the message: the flag that lifts the refusal.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise InsecureTransportError(
        f"refusing to send a token over plain {parts.scheme}:// to {host or 'an unknown host'}:"
        f" use https, or pass allow_insecure_http=True to {configure} if that network is"
        " trusted"
    )


def require_safe_origin(url: str) -> None:
    """:func:`require_safe_transport`, remembered per origin: for the per-request path.

    The answer depends only on the scheme and host, so it is computed once per origin
    (a refusal is not remembered: it raises every time).
    """
    end = url.find("/", url.find("//") + 2)
    _require_safe_origin(url if end < 0 else url[:end])


@functools.lru_cache(maxsize=256)
def _require_safe_origin(origin: str) -> None:
    require_safe_transport(origin, configure="RefreshAdapter")


#: An origin as compared: (scheme, host as requests sends it, port). RFC 6454.
Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_prefix(prefix: str, *, what: str) -> tuple[Origin, str, str]:
    """``(origin, path, url)`` of an http(s) ``prefix`` in the form requests sends it.

    The host is IDNA-encoded as requests encodes it (``bücher.example`` becomes
    ``xn--bcher-kva.example``), so that the origin compares equal to the requests' URLs;
    ``url`` is the prefix in that form. Raises ValueError, naming ``what``, for anything
    that is not ``http(s)://host[:port][/path]``.
    """
    if "@" in urllib.parse.urlsplit(prefix).netloc:
        # Not echoed: the user information may hold a password.
        raise ValueError(f"{what} must not contain a user name or password")
    shown = repr(prefix[:200])
    try:
        prepared = PreparedRequest()
        prepared.prepare_url(prefix, None)
        url = prepared.url or ""
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # MissingSchema, InvalidURL, a bad port or IDNA name
        raise ValueError(
            f"{what} must be http:// or https:// and a host, like"
            f" 'https://api.example.com': {shown} is not ({exc.__class__.__name__})"
        ) from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(
            f"{what} must be http:// or https:// and a host, like 'https://api.example.com':"
            f" {shown} is not"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment: {shown}")
    origin = (scheme, parts.hostname, _DEFAULT_PORTS[scheme] if port is None else port)
    return origin, parts.path or "/", url


def format_origin(origin: Origin) -> str:
    """``scheme://host[:port]``, the port only when it is not the scheme's default."""
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


def origin_of(url: str) -> Origin | None:
    """The origin of ``url``; None when it has none (not http(s), no host, a bad port).

    The host is compared as written: a prepared request's URL has it as requests sends
    it (see :func:`split_prefix`). Remembered per origin, like
    :func:`require_safe_origin`: this runs for every request.
    """
    end = url.find("/", url.find("//") + 2)
    return _origin_of(url if end < 0 else url[:end])


@functools.lru_cache(maxsize=256)
def _origin_of(start: str) -> Origin | None:
    parts = urllib.parse.urlsplit(start)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname, _DEFAULT_PORTS[scheme] if port is None else port


class BodyTooLargeError(ValueError):
    """The answer is longer than allowed."""


class BodyTimeoutError(Exception):
    """The deadline passed before the whole answer arrived."""


class BodyBrokenError(Exception):
    """The connection broke while the answer arrived."""


def read_body(response: Response, *, limit: int = MAX_BODY, deadline: float) -> bytes:
    """Read a streamed response's body: at most ``limit`` bytes, until ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time. Each read on the socket waits no
    longer than what is left until then, and returns what has arrived, so a server that
    trickles its answer cannot stretch it (at worst by one more read timeout where the
    socket cannot be reached). The bytes are read as sent, not decompressed: ask with
    :data:`JSON_HEADERS`. A body read to its end gives its connection back to the pool.

    Raises:
        BodyTooLargeError: the answer is, or says it is, longer than ``limit``.
        BodyTimeoutError: ``deadline`` passed first.
        BodyBrokenError: the connection broke (the cause is chained).
    """
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise BodyTooLargeError(f"the answer is {int(declared)} bytes, more than {limit}")
    raw = response.raw
    read = _read_some(raw)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeoutError("the answer took too long to arrive")
        _limit_next_read(raw, remaining)
        try:
            chunk = read(min(_CHUNK, limit + 1 - size))
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise BodyTimeoutError("the answer took too long to arrive") from exc
        except (
            urllib3.exceptions.HTTPError,
            requests.RequestException,
            http.client.HTTPException,
            OSError,
        ) as exc:
            raise BodyBrokenError(
                f"the connection broke while the answer arrived ({type(exc).__name__})"
            ) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the answer is more than {limit} bytes")
        chunks.append(chunk)


def _read_some(raw: Any) -> Callable[[int], bytes]:
    """A read of up to n bytes of ``raw``'s body that returns what has arrived.

    urllib3 2 has ``read1``. urllib3 1.26's ``read(n)`` waits until all n bytes have
    arrived, each piece within the socket timeout, so a trickle outlasts any deadline:
    there the read is ``read1`` of the http.client response underneath, and at the end
    of the body the connection goes back to the pool, as urllib3's own read does.
    """
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return read1  # type: ignore[no-any-return]
    underneath = getattr(raw, "_fp", None)
    if not isinstance(underneath, http.client.HTTPResponse):
        return raw.read  # type: ignore[no-any-return]

    def read(amount: int) -> bytes:
        chunk = underneath.read1(amount)
        if not chunk and amount:  # the end of the body
            underneath.close()
            raw.release_conn()
        return chunk

    return read


def _limit_next_read(raw: Any, remaining: float) -> None:
    """Let the next read on the answer's socket wait no longer than ``remaining`` seconds.

    Best effort: the socket is reached through urllib3's response (``connection``, or
    ``_connection`` before urllib3 2); without it each read waits up to the read timeout.
    urllib3 sets the timeout again before the connection's next request.
    """
    sock = _socket_of(raw)
    if sock is not None:
        try:
            current = sock.gettimeout()
            sock.settimeout(remaining if current is None else min(current, remaining))
        except OSError:
            pass


def _socket_of(raw: Any) -> Any:
    """The socket under urllib3's response ``raw``, or None once it has none."""
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    return getattr(connection, "sock", None)


def drain(response: Response, *, limit: int, seconds: float) -> None:
    """Finish with an answer that is not used, in bounded memory and time.

    Reads at most ``limit`` bytes of its body for at most ``seconds``, with
    :func:`read_body`. A body read to its end within those bounds stays in the response,
    decoded (gzip or deflate, at most ``limit`` bytes of it), and its connection goes back
    to the pool; any other answer keeps its status and headers, an empty body, and its
    connection is closed. The socket's timeout is restored afterwards.
    """
    sock = _socket_of(response.raw)
    body: bytes | None = None
    if sock is not None:
        previous = sock.gettimeout()
        try:
            body = read_body(response, limit=limit, deadline=time.monotonic() + seconds)
        except (BodyTooLargeError, BodyTimeoutError, BodyBrokenError):
            body = None  # its connection is closed below
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
    # Closing releases a connection whose body was read to the end, and closes any other.
    response.close()
    encoding = response.headers.get("Content-Encoding")
    response._content = b"" if body is None else _decoded(body, encoding, limit)
    response._content_consumed = True


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` without its gzip or deflate coding, at most ``limit`` bytes of it."""
    if not encoding or encoding.strip().lower() == "identity":
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        return b""
    try:
        # 32 + MAX_WBITS: a gzip or zlib header, detected.
        return zlib.decompressobj(32 + zlib.MAX_WBITS).decompress(body, limit)
    except zlib.error:
        return b""


def load_json(body: bytes) -> tuple[Any, str]:
    """The parsed body, or None and what is wrong with it (for a message)."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return None, "a JSON body nested too deeply"
    except ValueError:  # not JSON, not UTF-8, or an integer of thousands of digits
        return None, "a body that is not JSON"
    if _nested_deeper_than(payload, MAX_JSON_DEPTH):
        return None, f"a JSON body nested more than {MAX_JSON_DEPTH} deep"
    return payload, ""


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` deep. No recursion."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, (dict, list)) for item in level)


def total_seconds(timeout: float | tuple[float, float]) -> float:
    """A whole exchange's time budget: the timeout, or connect + read."""
    if isinstance(timeout, tuple):
        return float(sum(timeout))
    return float(timeout)


def where(url: str) -> str:
    """``url`` without query, fragment or credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = (parts.hostname or "") + ("" if port is None else f":{port}")
    return f"{parts.scheme}://{netloc}{parts.path}"
