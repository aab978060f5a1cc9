"""Where a token may be sent."""

from __future__ import annotations

import ipaddress
import urllib.parse

from .exceptions import InsecureTransportError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def require_safe_transport(url: str) -> None:
    """Refuse plain http to anything but loopback."""
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
        " use https, or pass allow_insecure_http=True to RefreshAdapter if that network is"
        " trusted"
    )
