"""DPoP keys (RFC 9449): the key a client proves possession of, and its proofs.

A :class:`DPoPKey` signs one proof per request: a JWT whose header carries the public
key, and whose claims name the request (``htm``, ``htu``), are fresh (``jti``, ``iat``),
and, at a resource server, are bound to the access token (``ath``). The token endpoint
binds the tokens it issues to the key's thumbprint (``jkt``), so the key must live as
long as the tokens: keep it (``to_pem``) where the tokens are kept.

Needs ``cryptography``: ``pip install 'requests-refresh[dpop]'``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, NoReturn

import requests

from ._jose import b64url, encode_segment, new_jti, require_cryptography, sign_compact
from ._jwk import SigningKey

__all__ = ["DPoPKey", "access_token_hash", "normalize_htu"]

_EXTRA = "dpop"
#: Algorithms a DPoP key signs with: asymmetric only (RFC 9449 section 4.2).
DPOP_ALGORITHMS = ("ES256", "EdDSA", "RS256", "PS256")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url SHA-256 of the ASCII access token (RFC 9449 4.2).

    Raises:
        ValueError: the token is not ASCII (the message does not quote it).
    """
    try:
        data = access_token.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("an access token is ASCII text (RFC 6750 section 2.1)") from None
    return b64url(hashlib.sha256(data).digest())


@functools.lru_cache(maxsize=256)
def normalize_htu(url: str) -> str:
    """The ``htu`` of a request to ``url``: the URL ``requests`` sends, without query and
    fragment (RFC 9449 section 4.2).

    The URL is prepared as ``requests`` prepares it (scheme and host lower-cased, a
    non-ASCII host IDNA-encoded, dot segments removed, the path percent-encoded, an empty
    path as ``/``), then userinfo, query and fragment are dropped, and the port too when
    it is the scheme's default (RFC 3986 section 6.2.3; ``http.client`` leaves it out of
    ``Host`` as well). The path is otherwise kept as it goes on the wire, so that a server
    that compares without normalising (RFC 9449 section 4.3 asks it to) still matches.

    Raises:
        ValueError: not an absolute http(s) URL with a host; the message does not quote
            it (userinfo may hold a password).
    """
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        parts = urllib.parse.urlsplit(prepared.url or "")
        port = parts.port
    except (requests.RequestException, ValueError):
        raise ValueError(
            "htu must be an absolute http(s) URL with a valid host and port"
        ) from None
    host = parts.hostname  # without userinfo and brackets
    if parts.scheme not in _DEFAULT_PORTS or not host:
        raise ValueError("htu must be an absolute http(s) URL with a host")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


