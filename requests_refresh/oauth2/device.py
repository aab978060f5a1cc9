"""The device authorization grant (RFC 8628): sign in on another device.

For command-line tools on SSH sessions and headless machines: the tool shows a short
code and a URL, the user opens the URL on any device and enters the code, and the tool
polls the token endpoint until the user has approved (or declined, or the code expired).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from .._values import json_number, quote_server_text
from ..exceptions import (
    AuthorizationDeniedError,
    InvalidTokenResponseError,
    LoginTimeoutError,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from ..token import Token
from ._exchange import RESERVED_PARAMS, ClientAuthMethod, TokenEndpoint
from ._grant import open_endpoint, refuse_reserved

__all__ = ["DeviceAuthorization", "device_login"]

#: The device code grant type (RFC 8628 section 3.4).
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Seconds between polls when the server names no interval (RFC 8628 section 3.2).
DEFAULT_INTERVAL = 5.0
#: What ``slow_down`` adds to the interval, for good (RFC 8628 section 3.5).
SLOW_DOWN_STEP = 5.0
# Bounds on what the server may ask for: never poll in a tight loop, never sleep an hour.
_MIN_INTERVAL = 0.2
_MAX_INTERVAL = 120.0
_MAX_CODE_LIFETIME = 24 * 3600.0
_MAX_FIELD = 512


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """What the user needs to sign in: shown by ``on_code``. Holds no secret.

    Attributes:
        user_code: the code the user enters at ``verification_uri``.
        verification_uri: where the user goes to sign in.
        verification_uri_complete: the same with the code filled in (for a link or a QR
            code), or None when the server sent none.
        expires_at: when the code expires, in epoch seconds.
        interval: seconds between polls, as the server asked (at least 0.2).
    """

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float


def print_code(code: DeviceAuthorization) -> None:
    """The default ``on_code``: tell the user where to go and what to enter (on stderr)."""
    minutes = max(0.0, code.expires_at - time.time()) / 60
    lines = [
        f"To sign in, open {code.verification_uri} and enter the code {code.user_code}",
    ]
    if code.verification_uri_complete:
        lines.append(f"(or open {code.verification_uri_complete})")
    lines.append(f"The code expires in {minutes:.0f} min. Waiting for you to sign in ...")
    print("\n".join(lines), file=sys.stderr, flush=True)  # noqa: T201 - the user must see it


def device_login(
    client_id: str,
    *,
    issuer: str | None = None,
    device_authorization_url: str | None = None,
    token_url: str | None = None,
    client_secret: str | None = None,
    auth_method: ClientAuthMethod | None = None,
    scope: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    on_code: Callable[[DeviceAuthorization], object] | None = None,
    timeout: float | None = None,
    http_timeout: float = 10.0,
    session: requests.Session | None = None,
    allow_insecure_http: bool = False,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Token:
    """Sign in with the device authorization grant (RFC 8628) and return the token.

    Asks the device authorization endpoint for a code, calls ``on_code`` once with it,
    then polls the token endpoint: no faster than the server's ``interval``, 5 s slower
    for good after each ``slow_down``, going on while the answer is
    ``authorization_pending``, until the user approves, declines, the code expires, or
    ``timeout`` passes. Save the token to your store::

        store.save(device_login("my-cli", issuer="https://auth.example.com"))

    Args:
        client_id: the client identifier.
        issuer: the server's issuer, to discover the endpoints not passed explicitly.
        device_authorization_url, token_url: the endpoints, instead of discovery.
        client_secret, auth_method: the client's authentication, as for
            :class:`RefreshTokenGrant` (usually none: a CLI is a public client).
        scope: the scope to ask for (space-separated).
        extra_params: more form fields for the device authorization request.
        on_code: called once with the :class:`DeviceAuthorization` to show the user;
            the default prints the URL and the code on stderr.
        timeout: give up after this many seconds even if the code is still valid; by
            default the code's own lifetime is the bound.
        http_timeout: seconds to wait for each HTTP answer.
        session: a session to send with; by default one of its own, closed at the end.
        allow_insecure_http: allow plain http endpoints that are not loopback.
        sleep, clock: how to wait and what time it is (``time.monotonic``); tests pass
            their own to check the polling without waiting.

    Raises:
        AuthorizationDeniedError: the user declined (``access_denied``).
        LoginTimeoutError: the code expired (``expired_token``) or ``timeout`` passed.
        DiscoveryError: the issuer's metadata has no device authorization endpoint.
        TokenEndpointError, TokenEndpointUnavailableError, InvalidTokenResponseError:
            the server refused the client, or could not be used.
    """
    refuse_reserved(extra_params, RESERVED_PARAMS | {"scope"}, "flow")
    endpoint, urls, _ = open_endpoint(
        client_id,
        client_secret,
        issuer=issuer,
        urls={
            "device_authorization_endpoint": device_authorization_url,
            "token_endpoint": token_url,
        },
        auth_method=auth_method,
        timeout=http_timeout,
        session=session,
        allow_insecure_http=allow_insecure_http,
        owner="device_login()",
    )
    try:
        params = dict(extra_params or {})
        if scope is not None:
            params["scope"] = scope
        started = clock()
        answer = endpoint.post_form(
            urls["device_authorization_endpoint"],
            params,
            endpoint="device authorization endpoint",
            url_name="device_authorization_url",
            allow_insecure_http=allow_insecure_http,
        )
        device_code, code, lifetime = _parse_authorization(answer)
        (print_code if on_code is None else on_code)(code)
        deadline = started + lifetime
        if timeout is not None:
            deadline = min(deadline, started + timeout)
        return _poll(endpoint, device_code, code.interval, deadline, timeout, sleep, clock)
    finally:
        endpoint.close()


def _poll(
    endpoint: TokenEndpoint,
    device_code: str,
    interval: float,
    deadline: float,
    timeout: float | None,
    sleep: Callable[[float], object],
    clock: Callable[[], float],
) -> Token:
    """Poll the token endpoint until the user decides (RFC 8628 section 3.4, 3.5)."""
    params = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}
    backoff = interval
    while True:
        if clock() + backoff > deadline:
            raise _timed_out(timeout)
        sleep(backoff)
        try:
            return endpoint.exchange(params, secrets=(device_code,))
        except TokenEndpointUnavailableError as exc:
            # RFC 8628 section 3.5: back off on a failed connection, then go on polling.
            backoff = min(max(backoff * 2, exc.retry_after or 0.0), _MAX_INTERVAL)
            continue
        except TokenEndpointError as exc:
            if exc.error == "authorization_pending":
                backoff = interval
                continue
            if exc.error == "slow_down":
                interval = min(interval + SLOW_DOWN_STEP, _MAX_INTERVAL)
                backoff = interval
                continue
            if exc.error == "access_denied":
                raise AuthorizationDeniedError(
                    "the sign-in was declined (access_denied): run the login again and"
                    " approve it, or ask the server's administrator about this client",
                    error=exc.error,
                    error_description=exc.error_description,
                ) from exc
            if exc.error == "expired_token":
                raise LoginTimeoutError(
                    "the code expired before the sign-in was completed (expired_token):"
                    " run the login again and enter the new code sooner",
                    error=exc.error,
                    error_description=exc.error_description,
                ) from exc
            raise


def _timed_out(timeout: float | None) -> LoginTimeoutError:
    if timeout is None:
        return LoginTimeoutError(
            "the code expired before the sign-in was completed: run the login again and"
            " enter the new code sooner",
            error="expired_token",
        )
    return LoginTimeoutError(
        f"the sign-in was not completed within {timeout:g} s: run the login again (and"
        " raise timeout if you need longer)"
    )


def _parse_authorization(answer: dict[str, Any] | None) -> tuple[str, DeviceAuthorization, float]:
    """The device code, what to show, and the code's lifetime in seconds (section 3.2)."""

    fields = answer or {}

    def text(name: str, *, secret: bool = False) -> str:
        value = fields.get(name)
        if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
            raise InvalidTokenResponseError(
                f"the device authorization answer has no usable {name}"
                f" ({type(value).__name__}): check device_authorization_url"
            )
        if not value.isprintable():
            # A secret (the device code) is named, never quoted.
            shown = "" if secret else f": {quote_server_text(value, 40)}"
            raise InvalidTokenResponseError(
                f"the device authorization answer has a {name} with control characters{shown}"
            )
        return value

    device_code = text("device_code", secret=True)
    user_code = text("user_code")
    verification_uri = text("verification_uri")
    complete = None
    if fields.get("verification_uri_complete") is not None:
        complete = text("verification_uri_complete")
    for name, uri in (("verification_uri", verification_uri), ("complete", complete)):
        if uri is not None and not uri.lower().startswith(("https://", "http://")):
            raise InvalidTokenResponseError(
                f"the device authorization answer's {name} is not an http(s) URL:"
                f" {quote_server_text(uri, 80)}"
            )
    lifetime = json_number(fields.get("expires_in"))
    if lifetime is None or lifetime <= 0:
        raise InvalidTokenResponseError(
            "the device authorization answer has no usable expires_in: check"
            " device_authorization_url"
        )
    lifetime = min(lifetime, _MAX_CODE_LIFETIME)
    interval = json_number(fields.get("interval"))
    interval = DEFAULT_INTERVAL if interval is None else interval
    interval = min(max(interval, _MIN_INTERVAL), _MAX_INTERVAL)
    code = DeviceAuthorization(
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=complete,
        expires_at=time.time() + lifetime,
        interval=interval,
    )
    return device_code, code, lifetime
