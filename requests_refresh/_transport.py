"""Where a token may be sent."""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse

from requests.models import PreparedRequest

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
    """The origin of a prepared request URL; None when it has none (not http(s), bad port).

    Remembered per origin, like :func:`require_safe_origin`: this runs for every request.
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
