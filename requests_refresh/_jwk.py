"""Asymmetric signing keys: make, load, export as PEM and JWK, thumbprint, sign.

:class:`SigningKey` holds one private key (EC P-256, Ed25519 or RSA) and the JWS algorithm
it signs with; :class:`~requests_refresh.DPoPKey` and :class:`~requests_refresh.ClientKey`
are built on it. ``cryptography`` is imported inside the functions only, after
:func:`._jose.require_cryptography` has checked that it is there.

Algorithms (RFC 7518 section 3, RFC 8037): ES256 (P-256, the signature is ``r || s``,
64 bytes), EdDSA (Ed25519), RS256 (RSASSA-PKCS1-v1_5) and PS256 (RSASSA-PSS, SHA-256,
MGF1-SHA-256, salt of 32 bytes), all with SHA-256. ``none`` and the symmetric HS* are
not signing keys here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._jose import Signer, b64url, b64url_decode, compact_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    PrivateKey = EllipticCurvePrivateKey | Ed25519PrivateKey | RSAPrivateKey

__all__ = ["ALGORITHMS", "SigningKey", "thumbprint"]

#: The JWS algorithms a signing key may use, by key type.
ALGORITHMS = {"EC": ("ES256",), "OKP": ("EdDSA",), "RSA": ("RS256", "PS256")}
#: Bits of an RSA key, at least (RFC 7518 section 3.3), and of one we generate.
_RSA_BITS = 2048
#: The members of a public JWK that its RFC 7638 thumbprint covers, by key type.
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
_PRIVATE = {"EC": ("d",), "OKP": ("d",), "RSA": ("d", "p", "q", "dp", "dq", "qi")}


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members, base64url.

    Raises:
        ValueError: the key type is not EC, OKP or RSA, or a required member is missing.
    """
    members = _REQUIRED.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise ValueError("a thumbprint needs an EC, OKP or RSA public JWK with its members")
    return b64url(hashlib.sha256(compact_json({name: jwk[name] for name in members})).digest())


def _int_b64(number: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (number.bit_length() + 7) // 8)
    return b64url(number.to_bytes(size, "big"))


def _b64_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"the JWK has no {name!r} member")
    return int.from_bytes(b64url_decode(value), "big")


