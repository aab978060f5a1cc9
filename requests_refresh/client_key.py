"""Client keys: a confidential client's private key for ``private_key_jwt`` (RFC 7523).

Instead of a client secret, the client signs a short-lived JWT (a client assertion) with
its private key, and the server checks it with the public key registered for the client
(:attr:`ClientKey.public_jwk`), or with the certificate uploaded for it (Microsoft Entra
ID: pass ``certificate=`` to :meth:`ClientKey.from_pem`).

Needs ``cryptography``: ``pip install 'requests-refresh[keys]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from ._jose import (
    ASSERTION_LIFETIME,
    assertion_claims,
    b64url,
    encode_segment,
    require_cryptography,
    sign_compact,
)
from ._jwk import SigningKey

__all__ = ["ClientKey"]

_EXTRA = "keys"


class ClientKey:
    """A client's private key, its ``kid`` and algorithm, and maybe its certificate.

    The algorithm is RS256 for an RSA key (PS256 on request), ES256 for P-256 and EdDSA
    for Ed25519. ``repr()`` shows the algorithm and ``kid`` only, and a key refuses to
    pickle: load it from where it is kept, in each process.
    """

    __slots__ = ("_header", "_key", "_kid", "_x5t")

    def __init__(self, key: SigningKey, kid: str | None = None, x5t: str | None = None) -> None:
        """Wrap a signing key; use :meth:`generate`, :meth:`from_pem` or :meth:`from_jwk`."""
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise ValueError("kid must be a non-empty string, or None")
        self._key = key
        self._kid = kid
        self._x5t = x5t
        header = {"alg": key.alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
        if x5t is not None:
            header["x5t#S256"] = x5t
        self._header = encode_segment(header)

    @classmethod
    def generate(cls, alg: str = "ES256", kid: str | None = None) -> ClientKey:
        """A new random key: P-256 for ES256 (the default), Ed25519, or RSA 2048 bits.

        Raises:
            ImportError: ``cryptography`` is missing (``pip install 'requests-refresh[keys]'``).
            ValueError: ``alg`` is not ES256, EdDSA, RS256 or PS256.
        """
        require_cryptography(_EXTRA)
        return cls(SigningKey.generate(alg), kid)

    @classmethod
    def from_pem(
        cls,
        data: bytes | str,
        *,
        kid: str | None = None,
        password: bytes | None = None,
        alg: str | None = None,
        certificate: bytes | str | None = None,
    ) -> ClientKey:
        """The key of a PEM private key, with the ``kid`` the server knows it by.

        Args:
            data: the PEM private key (PKCS#8 or traditional), maybe encrypted.
            kid: the key ID registered with the server, sent in each assertion's header.
            password: the PEM's password, when it is encrypted.
            alg: PS256 instead of RS256 for an RSA key; None: the key type's default.
            certificate: the PEM X.509 certificate of this key, as uploaded to the server:
                each assertion's header then carries its SHA-256 thumbprint (``x5t#S256``).

        Raises:
            ImportError: ``cryptography`` is missing.
            ValueError: not a usable private key, a wrong password, or a certificate that
                is not for this key.
        """
        require_cryptography(_EXTRA)
        key = SigningKey.from_pem(data, password, alg)
        x5t = None if certificate is None else _certificate_thumbprint(certificate, key)
        return cls(key, kid, x5t)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> ClientKey:
        """The key of a private JWK; its ``kid`` and ``alg`` members are kept.

        Raises:
            ImportError: ``cryptography`` is missing.
            ValueError: not a private EC P-256, Ed25519 or RSA JWK, its public members do
                not belong to its private key, or its ``alg`` does not fit it.
        """
        require_cryptography(_EXTRA)
        if not isinstance(jwk, Mapping):
            raise ValueError(f"a JWK is a mapping, not {type(jwk).__name__}")
        return cls(SigningKey.from_jwk(jwk, jwk.get("alg")), jwk.get("kid"))

    @property
    def alg(self) -> str:
        """The JWS algorithm of its assertions."""
        return self._key.alg

    @property
    def kid(self) -> str | None:
        """The key ID the server knows the key by, or None."""
        return self._kid

    @property
    def x5t_s256(self) -> str | None:
        """Its certificate's SHA-256 thumbprint, base64url (``x5t#S256``), or None."""
        return self._x5t

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of its public key."""
        return self._key.thumbprint

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key to register with the server: a JWK with ``use``, ``alg``, ``kid``."""
        jwk = {**self._key.public_jwk, "use": "sig", "alg": self.alg}
        if self._kid is not None:
            jwk["kid"] = self._kid
        if self._x5t is not None:
            jwk["x5t#S256"] = self._x5t
        return jwk

    def private_jwk(self) -> dict[str, str]:
        """The private key as a JWK, with ``alg`` and ``kid``. A secret: store it as one."""
        jwk = {**self._key.private_jwk(), "alg": self.alg}
        if self._kid is not None:
            jwk["kid"] = self._kid
        return jwk

    def to_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted with ``password`` when one is given."""
        return self._key.to_pem(password)

    def client_assertion(
        self, client_id: str, audience: str, *, lifetime: float = ASSERTION_LIFETIME
    ) -> str:
        """A new client assertion (RFC 7523 section 3), for ``client_assertion``.

        ``iss`` and ``sub`` are ``client_id``, ``aud`` is ``audience`` (the token endpoint,
        unless the server asks for its issuer), with a fresh ``jti``, ``iat`` now and
        ``exp`` ``lifetime`` seconds later. A new assertion each call: never reuse one.

        Raises:
            ValueError: an empty ``client_id`` or ``audience``, or a lifetime not above 0.
        """
        claims = assertion_claims(client_id, audience, lifetime)
        return sign_compact(self._header, claims, self._key.sign)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientKey):
            return NotImplemented
        return (self.thumbprint, self.alg, self._kid, self._x5t) == (
            other.thumbprint,
            other.alg,
            other._kid,
            other._x5t,
        )

    def __hash__(self) -> int:
        return hash((self.thumbprint, self._kid))

    def __repr__(self) -> str:
        return f"ClientKey(alg={self.alg!r}, kid={self._kid!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a ClientKey does not pickle (its private key would travel unnoticed): "
            "load it from its PEM or JWK in each process"
        )

    def __copy__(self) -> ClientKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientKey:
        return self


def _certificate_thumbprint(certificate: bytes | str, key: SigningKey) -> str:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415

    raw = certificate.encode("ascii", "replace") if isinstance(certificate, str) else certificate
    try:
        cert = x509.load_pem_x509_certificate(raw)
    except ValueError:
        raise ValueError("cannot read an X.509 certificate from this PEM") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.private_key.public_key().public_bytes(*spki):
        raise ValueError("the certificate is for another key: pass the key it was issued for")
    return b64url(cert.fingerprint(hashes.SHA256()))
