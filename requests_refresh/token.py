"""The token value: an access token, its refresh token and when it expires."""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from ._values import json_number
from .exceptions import InvalidTokenResponseError

__all__ = ["Token"]

logger = logging.getLogger("requests_refresh")

#: Longest ``expires_in`` accepted from a token endpoint: ten years. Anything larger is
#: a server bug (or an overflow waiting to happen), not a lifetime.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600

#: 5000-01-01 UTC in epoch seconds. A later ``expires_at`` or ``issued_at`` can only be a
#: time in milliseconds (today is about 1.7e12 of them).
LATEST_EPOCH_SECONDS = 95_617_584_000

#: The fields in which servers say, in seconds, when the refresh token (so the login)
#: ends: Keycloak's ``refresh_expires_in``, GitHub Apps' ``refresh_token_expires_in``,
#: Intuit's ``x_refresh_token_expires_in``. None is in RFC 6749.
REFRESH_EXPIRY_FIELDS = (
    "refresh_expires_in",
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
)

# Fields of a token response (RFC 6749 section 5.1) that Token models itself; any other
# field (id_token, vendor fields) is kept in Token.extra. The vendor fields of
# REFRESH_EXPIRY_FIELDS and Entra's ``refresh_in`` are modelled too, when they can be read.
_RESPONSE_FIELDS = frozenset(
    {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
)
_DICT_FIELDS = frozenset(
    {
        "access_token",
        "token_type",
        "expires_at",
        "issued_at",
        "refresh_token",
        "scope",
        "extra",
        "refresh_expires_at",
        "refresh_at",
    }
)

# What may go into ``Authorization: <token_type> <access_token>``.
#
# The access token: printable ASCII, %x20-7E, the VSCHAR of RFC 6749 appendix A.12,
# with neither end a space (RFC 7230 section 3.2.4 trims whitespace around a field
# value, so the server would not see the same token). Stricter than RFC 7230's
# field-value, which also allows HTAB and obs-text (%x80-FF, deprecated, and what
# non-latin-1 text cannot be encoded into): anything else is a control character that
# splits or ends the header, or text that is not the token the server meant. Looser
# than RFC 6750's b64token, which real servers do not always keep to and which the
# header can carry anyway.
#
# The token type is the header's auth-scheme: an RFC 7230 section 3.2.6 token (tchar).
_HEADER_SAFE_TOKEN = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_AUTH_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_header_safe_token(value: str) -> bool:
    """Whether ``value`` can be sent as an access token in an ``Authorization`` header."""
    return _HEADER_SAFE_TOKEN.fullmatch(value) is not None


def is_auth_scheme(value: str) -> bool:
    """Whether ``value`` can be sent as the scheme (token type) of an ``Authorization`` header."""
    return _AUTH_SCHEME.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class Token:
    """An access token with what is needed to use and renew it. Immutable.

    A refresh produces a new ``Token``; none is ever changed in place. ``repr()`` shows
    which fields are set, never a secret.

    Attributes:
        access_token: the secret sent in the ``Authorization`` header: printable ASCII,
            not starting or ending with a space.
        refresh_token: the secret exchanged for a new token, or None.
        expires_at: when the access token expires, in epoch seconds (not milliseconds:
            a time after the year 5000 is refused), or None if unknown: such a token is
            used until the server refuses it, then refreshed.
        token_type: the scheme of the ``Authorization`` header; ``"Bearer"`` by default.
            An HTTP token: letters, digits and ``!#$%&'*+-.^_`|~``.
        scope: the granted scope as the server sent it, or None.
        issued_at: when the token was obtained, in epoch seconds, or None if unknown.
            With ``expires_at`` it gives the token's lifetime.
        extra: every other field of the token response (``id_token``, vendor fields).
            It may hold secrets too and is never shown by ``repr()``.
        refresh_expires_at: when the refresh token expires, so when the login ends and
            the user must sign in again, in epoch seconds, or None if unknown. Past it,
            :class:`RefreshTokenGrant` does not present the refresh token.
        refresh_at: when the server asked for a refresh ahead of expiry (Entra's
            ``refresh_in``), in epoch seconds, or None. :meth:`refresh_due_at` honours it
            when it comes first.

    Raises:
        ValueError: a field has the wrong type, or the access token or token type holds
            characters that cannot go into a header (CR, LF, NUL, non-ASCII, ...): a
            token must not be able to add headers to a request. The message never
            contains the value.
    """

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    token_type: str = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    scope: str | None = None
    issued_at: float | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    refresh_expires_at: float | None = None
    refresh_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.access_token, str) or not self.access_token:
            raise ValueError("access_token must be a non-empty string")
        if not is_header_safe_token(self.access_token):
            raise ValueError(
                "access_token holds characters that cannot go into an Authorization header"
                " (only printable ASCII, not starting or ending with a space)"
            )
        if self.refresh_token is not None and (
            not isinstance(self.refresh_token, str) or not self.refresh_token
        ):
            raise ValueError("refresh_token must be a non-empty string or None")
        if not isinstance(self.token_type, str) or not self.token_type.strip():
            raise ValueError("token_type must be a non-empty string")
        if not is_auth_scheme(self.token_type):
            raise ValueError(
                "token_type holds characters that cannot go into an Authorization header"
                " (only letters, digits and !#$%&'*+-.^_`|~)"
            )
        for name in ("expires_at", "issued_at", "refresh_expires_at", "refresh_at"):
            value = getattr(self, name)
            if value is not None and not _is_finite_number(value):
                raise ValueError(f"{name} must be a finite number of epoch seconds or None")
            if value is not None and value > LATEST_EPOCH_SECONDS:
                raise ValueError(
                    f"{name} is after the year 5000: it looks like milliseconds; pass epoch"
                    " seconds (divide it by 1000)"
                )
        if self.scope is not None and not isinstance(self.scope, str):
            raise ValueError("scope must be a string or None")
        if not isinstance(self.extra, Mapping):
            raise ValueError("extra must be a mapping")
        # A private copy, so that nobody can change a token through the dict they passed.
        object.__setattr__(self, "extra", dict(self.extra))

    def __repr__(self) -> str:
        parts = [
            "access_token=<redacted>",
            f"refresh_token={'<redacted>' if self.refresh_token else None}",
            f"token_type={self.token_type!r}",
            f"expires_at={self.expires_at!r}",
        ]
        if self.scope is not None:
            parts.append(f"scope={self.scope!r}")
        if self.refresh_expires_at is not None:
            parts.append(f"refresh_expires_at={self.refresh_expires_at!r}")
        if self.refresh_at is not None:
            parts.append(f"refresh_at={self.refresh_at!r}")
        if self.extra:
            parts.append(f"extra_fields={sorted(self.extra)!r}")
        return f"Token({', '.join(parts)})"

    @property
    def authorization(self) -> str:
        """The value of the ``Authorization`` header: ``"<token_type> <access_token>"``."""
        return f"{self.token_type} {self.access_token}"

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until the access token expires (negative once expired), or None."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def is_expired(self, now: float | None = None) -> bool:
        """Whether the access token has expired. A token with no expiry never has."""
        remaining = self.expires_in(now)
        return remaining is not None and remaining <= 0

    def refresh_due_at(self, leeway: float) -> float | None:
        """When to refresh ahead of expiry, in epoch seconds, or None for never.

        That is ``leeway`` seconds before ``expires_at``, but never more than half the
        token's lifetime, so a token that lives 2 seconds is not refreshed on every use;
        or :attr:`refresh_at`, the moment the server asked for, when it comes first.
        """
        if self.expires_at is None:
            return self.refresh_at
        if self.issued_at is not None:
            leeway = min(leeway, max(0.0, self.expires_at - self.issued_at) / 2)
        due = self.expires_at - leeway
        return due if self.refresh_at is None else min(due, self.refresh_at)

    @classmethod
    def from_response(cls, payload: object, now: float | None = None) -> Token:
        """Parse a successful token response (RFC 6749 section 5.1).

        ``expires_in`` becomes ``expires_at`` counted from ``now`` (default: the current
        time); an absent one, or ``0`` (which some servers send for "does not expire"),
        leaves it unknown. ``token_type`` is case-insensitive (``"bearer"`` becomes
        ``"Bearer"``) and defaults to ``"Bearer"`` when absent. A missing
        ``refresh_token`` stays missing; :class:`RefreshTokenGrant` keeps the old one in
        that case.

        The login's end becomes :attr:`refresh_expires_at`, from whichever of
        ``refresh_expires_in``, ``refresh_token_expires_in`` and
        ``x_refresh_token_expires_in`` comes (the earliest, if several), and Entra's
        ``refresh_in`` becomes :attr:`refresh_at`. They are read as ``expires_in`` is,
        but they only inform: ``0`` means unknown, and a value that cannot be read
        (negative, over ten years, not a number) is ignored, logged at DEBUG and left
        in :attr:`extra`. Every other field is kept in :attr:`extra`.

        Raises:
            InvalidTokenResponseError: the payload is not a usable token response. The
                message names the field and what is wrong with it, never its secret value.
        """
        if not isinstance(payload, Mapping):
            hint = (
                ": pass the parsed body, response.json()"
                if callable(getattr(payload, "json", None))
                else ""
            )
            raise InvalidTokenResponseError(
                f"the token response is not a JSON object (got {type(payload).__name__}){hint}"
            )
        now = time.time() if now is None else now
        access_token = payload.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise InvalidTokenResponseError(
                "the token response has no access_token"
                if access_token is None
                else "the token response's access_token is not a non-empty string"
            )
        if not is_header_safe_token(access_token):
            raise InvalidTokenResponseError(
                "the token response's access_token holds characters that cannot go into an"
                " Authorization header (control characters, non-ASCII, or spaces at an end)"
            )
        refresh_token = payload.get("refresh_token")
        if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
            raise InvalidTokenResponseError(
                "the token response's refresh_token is not a non-empty string"
            )
        token_type = payload.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not token_type.strip():
            raise InvalidTokenResponseError(
                "the token response's token_type is not a non-empty string"
            )
        token_type = token_type.strip()
        if not is_auth_scheme(token_type):
            raise InvalidTokenResponseError(
                "the token response's token_type holds characters that cannot go into an"
                " Authorization header scheme"
            )
        if token_type.lower() == "bearer":
            token_type = "Bearer"  # noqa: S105 - the scheme's name, not a secret
        expires_in = _parse_expires_in(payload.get("expires_in"))
        modelled = set(_RESPONSE_FIELDS)
        refresh_expires_in = None
        for name in REFRESH_EXPIRY_FIELDS:
            seconds = _parse_hint(payload, name, modelled)
            if seconds is not None and (
                refresh_expires_in is None or seconds < refresh_expires_in
            ):
                refresh_expires_in = seconds
        refresh_in = _parse_hint(payload, "refresh_in", modelled)
        return cls(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=None if expires_in is None else now + expires_in,
            token_type=token_type,
            scope=_parse_scope(payload.get("scope")),
            issued_at=now,
            extra={k: v for k, v in payload.items() if k not in modelled},
            refresh_expires_at=None if refresh_expires_in is None else now + refresh_expires_in,
            refresh_at=None if refresh_in is None else now + refresh_in,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal token.

        It contains the secrets: store it only where secrets belong.
        """
        data: dict[str, Any] = {"access_token": self.access_token, "token_type": self.token_type}
        for name in (
            "refresh_token",
            "expires_at",
            "issued_at",
            "scope",
            "refresh_expires_at",
            "refresh_at",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.extra:
            data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: object) -> Token:
        """Rebuild a token from :meth:`to_dict` output.

        Raises:
            ValueError: ``data`` is not such a dict. The message names the problem,
                never a secret.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a stored token must be a JSON object, not {type(data).__name__}")
        unknown = set(data) - _DICT_FIELDS
        if unknown:
            # Name them only when they look like field names: a damaged store may hold
            # anything in their place, a secret too.
            names = sorted(str(name) for name in unknown)
            if all(name.isidentifier() and len(name) <= 32 for name in names):
                raise ValueError(f"a stored token has unknown fields: {names}")
            raise ValueError(f"a stored token has {len(names)} unknown fields")
        if "access_token" not in data:
            raise ValueError("a stored token has no access_token")
        extra = data.get("extra", {})
        if not isinstance(extra, Mapping):
            raise ValueError("a stored token's extra must be a JSON object")
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=data.get("expires_at"),
            token_type=data.get("token_type", "Bearer"),
            scope=data.get("scope"),
            issued_at=data.get("issued_at"),
            extra=extra,
            refresh_expires_at=data.get("refresh_expires_at"),
            refresh_at=data.get("refresh_at"),
        )