class SigningKey:
    """A private key and the JWS algorithm it signs with; immutable once made.

    Args:
        private_key: an EC P-256, Ed25519 or RSA (2048 bits or more) private key.
        alg: ES256, EdDSA, RS256 or PS256, fitting the key; None: the key type's first.

    Raises:
        ValueError: another kind of key, or an algorithm that does not fit it.
    """

    __slots__ = ("alg", "kty", "private_key", "public_jwk", "sign", "thumbprint")

    def __init__(self, private_key: PrivateKey, alg: str | None = None) -> None:
        self.private_key = private_key
        self.kty = _key_type(private_key)
        allowed = ALGORITHMS[self.kty]
        if alg is None:
            alg = allowed[0]
        if alg not in allowed:
            raise ValueError(
                f"a {self.kty} key signs with {' or '.join(allowed)}, not {str(alg)[:20]!r}"
            )
        self.alg: str = alg
        self.public_jwk: dict[str, str] = _public_jwk(private_key)
        self.thumbprint: str = thumbprint(self.public_jwk)
        self.sign: Signer = _signer(private_key, alg)

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        """A new random key for ``alg``: P-256, Ed25519, or RSA of 2048 bits.

        Raises:
            ValueError: ``alg`` is not ES256, EdDSA, RS256 or PS256.
        """
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415

        key: PrivateKey
        if alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        elif alg in ALGORITHMS["RSA"]:
            key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        else:
            known = ", ".join(a for algs in ALGORITHMS.values() for a in algs)
            raise ValueError(
                f"cannot make a signing key for {str(alg)[:20]!r}: use one of {known}"
            )
        return cls(key, alg)

    @classmethod
    def from_pem(
        cls, data: bytes | str, password: bytes | None = None, alg: str | None = None
    ) -> SigningKey:
        """The private key of a PEM text (PKCS#8, or the traditional formats).

        Raises:
            ValueError: not a private key PEM, a wrong or missing password, or an unusable
                key; the message never quotes the PEM.
        """
        from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
            load_pem_private_key,
        )

        raw = data.encode("ascii", "replace") if isinstance(data, str) else data
        try:
            key = load_pem_private_key(raw, password=password)
        except TypeError:
            needed = "is encrypted: pass its password" if password is None else "is not encrypted"
            raise ValueError(f"the PEM private key {needed}") from None
        except ValueError:
            raise ValueError(
                "cannot read a private key from this PEM (or the password is wrong)"
            ) from None
        return cls(key, alg)  # type: ignore[arg-type]  # other key types: refused there

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any], alg: str | None = None) -> SigningKey:
        """The private key of a private JWK, checked against its public members.

        Raises:
            ValueError: not a private EC P-256, Ed25519 or RSA JWK, or a public part that
                does not belong to the private part; the message never quotes a member.
        """
        if not isinstance(jwk, Mapping):
            raise ValueError(f"a JWK is a mapping, not {type(jwk).__name__}")
        kty = jwk.get("kty")
        if kty not in ALGORITHMS:
            raise ValueError("a signing key's JWK has kty EC, OKP or RSA (not oct: no secrets)")
        try:
            key = _private_from_jwk(jwk)
        except ValueError as exc:
            raise ValueError(f"cannot use this {kty} JWK: {exc}") from None
        made = cls(key, alg)
        if any(made.public_jwk[name] != jwk[name] for name in _REQUIRED[kty]):
            raise ValueError(f"this {kty} JWK's public members do not belong to its private key")
        return made

    def private_jwk(self) -> dict[str, str]:
        """The private key as a JWK: public members, then the private ones. A secret."""
        from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

        jwk = dict(self.public_jwk)
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            jwk["d"] = _int_b64(key.private_numbers().private_value, 32)
        elif isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            for name, value in zip(
                _PRIVATE["RSA"],
                (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp),
                strict=True,
            ):
                jwk[name] = _int_b64(value)
        else:
            jwk["d"] = b64url(_raw_private(key))
        return jwk

    def to_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted with ``password`` when one is given."""
        from cryptography.hazmat.primitives import serialization as ser  # noqa: PLC0415

        encryption: ser.KeySerializationEncryption = (
            ser.BestAvailableEncryption(password) if password else ser.NoEncryption()
        )
        return self.private_key.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, encryption
        )


def _key_type(key: object) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415

    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"an EC signing key must be on P-256, not {key.curve.name}")
        return "EC"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "OKP"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _RSA_BITS:
            raise ValueError(f"an RSA signing key needs {_RSA_BITS} bits or more")
        return "RSA"
    raise ValueError(
        f"a signing key is an EC P-256, Ed25519 or RSA private key, not {type(key).__name__}"
    )


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser  # noqa: PLC0415

    return key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())


def _public_jwk(key: PrivateKey) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization as ser  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    if isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _int_b64(point.x, 32),
            "y": _int_b64(point.y, 32),
        }
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    raw = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def _private_from_jwk(jwk: Mapping[str, Any]) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: PLC0415

    kty = jwk["kty"]
    if kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ValueError("an EC key must be on crv P-256")
        return ec.derive_private_key(_b64_int(jwk, "d"), ec.SECP256R1())
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise ValueError("an OKP key must be crv Ed25519")
        raw = b64url_decode(jwk.get("d") or "")
        if len(raw) != 32:
            raise ValueError("its 'd' member is not 32 bytes")
        return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    d, p, q, dp, dq, qi = (_b64_int(jwk, name) for name in _PRIVATE["RSA"])
    public = rsa.RSAPublicNumbers(_b64_int(jwk, "e"), _b64_int(jwk, "n"))
    # cryptography checks that the numbers make one key (n = p * q, and so on).
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public).private_key()


def _signer(key: PrivateKey, alg: str) -> Signer:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: PLC0415
        decode_dss_signature,
    )

    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(hashes.SHA256())

        def sign_es256(data: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(data, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    if isinstance(key, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            if alg == "PS256"
            else padding.PKCS1v15()
        )
        sha256 = hashes.SHA256()
        return lambda data: key.sign(data, pad, sha256)
    return key.sign
