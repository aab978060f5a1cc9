"""Reading answers from an authorization server that may be hostile.

Bounded bodies, bounded time, bounded JSON nesting, and server text cut short and made
printable before it goes into a message. Used by the token endpoint exchange, the
device authorization and revocation endpoints, and discovery.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import requests
import urllib3

__all__ = [
    "JSON_HEADERS",
    "MAX_BODY",
    "MAX_JSON_DEPTH",
    "BodyBrokenError",
    "BodyTimeoutError",
    "BodyTooLargeError",
    "load_json",
    "origin_of",
    "quote_server_text",
    "read_body",
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
_MAX_QUOTED = 200
_CHUNK = 16384


class BodyTooLargeError(ValueError):
    """The answer is longer than allowed."""


class BodyTimeoutError(Exception):
    """The deadline passed before the whole answer arrived."""


class BodyBrokenError(Exception):
    """The connection broke while the answer arrived."""


def read_body(response: requests.Response, *, limit: int = MAX_BODY, deadline: float) -> bytes:
    """Read a streamed response's body: at most ``limit`` bytes, until ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time. Each read on the socket waits no
    longer than what is left until then, so a server that trickles its answer cannot
    stretch it (at worst by one more read timeout where the socket cannot be reached).
    The bytes are read as sent, not decompressed: ask with :data:`JSON_HEADERS`.

    Raises:
        BodyTooLargeError: the answer is, or says it is, longer than ``limit``.
        BodyTimeoutError: ``deadline`` passed first.
        BodyBrokenError: the connection broke (the cause is chained).
    """
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > limit):
        raise BodyTooLargeError(f"the answer is {int(declared)} bytes, more than {limit}")
    raw = response.raw
    # urllib3 2 has read1: whatever has arrived, up to n bytes. read(n) waits for all
    # n bytes, but no longer than the socket timeout set for it.
    read = getattr(raw, "read1", None) or raw.read
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimeoutError("the answer took too long to arrive")
        _limit_next_read(raw, remaining)
        try:
            chunk = read(_CHUNK)
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            raise BodyTimeoutError("the answer took too long to arrive") from exc
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise BodyBrokenError(
                f"the connection broke while the answer arrived ({type(exc).__name__})"
            ) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the answer is more than {limit} bytes")
        chunks.append(chunk)


def _limit_next_read(raw: Any, remaining: float) -> None:
    """Let the next read on the answer's socket wait no longer than ``remaining`` seconds.

    Best effort: the socket is reached through urllib3's response (``connection``, or
    ``_connection`` before urllib3 2); without it each read waits up to the read timeout.
    urllib3 sets the timeout again before the connection's next request.
    """
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            current = sock.gettimeout()
            sock.settimeout(remaining if current is None else min(current, remaining))
        except OSError:
            pass


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


def quote_server_text(text: object, limit: int = _MAX_QUOTED) -> str:
    """A server-supplied value, cut to ``limit`` characters and quoted for a message."""
    value = text if isinstance(text, str) else repr(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


def where(url: str) -> str:
    """``url`` without query, fragment or credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = (parts.hostname or "") + ("" if port is None else f":{port}")
    return f"{parts.scheme}://{netloc}{parts.path}"


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, with the default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port
