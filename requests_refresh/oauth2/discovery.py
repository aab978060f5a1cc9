"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery 1.0.

:func:`discover` fetches the issuer's metadata document and returns a frozen
:class:`ServerMetadata`. The document is hostile input: its size is bounded, the whole
fetch is bounded in time, redirects are followed only within the issuer's origin, its
``issuer`` must be exactly the one asked for (RFC 8414 section 3.3), and every field is
type-checked before use.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests

from .._deadline import new_session
from .._http import (
    JSON_HEADERS,
    BodyBrokenError,
    BodyTimeoutError,
    BodyTooLargeError,
    load_json,
    origin_of,
    read_body,
    require_safe_transport,
    where,
)
from .._values import quote_server_text
from ..exceptions import DiscoveryError

__all__ = ["ServerMetadata", "discover"]

_MAX_REDIRECTS = 3
_MAX_URL = 2048
_MAX_LIST = 100

_ENDPOINTS = (
    "token_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "registration_endpoint",
    "end_session_endpoint",
    "jwks_uri",
)
_LISTS = (
    "scopes_supported",
    "response_types_supported",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported",
    "revocation_endpoint_auth_methods_supported",
)
# What each endpoint is for, to say in an error which flow needs it.
_PURPOSE = {
    "token_endpoint": "every grant",
    "authorization_endpoint": "the browser login",
    "device_authorization_endpoint": "the device login",
    "revocation_endpoint": "revoking a token",
}
_ARGUMENT = {
    "token_endpoint": "token_url",
    "authorization_endpoint": "authorization_url",
    "device_authorization_endpoint": "device_authorization_url",
    "revocation_endpoint": "revocation_url",
}


@dataclasses.dataclass(frozen=True, slots=True)
class ServerMetadata:
    """An authorization server's metadata, with RFC 8414's field names. Immutable.

    Endpoints the server does not publish are None; lists it does not publish are empty
    tuples. :meth:`require` returns an endpoint or raises a :class:`DiscoveryError`
    that names it.
    """

    issuer: str
    token_endpoint: str | None = None
    authorization_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    registration_endpoint: str | None = None
    end_session_endpoint: str | None = None
    jwks_uri: str | None = None
    scopes_supported: tuple[str, ...] = ()
    response_types_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()
    revocation_endpoint_auth_methods_supported: tuple[str, ...] = ()

    def require(self, name: str) -> str:
        """The endpoint ``name`` (e.g. ``"device_authorization_endpoint"``), or raise.

        Raises:
            DiscoveryError: the server's metadata has no such endpoint; the message names
                it, the flow that needs it, and the argument to pass it explicitly.
        """
        value = getattr(self, name)
        if value is None:
            purpose = _PURPOSE.get(name, "this flow")
            argument = _ARGUMENT.get(name)
            hint = f"; pass {argument}= if you know it" if argument else ""
            raise DiscoveryError(
                f"the metadata of {self.issuer} has no {name}, which {purpose} needs: the"
                f" server may not offer it{hint}"
            )
        return str(value)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, issuer: str) -> ServerMetadata:
        """Check and convert a metadata document whose ``issuer`` must be ``issuer``.

        Raises:
            DiscoveryError: the issuer differs, or a known field has the wrong type.
        """
        found = document.get("issuer")
        if found != issuer:
            hint = ""
            if isinstance(found, str) and found.rstrip("/") == issuer.rstrip("/"):
                hint = " (they differ in a trailing '/')"
            raise DiscoveryError(
                f"the metadata for {issuer!r} names issuer {quote_server_text(found)}{hint}:"
                " the issuer must match exactly (RFC 8414 section 3.3); pass exactly the"
                " issuer the server names, if you trust that server"
            )
        fields: dict[str, Any] = {"issuer": issuer}
        for name in _ENDPOINTS:
            value = document.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value or len(value) > _MAX_URL:
                raise DiscoveryError(
                    f"the metadata of {issuer} has a {name} that is not a URL"
                    f" ({type(value).__name__}): the server's discovery document is broken"
                )
            parts = urllib.parse.urlsplit(value)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise DiscoveryError(
                    f"the metadata of {issuer} has a {name} that is not an http(s) URL:"
                    f" {quote_server_text(value)}"
                )
            fields[name] = value
        for name in _LISTS:
            value = document.get(name)
            if value is None:
                continue
            if (
                not isinstance(value, list)
                or len(value) > _MAX_LIST
                or not all(isinstance(item, str) and len(item) <= _MAX_URL for item in value)
            ):
                raise DiscoveryError(
                    f"the metadata of {issuer} has a {name} that is not a list of strings:"
                    " the server's discovery document is broken"
                )
            fields[name] = tuple(value)
        return cls(**fields)


