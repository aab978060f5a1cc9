"""Where a token may be sent."""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse

from .exceptions import InsecureTransportError

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