class DPoPKey:
    """A key for DPoP proofs (RFC 9449): ES256 (P-256) or EdDSA (Ed25519), or RSA.

    Make one with :meth:`generate`, keep it with :meth:`to_pem` (or :meth:`private_jwk`),
    load it again with :meth:`from_pem` (or :meth:`from_jwk`). Equal keys have equal
    thumbprints. ``repr()`` shows the algorithm and thumbprint, never key material, and
    a key refuses to pickle: write it out explicitly, where secrets belong.
    """

    __slots__ = ("_ath", "_header", "_key")

    def __init__(self, key: SigningKey) -> None:
        """Wrap a signing key; use :meth:`generate`, :meth:`from_pem` or :meth:`from_jwk`."""
        if key.alg not in DPOP_ALGORITHMS:  # pragma: no cover - SigningKey is asymmetric
            raise ValueError(f"a DPoP key signs with one of {', '.join(DPOP_ALGORITHMS)}")
        self._key = key
        self._header = encode_segment({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk})
        self._ath: tuple[str, str] = ("", "")  # the last (access token, its ath)

    @classmethod
    def generate(cls, alg: str = "ES256") -> DPoPKey:
        """A new random key: P-256 for ES256 (the default), Ed25519 for EdDSA.

        Raises:
            ImportError: ``cryptography`` is missing (``pip install 'requests-refresh[dpop]'``).
            ValueError: ``alg`` is not an asymmetric algorithm (``none``, HS256...).
        """
        require_cryptography(_EXTRA)
        if alg not in DPOP_ALGORITHMS:
            _refuse(alg)
        return cls(SigningKey.generate(alg))

    @classmethod
    def from_pem(
        cls, data: bytes | str, password: bytes | None = None, *, alg: str | None = None
    ) -> DPoPKey:
        """The key of a PEM private key (as written by :meth:`to_pem`).

        ``alg``: for an RSA key, RS256 (the default) or PS256.

        Raises:
            ImportError: ``cryptography`` is missing.
            ValueError: not a P-256, Ed25519 or RSA private key, or a wrong password.
        """
        require_cryptography(_EXTRA)
        return cls(SigningKey.from_pem(data, password, alg))

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> DPoPKey:
        """The key of a private JWK (as returned by :meth:`private_jwk`); ``alg`` is kept.

        Raises:
            ImportError: ``cryptography`` is missing.
            ValueError: not a private EC P-256, Ed25519 or RSA JWK, or its public members
                do not belong to its private key.
        """
        require_cryptography(_EXTRA)
        alg = jwk.get("alg") if isinstance(jwk, Mapping) else None
        if alg is not None and alg not in DPOP_ALGORITHMS:
            _refuse(alg)
        return cls(SigningKey.from_jwk(jwk, alg))

    @property
    def alg(self) -> str:
        """The JWS algorithm of its proofs."""
        return self._key.alg

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (a copy), as it goes in each proof's header."""
        return dict(self._key.public_jwk)

    @property
    def thumbprint(self) -> str:
        """Its RFC 7638 SHA-256 thumbprint: the ``jkt`` tokens are bound to."""
        return self._key.thumbprint

    def private_jwk(self) -> dict[str, str]:
        """The private key as a JWK, with ``alg``. A secret: store it as one."""
        return {**self._key.private_jwk(), "alg": self.alg}

    def to_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted with ``password`` when one is given."""
        return self._key.to_pem(password)

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A new DPoP proof (RFC 9449 section 4.2) for one request.

        Args:
            htm: the request's method (sent upper-cased, as ``requests`` does).
            htu: the request's URL; see :func:`normalize_htu` for what is kept.
            access_token: at a resource server, the access token: adds its ``ath``.
                The hash of the last token is remembered, so the same token costs one
                hash, not one per proof.
            nonce: the server's last ``DPoP-Nonce``, when it asked for one.

        Raises:
            ValueError: ``htm`` is not an HTTP method name or ``htu`` not an http(s) URL.
        """
        method = htm.upper() if isinstance(htm, str) else ""
        if not _TOKEN.fullmatch(method):
            raise ValueError("htm must be an HTTP method name, such as 'GET' or 'POST'")
        claims: dict[str, Any] = {
            "jti": new_jti(),
            "htm": method,
            "htu": normalize_htu(htu),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = self._access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return sign_compact(self._header, claims, self._key.sign)

    def _access_token_hash(self, access_token: str) -> str:
        token, ath = self._ath  # one tuple, read and replaced whole: no lock needed
        if token != access_token or not ath:
            ath = access_token_hash(access_token)
            self._ath = (access_token, ath)
        return ath

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DPoPKey):
            return NotImplemented
        return self.thumbprint == other.thumbprint

    def __hash__(self) -> int:
        return hash(self.thumbprint)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, thumbprint={self.thumbprint!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a DPoPKey does not pickle (its private key would travel unnoticed): "
            "pass key.to_pem(password) or key.private_jwk() and load it on the other side"
        )

    def __copy__(self) -> DPoPKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> DPoPKey:
        return self


def _refuse(alg: object) -> NoReturn:
    raise ValueError(
        f"a DPoP key signs with one of {', '.join(DPOP_ALGORITHMS)}, not {str(alg)[:20]!r} "
        "(never 'none' nor a shared secret)"
    )