def _is_finite_number(value: object) -> bool:
    number = json_number(value)
    return number is not None and math.isfinite(number)


def _parse_expires_in(value: object, name: str = "expires_in") -> float | None:
    """Seconds from an ``expires_in`` field, or None when absent or ``0`` (unknown).

    Numeric strings (``"3599"``) are accepted: some identity providers send them. ``0``
    is what some (Mailchimp) send for a token that does not expire: it is used until
    refused. ``name`` is the field's name, for messages.
    """
    if value is None:
        return None
    number = json_number(value, strings=True)
    if isinstance(value, str) and (number is None or not math.isfinite(number)):
        raise InvalidTokenResponseError(
            f"the token response's {name} is a string that is not a number of seconds"
        )
    if number is None or (math.isinf(number) and not isinstance(value, int)):
        raise InvalidTokenResponseError(
            f"the token response's {name} is not a number (got {type(value).__name__})"
        )
    if number == 0:
        return None
    if number < 0:
        raise InvalidTokenResponseError(
            f"the token response's {name} is not positive: the token would be born expired"
        )
    if number > MAX_EXPIRES_IN:
        raise InvalidTokenResponseError(
            f"the token response's {name} is more than ten years: refusing to trust it"
        )
    return number


def _parse_hint(payload: Mapping[str, Any], name: str, modelled: set[str]) -> float | None:
    """Seconds from the optional field ``name``, or None when absent, 0 or unreadable.

    These fields only inform, so a value that cannot be read costs the field, not the
    token: it is logged (by name, never its value) and stays in ``extra``. A readable
    one joins ``modelled``, the fields not copied into ``extra``.
    """
    if name not in payload:
        return None
    try:
        seconds = _parse_expires_in(payload[name], name)
    except InvalidTokenResponseError as exc:
        logger.debug("ignoring a field of the token response: %s", exc)
        return None
    modelled.add(name)
    return seconds


def _parse_scope(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(value)
    raise InvalidTokenResponseError("the token response's scope is not a string")
