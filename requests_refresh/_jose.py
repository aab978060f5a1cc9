"""The JWS we need: base64url, compact JSON, compact serialization, assertions.

A compact JWS (RFC 7515 section 7.1) is ``header.payload.signature``, each part
base64url-encoded without padding. The header and the payload are JSON; ours is compact
(no whitespace) and deterministic (sorted keys), so that the same input gives the same
bytes. Signing itself is done by ``cryptography``'s primitives (see :mod:`._jwk`, which
builds the signers); HS256 is the standard library's HMAC.

Nothing here imports ``cryptography``: :func:`require_cryptography` does, when a key is
made, and names the extra to install when it is missing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._values import check_seconds

__all__ = [
    "ASSERTION_LIFETIME",
    "HMAC_MIN_SECRET",
    "Signer",
    "assertion_claims",
    "b64url",
    "b64url_decode",
    "compact_json",
    "encode_segment",
    "new_jti",
    "require_cryptography",
    "secret_assertion",
    "sign_compact",
]

#: Signs the JWS signing input (``header.payload`` as ASCII bytes), returns the signature.
Signer = Callable[[bytes], bytes]

#: Seconds a client assertion is valid (RFC 7523 section 3: "a reasonable short time").
ASSERTION_LIFETIME = 60
#: Bytes of a client secret used as an HS256 key, at least (RFC 7518 section 3.2: a key
#: as long as the hash output, 256 bits).
HMAC_MIN_SECRET = 32
#: Random bytes in a ``jti``: 128 bits (RFC 9449 asks for 96 at least).
_JTI_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def require_cryptography(extra: str) -> None:
    """Import ``cryptography``, or raise an ``ImportError`` naming ``extra`` to install.

    Raises:
        ImportError: ``cryptography`` is not installed; the original error is chained.
    """
    try:
        import cryptography.hazmat.primitives.asymmetric  # noqa: F401, PLC0415 - optional
    except ImportError as exc:
        raise ImportError(
            "signing keys need the 'cryptography' package: "
            f"pip install 'requests-refresh[{extra}]'"
        ) from exc


def b64url(data: bytes) -> str:
    """``data`` in base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of base64url ``text`` (padding optional).

    Raises:
        ValueError: ``text`` is not base64url.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a base64url string, not {type(text).__name__}")
    if not _BASE64URL.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        raise ValueError("a value is not valid base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(value: Mapping[str, Any]) -> bytes:
    """``value`` as UTF-8 JSON with sorted keys and no whitespace: same input, same bytes."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def encode_segment(value: Mapping[str, Any]) -> str:
    """``value`` as one part of a compact JWS: base64url of its compact JSON."""
    return b64url(compact_json(value))


def sign_compact(header_segment: str, claims: Mapping[str, Any], sign: Signer) -> str:
    """A compact JWS: the encoded header (made once per key), the claims, the signature."""
    signing_input = f"{header_segment}.{encode_segment(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


def new_jti() -> str:
    """A fresh JWT ID: 128 random bits, base64url (22 characters)."""
    return secrets.token_urlsafe(_JTI_BYTES)


def assertion_claims(
    client_id: str, audience: str, lifetime: float = ASSERTION_LIFETIME
) -> dict[str, Any]:
    """The claims of a client assertion (RFC 7523 section 3), issued now.

    ``iss`` and ``sub`` are the client ID, ``aud`` the audience as one string (the token
    endpoint, or the issuer where the server asks for it), a fresh ``jti``, ``iat`` now
    and ``exp`` ``lifetime`` seconds later.

    Raises:
        ValueError: an empty client ID or audience, or a lifetime that is not more than 0.
    """
    for name, value in (("client_id", client_id), ("audience", audience)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"a client assertion needs a {name}: a non-empty string")
    seconds = check_seconds("lifetime", lifetime, allow_zero=False)
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": new_jti(),
        "iat": now,
        "exp": now + max(1, int(seconds)),
    }


def secret_assertion(
    client_id: str,
    client_secret: str,
    audience: str,
    *,
    lifetime: float = ASSERTION_LIFETIME,
) -> str:
    """A ``client_secret_jwt`` assertion: the claims of RFC 7523 section 3, signed HS256.

    The client secret is the HMAC key (RFC 7518 section 3.2). Each call makes a new
    assertion (fresh ``jti``); none is cached.

    Raises:
        ValueError: the secret is shorter than 32 bytes (too short a key for HS256: ask
            the server for a longer secret, or use ``private_key_jwt``), or see
            :func:`assertion_claims`.
    """
    key = client_secret.encode("utf-8") if isinstance(client_secret, str) else b""
    if len(key) < HMAC_MIN_SECRET:
        raise ValueError(
            f"client_secret_jwt needs a client secret of {HMAC_MIN_SECRET} bytes or more "
            "(RFC 7518 section 3.2); ask the server for a longer one, or use a client key"
        )
    header = encode_segment({"alg": "HS256", "typ": "JWT"})
    claims = assertion_claims(client_id, audience, lifetime)
    return sign_compact(header, claims, lambda data: hmac.digest(key, data, hashlib.sha256))
