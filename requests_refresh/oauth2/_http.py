"""Reading answers from an authorization server that may be hostile.

Bounded bodies, bounded time, and server text cut short and made printable before it
goes into a message. Used by discovery, the device and revocation endpoints.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import requests

__all__ = [
    "MAX_BODY",
    "BodyTooLargeError",
    "origin_of",
    "parse_json",
    "quote_server_text",
    "read_body",
    "where",
]

#: The largest answer read from a metadata, device authorization or revocation endpoint.
MAX_BODY = 64 * 1024
_MAX_QUOTED = 200


class BodyTooLargeError(ValueError):
    """The answer is longer than allowed."""


def read_body(response: requests.Response, *, limit: int = MAX_BODY, deadline: float) -> bytes:
    """Read a streamed response's body: at most ``limit`` bytes, until ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time. Raises :class:`BodyTooLargeError`
    past ``limit`` and :class:`requests.Timeout` past ``deadline``.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the answer is {int(declared)} bytes, more than {limit}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=8192):
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the answer is more than {limit} bytes")
        if time.monotonic() > deadline:
            raise requests.Timeout("the answer took too long to arrive")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``, or None when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


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
