"""ClientKey: RFC 7523 client assertions that an independent verifier (joserfc) accepts,
the public JWK to register, and the certificate thumbprint Microsoft Entra ID asks for."""

from __future__ import annotations

import datetime
import hashlib
import json
import pickle
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from requests_refresh import ClientKey
from requests_refresh._jose import b64url, b64url_decode

jws = pytest.importorskip("joserfc.jws")
jwk = pytest.importorskip("joserfc.jwk")
# RFC 9864 deprecates "EdDSA" for "Ed25519"; servers still name it "EdDSA".
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ALGS = ["ES256", "EdDSA", "RS256", "PS256"]
AUDIENCE = "https://login.example/tenant/oauth2/v2.0/token"


def verify(token: str, public: dict[str, str], alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of an assertion, after joserfc checked its signature."""
    verified = jws.deserialize_compact(token, jwk.import_key(public), algorithms=[alg])
    return dict(verified.protected), json.loads(verified.payload)


def certificate_for(key_pem: bytes) -> bytes:
    """A self-signed PEM certificate for the private key of ``key_pem``."""

    private = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("alg", ALGS)
def test_assertion_verifies_with_the_registered_jwk(alg: str) -> None:
    """An assertion verifies with public_jwk and has RFC 7523's claims and header."""
    key = ClientKey.generate(alg, kid="key-1")
    before = int(time.time())
    header, claims = verify(key.client_assertion("client-1", AUDIENCE), key.public_jwk, alg)
    assert header == {"alg": alg, "typ": "JWT", "kid": "key-1"}
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["aud"] == AUDIENCE
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60
    assert len(b64url_decode(claims["jti"])) >= 12


def test_each_assertion_is_new() -> None:
    """Two assertions never share a jti; the lifetime is the caller's."""
    key = ClientKey.generate()
    tokens = [key.client_assertion("c", AUDIENCE, lifetime=30) for _ in range(50)]
    claims = [json.loads(b64url_decode(t.split(".")[1])) for t in tokens]
    assert len({c["jti"] for c in claims}) == 50
    assert all(c["exp"] - c["iat"] == 30 for c in claims)


def test_default_algorithms_by_key_type() -> None:
    """RSA signs RS256 unless told PS256; P-256 ES256; Ed25519 EdDSA."""
    rsa_pem = ClientKey.generate("RS256").to_pem()
    assert ClientKey.from_pem(rsa_pem).alg == "RS256"
    assert ClientKey.from_pem(rsa_pem, alg="PS256").alg == "PS256"
    assert ClientKey.from_pem(ClientKey.generate("ES256").to_pem()).alg == "ES256"
    assert ClientKey.from_pem(ClientKey.generate("EdDSA").to_pem()).alg == "EdDSA"
    with pytest.raises(ValueError, match="EC key signs with ES256"):
        ClientKey.from_pem(ClientKey.generate().to_pem(), alg="RS256")


def test_public_jwk_is_registrable_and_public() -> None:
    """public_jwk has use, alg and kid, no private member, and joserfc's thumbprint."""
    key = ClientKey.generate("RS256", kid="k")
    public = key.public_jwk
    assert public["use"] == "sig"
    assert public["alg"] == "RS256"
    assert public["kid"] == "k"
    assert not set(public) & {"d", "p", "q", "dp", "dq", "qi"}
    assert jwk.import_key(public).thumbprint() == key.thumbprint


def test_from_jwk_keeps_kid_and_alg() -> None:
    """A private JWK's kid and alg are kept, and the key signs what its public JWK verifies."""
    original = ClientKey.generate("PS256", kid="2024-01")
    again = ClientKey.from_jwk(original.private_jwk())
    assert (again.kid, again.alg) == ("2024-01", "PS256")
    assert again == original
    verify(again.client_assertion("c", AUDIENCE), original.public_jwk, "PS256")


def test_from_jwk_refuses_a_mismatched_key() -> None:
    """A private JWK whose public members belong to another key is refused."""
    private = ClientKey.generate().private_jwk()
    with pytest.raises(ValueError, match="do not belong"):
        ClientKey.from_jwk({**private, "y": ClientKey.generate().public_jwk["y"]})


def test_encrypted_pem_round_trip() -> None:
    """A PEM written with a password reads back with it, and not without."""
    key = ClientKey.generate(kid="k")
    pem = key.to_pem(b"pw")
    assert ClientKey.from_pem(pem, kid="k", password=b"pw") == key
    with pytest.raises(ValueError, match="password"):
        ClientKey.from_pem(pem, kid="k")


def test_certificate_thumbprint_goes_in_the_header() -> None:
    """With a certificate, x5t#S256 is its SHA-256 thumbprint, in the header and the JWK."""

    pem = ClientKey.generate("RS256").to_pem()
    cert = certificate_for(pem)
    key = ClientKey.from_pem(pem, certificate=cert, kid="entra")
    der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    expected = b64url(hashlib.sha256(der).digest())
    assert key.x5t_s256 == expected
    assert key.public_jwk["x5t#S256"] == expected
    header, _ = verify(key.client_assertion("c", AUDIENCE), key.public_jwk, "RS256")
    assert header["x5t#S256"] == expected


def test_certificate_of_another_key_is_refused() -> None:
    """A certificate issued for another key is refused."""
    cert = certificate_for(ClientKey.generate("RS256").to_pem())
    with pytest.raises(ValueError, match="another key"):
        ClientKey.from_pem(ClientKey.generate("RS256").to_pem(), certificate=cert)


def test_repr_shows_alg_and_kid_only() -> None:
    """repr and str show alg and kid, no key material; a key refuses to pickle."""
    key = ClientKey.generate("EdDSA", kid="k-1")
    text = repr(key) + str(key)
    assert text.startswith("ClientKey(alg='EdDSA', kid='k-1')")
    assert key.private_jwk()["d"] not in text
    assert key.public_jwk["x"] not in text
    with pytest.raises(TypeError, match="does not pickle"):
        pickle.dumps(key)


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384"])
def test_generate_refuses_unknown_algorithms(alg: str) -> None:
    """none, symmetric and unsupported algorithms make no client key."""
    with pytest.raises(ValueError, match="cannot make a signing key"):
        ClientKey.generate(alg)