def well_known_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be, in the order :func:`discover` tries them.

    RFC 8414 section 3.1 inserts ``/.well-known/oauth-authorization-server`` between the
    host and the issuer's path; OpenID Connect Discovery appends
    ``/.well-known/openid-configuration`` to the issuer (RFC 8414 section 5 notes both).
    """
    parts = urllib.parse.urlsplit(issuer)
    path = parts.path.rstrip("/")
    base = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{base}/.well-known/oauth-authorization-server{path}",
        f"{base}{path}/.well-known/openid-configuration",
    ]


def discover(
    issuer: str,
    *,
    timeout: float = 10.0,
    session: requests.Session | None = None,
    allow_insecure_http: bool = False,
) -> ServerMetadata:
    """Fetch the metadata of the authorization server ``issuer``.

    Tries RFC 8414's ``/.well-known/oauth-authorization-server`` (inserted before the
    issuer's path), then OpenID Connect's ``/.well-known/openid-configuration``. The
    first document found must name exactly ``issuer``.

    Args:
        issuer: the issuer identifier: an https URL with no query or fragment (http to a
            loopback address is allowed, as for every endpoint).
        timeout: seconds for each document fetch, whole (connect, headers and body).
        session: a session to send with. By default a new one, closed afterwards.
        allow_insecure_http: allow a plain http issuer that is not loopback.

    Raises:
        DiscoveryError: no document, a document that is not JSON, nested too deep or
            too large (64 KiB), the wrong issuer, a field of the wrong type, a redirect
            to another origin, or the server could not be reached (the cause is chained).
        InsecureTransportError: ``issuer`` is plain http to a host that is not loopback.
    """
    parts = urllib.parse.urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DiscoveryError(f"the issuer must be an https URL, not {issuer!r}")
    if parts.query or parts.fragment:
        raise DiscoveryError(
            f"the issuer {issuer!r} has a query or fragment, which RFC 8414 forbids: pass"
            " the issuer identifier alone"
        )
    if not allow_insecure_http:
        require_safe_transport(issuer, configure="discover()")
    own = session is None
    http = new_session() if session is None else session
    try:
        tried: list[str] = []
        for url in well_known_urls(issuer):
            document = _fetch(http, url, issuer, timeout)
            if document is not None:
                return ServerMetadata.from_document(document, issuer=issuer)
            tried.append(url)
    finally:
        if own:
            http.close()
    raise DiscoveryError(
        f"no metadata found for the issuer {issuer} (tried {', '.join(tried)}): check the"
        " issuer URL, or pass the endpoints' URLs explicitly"
    )


def _fetch(
    session: requests.Session, url: str, issuer: str, timeout: float
) -> dict[str, Any] | None:
    """The metadata document at ``url``; None when there is none (404 and the like)."""
    deadline = time.monotonic() + timeout
    origin = origin_of(issuer)
    for _ in range(_MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DiscoveryError(f"the metadata at {where(url)} did not arrive within {timeout} s")
        try:
            with session.get(
                url,
                headers=JSON_HEADERS,
                timeout=remaining,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                location = response.headers.get("Location")
                body = b"" if status >= 300 else read_body(response, deadline=deadline)
        except (requests.Timeout, BodyTimeoutError) as exc:
            raise DiscoveryError(
                f"the metadata at {where(url)} did not arrive within {timeout} s: check the"
                " issuer, or raise timeout"
            ) from exc
        except requests.ConnectionError as exc:
            raise DiscoveryError(
                f"could not connect to {where(url)} to fetch the server's metadata: check"
                " the issuer URL and the network"
            ) from exc
        except BodyBrokenError as exc:
            raise DiscoveryError(
                f"the connection broke while the metadata at {where(url)} arrived"
                f" ({type(exc.__cause__).__name__}): try again later"
            ) from exc
        except BodyTooLargeError as exc:
            raise DiscoveryError(f"the metadata at {where(url)} is too large: {exc}") from None
        except requests.RequestException as exc:
            raise DiscoveryError(
                f"fetching the metadata at {where(url)} failed ({type(exc).__name__})"
            ) from exc
        if status in (301, 302, 303, 307, 308) and location:
            target = urllib.parse.urljoin(url, location)
            if origin is None or origin_of(target) != origin:
                raise DiscoveryError(
                    f"the metadata at {where(url)} redirects to another origin"
                    f" ({where(target)}), which is not followed: check the issuer URL"
                )
            url = target
            continue
        if status in (404, 405, 410) or (400 <= status < 500 and status != 429):
            return None
        if status != 200:
            raise DiscoveryError(
                f"the metadata at {where(url)} could not be fetched (HTTP {status}): try"
                " again later"
            )
        document, problem = load_json(body)
        if not isinstance(document, dict):
            detail = f" ({problem})" if problem else ""
            raise DiscoveryError(
                f"the metadata at {where(url)} is not a JSON object{detail}: check the issuer URL"
            )
        return document
    raise DiscoveryError(f"the metadata at {where(url)} redirects too many times")


def resolve_endpoints(
    issuer: str | None,
    explicit: Mapping[str, str | None],
    *,
    timeout: float,
    session: requests.Session | None,
    allow_insecure_http: bool,
) -> tuple[dict[str, str], ServerMetadata | None]:
    """The endpoints a flow needs: the explicit URLs, the rest discovered from ``issuer``.

    ``explicit`` maps metadata names (``"token_endpoint"``) to the URL the caller passed,
    or None. Discovery happens only when one is missing. Returns the URLs by name, and
    the metadata when it was fetched.
    """
    missing = [name for name, url in explicit.items() if url is None]
    if not missing:
        return {name: str(url) for name, url in explicit.items()}, None
    if issuer is None:
        arguments = ", ".join(f"{_ARGUMENT.get(name, name)}=" for name in missing)
        raise ValueError(f"pass issuer= (to discover the endpoints) or {arguments}")
    metadata = discover(
        issuer, timeout=timeout, session=session, allow_insecure_http=allow_insecure_http
    )
    return {
        name: url if url is not None else metadata.require(name) for name, url in explicit.items()
    }, metadata
