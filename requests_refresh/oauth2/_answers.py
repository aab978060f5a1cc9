"""What an authorization server's answers mean, for every endpoint that authenticates the
client: the token endpoint, device authorization (RFC 8628 section 3.1), revocation
(RFC 7009 section 2.1).

:func:`refusal` classifies an answer that is not a success, with one set of messages and
the (scrubbed) response attached; :func:`transport_error` a request that got no answer.
"""

from __future__ import annotations

import email.utils
import math
import ssl
import time
from typing import Any

import requests

from ..exceptions import (
    InvalidGrantError,
    RefreshError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from ._redact import Redactor, quote_error

__all__ = ["refusal", "retry_after", "timeout_message", "transport_error"]

# Error codes that mean "try again later" (RFC 6749 section 5.2 and 4.1.2.1).
_TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def refusal(
    response: requests.Response,
    payload: Any,
    *,
    name: str,
    place: str,
    url_name: str,
    redactor: Redactor,
    grant_type: str | None = None,
    oversized: str = "",
) -> RefreshError | None:
    """The error an answer means, or None for a success that is no OAuth error answer.

    An OAuth error answer (RFC 6749 section 5.2: a JSON object whose ``error`` is a
    non-empty string) is an error whatever the HTTP status; otherwise a redirect (not
    followed), 429, 5xx and any other 4xx are. ``name`` is the kind of endpoint
    (``"token endpoint"``), ``place`` it and its URL, ``url_name`` the argument that sets
    the URL; ``grant_type`` the grant asked for at a token endpoint (None elsewhere);
    ``oversized`` says, when the body was over the size limit and not read, so
    (``", with a body over 1 MiB"``). The error carries ``response``, which the caller
    has scrubbed; server text in it is quoted through ``redactor``.
    """
    status = response.status_code
    raw_error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(raw_error, str) and raw_error:
        return _oauth_error(response, payload, raw_error, name, place, redactor, grant_type)
    if 300 <= status < 400:
        return TokenEndpointError(
            f"the {place} answered with a redirect (HTTP {status}), which is not followed:"
            f" check {url_name}",
            status_code=status,
            response=response,
        )
    if status == 429 or status >= 500:
        return TokenEndpointUnavailableError(
            f"the {place} is unavailable (HTTP {status}{oversized})",
            status_code=status,
            retry_after=retry_after(response),
            response=response,
        )
    if status >= 400:
        return TokenEndpointError(
            f"the {place} answered HTTP {status} without an OAuth error{oversized}:"
            f" check {url_name}",
            status_code=status,
            response=response,
        )
    return None


def _oauth_error(
    response: requests.Response,
    payload: dict[str, Any],
    raw_error: str,
    name: str,
    place: str,
    redactor: Redactor,
    grant_type: str | None,
) -> RefreshError:
    """The typed error for an RFC 6749 section 5.2 error answer (``raw_error``)."""
    status = response.status_code
    error, description, detail = quote_error(raw_error, payload.get("error_description"), redactor)
    common: dict[str, Any] = {
        "error": error,
        "error_description": description,
        "status_code": status,
        "response": response,
    }
    if raw_error == "invalid_grant" and grant_type is not None:
        return InvalidGrantError(
            f"the {name} refused the grant ({detail}): the login has expired or"
            " was revoked; sign in again and save the new token to the store",
            **common,
        )
    if raw_error in _TRANSIENT_ERRORS or status == 429 or status >= 500:
        return TokenEndpointUnavailableError(
            f"the {place} is unavailable ({detail}, HTTP {status})",
            retry_after=retry_after(response),
            **common,
        )
    asked = "the request" if grant_type is None else f"the {grant_type} grant"
    advice = {
        "invalid_client": "check client_id, client_secret and auth_method",
        "unauthorized_client": f"the client may not use {asked}",
        "unsupported_grant_type": f"the server does not offer {asked}",
        "invalid_scope": "ask for a scope the client or login was granted",
    }.get(raw_error, f"see the {name}'s documentation")
    return TokenEndpointError(
        f"the {place} refused {asked} ({detail}, HTTP {status}): {advice}", **common
    )


def transport_error(
    exc: requests.RequestException, place: str, url_name: str, total: float, retry_hint: str
) -> RefreshError:
    """The error for a request to the ``place`` endpoint that got no answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        # Not transient: retrying will not make the certificate trusted.
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return TokenEndpointError(
                f"TLS certificate verification failed for the {place}: its certificate is"
                f" not trusted, or not valid for that host. Check the host name in {url_name}"
                " and the CA bundle: for a private CA, set REQUESTS_CA_BUNDLE to its file, or"
                " pass session= with a session whose verify= names it (and trust_env=False"
                " if REQUESTS_CA_BUNDLE is set: requests lets it win over verify=)"
            )
        return TokenEndpointError(
            f"the TLS handshake with the {place} failed: check that {url_name} is https on"
            " a TLS port, the CA bundle, and the client certificate if the server requires"
            " one (pass session= with a session whose verify= and cert= are set)"
        )
    if isinstance(exc, requests.Timeout):
        return TokenEndpointUnavailableError(timeout_message(place, total, retry_hint))
    if isinstance(exc, requests.ConnectionError):
        return TokenEndpointUnavailableError(f"could not connect to the {place}")
    return RefreshError(f"the request to the {place} failed ({type(exc).__name__})")


def timeout_message(place: str, total: float, retry_hint: str) -> str:
    """The message for an exchange with the ``place`` endpoint that ran out of time."""
    return (
        f"the exchange with the {place} exceeded the timeout of {total:g} s: the server"
        f" did not answer in time; {retry_hint}"
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among ``exc``'s causes, arguments and urllib3 reasons."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo and len(seen) < 50:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        if isinstance(item, kind):
            return True
        seen.add(id(item))
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return False


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None
