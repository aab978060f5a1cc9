"""DPoPKey: proofs that an independent verifier (joserfc) accepts, with the claims of
RFC 9449 section 4.2, keys kept as PEM or JWK, and no key material where it could leak."""

from __future__ import annotations

import copy
import json
import pickle
import time
import urllib.parse
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from requests_refresh import DPoPKey
from requests_refresh._jose import b64url_decode
from requests_refresh.dpop import normalize_htu

pytest.importorskip("cryptography")
# RFC 9864 deprecates "EdDSA" for "Ed25519"; RFC 9449 servers still name it "EdDSA".
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
jws = pytest.importorskip("joserfc.jws")
jwk = pytest.importorskip("joserfc.jwk")

ALGS = ["ES256", "EdDSA", "RS256", "PS256"]
TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"  # RFC 9449 section 7.1


@pytest.fixture(scope="module", params=ALGS)
def key(request: pytest.FixtureRequest) -> DPoPKey:
    """A new key of each algorithm."""
    return DPoPKey.generate(request.param)


def verify(proof: str, public: dict[str, str], alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a proof, after joserfc checked its signature."""
    registry = jws.JWSRegistry(algorithms=[alg])
    registry.max_header_length = 2048  # an RSA key in the header is longer than joserfc's 512
    verified = jws.deserialize_compact(proof, jwk.import_key(public), registry=registry)
    return dict(verified.protected), json.loads(verified.payload)


def test_proof_verifies_and_carries_the_claims(key: DPoPKey) -> None:
    """A proof verifies with the public JWK and has typ, alg, jwk, jti, htm, htu, iat."""
    before = int(time.time())
    header, claims = verify(
        key.proof("post", "https://AS.example/token?x=1#f"), key.public_jwk, key.alg
    )
    assert header == {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk}
    assert set(claims) == {"jti", "htm", "htu", "iat"}
    assert claims["htm"] == "POST"
    assert claims["htu"] == "https://as.example/token"
    assert before <= claims["iat"] <= int(time.time())


def test_proof_header_key_verifies_it(key: DPoPKey) -> None:
    """The key in the proof's own header verifies it, as a server does, and has no secret."""
    header = json.loads(b64url_decode(key.proof("GET", "https://rs.example/").split(".")[0]))
    assert "d" not in header["jwk"]
    assert "p" not in header["jwk"]
    verify(key.proof("GET", "https://rs.example/"), header["jwk"], key.alg)


def test_ath_and_nonce(key: DPoPKey) -> None:
    """With an access token the proof has RFC 9449's ath for it; a nonce is carried as given."""
    proof = key.proof("GET", "https://rs.example/r", access_token=TOKEN, nonce="n-1")
    _, claims = verify(proof, key.public_jwk, key.alg)
    assert claims["ath"] == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert claims["nonce"] == "n-1"
    _, other = verify(
        key.proof("GET", "https://rs.example/r", access_token="other"), key.public_jwk, key.alg
    )
    assert other["ath"] != claims["ath"]


def test_jti_is_fresh_and_long() -> None:
    """Every proof has its own jti of at least 96 random bits."""
    key = DPoPKey.generate()
    jtis = [
        json.loads(b64url_decode(key.proof("GET", "https://a.example/").split(".")[1]))["jti"]
        for _ in range(500)
    ]
    assert len(set(jtis)) == len(jtis)
    assert all(len(b64url_decode(jti)) >= 12 for jti in jtis)


@pytest.mark.parametrize("alg", ["none", "HS256", "ES384", "", "es256"])
def test_generate_refuses_none_symmetric_and_unknown(alg: str) -> None:
    """Only asymmetric algorithms make a DPoP key."""
    with pytest.raises(ValueError, match="DPoP key signs with"):
        DPoPKey.generate(alg)


def test_from_jwk_refuses_symmetric_keys() -> None:
    """An oct JWK (a shared secret) is no DPoP key, with or without an alg."""
    with pytest.raises(ValueError, match="DPoP key signs with"):
        DPoPKey.from_jwk({"kty": "oct", "k": "c2VjcmV0c2VjcmV0", "alg": "HS256"})
    with pytest.raises(ValueError, match="not oct"):
        DPoPKey.from_jwk({"kty": "oct", "k": "c2VjcmV0c2VjcmV0"})


@pytest.mark.parametrize("method", ["", "GET /", "G\u00e9T", "GET\n"])
def test_proof_refuses_bad_methods(method: str) -> None:
    """htm must be an HTTP method name."""
    with pytest.raises(ValueError, match="htm"):
        DPoPKey.generate().proof(method, "https://a.example/")


@pytest.mark.parametrize(
    "url", ["ftp://a.example/", "/relative", "https://", "https://a.example:99999/"]
)
def test_proof_refuses_bad_urls(url: str) -> None:
    """htu must be an absolute http(s) URL with a host and a valid port."""
    with pytest.raises(ValueError, match="htu"):
        DPoPKey.generate().proof("GET", url)


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("https://user:pw@Example.COM:443/a/b?q=1#frag", "https://example.com/a/b"),
        ("HTTP://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://example.com:80/x", "https://example.com:80/x"),
        ("https://[::1]:8443/p", "https://[::1]:8443/p"),
        ("https://bücher.example/ä b", "https://xn--bcher-kva.example/%C3%A4%20b"),
        ("https://example.com/a%2Fb/%7e", "https://example.com/a%2Fb/~"),
    ],
)
def test_htu_examples(url: str, htu: str) -> None:
    """htu: no userinfo, query or fragment; lower-case scheme and host; no default port."""
    assert normalize_htu(url) == htu


_hosts = st.sampled_from(
    ["example.com", "API.Example.org", "bücher.example", "127.0.0.1", "[::1]"]
)
_ports = st.sampled_from(["", ":80", ":443", ":8443"])
_paths = st.lists(st.text(alphabet="aZ09-._~%20é /!$&'()*+,;=:@", max_size=8), max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTPS"]),
    userinfo=st.sampled_from(["", "user@", "u:p@"]),
    host=_hosts,
    port=_ports,
    segments=_paths,
    query=st.sampled_from(["", "?a=1", "?"]),
    fragment=st.sampled_from(["", "#top", "#"]),
    method=st.sampled_from(["get", "POST", "Patch", "DELETE"]),
)
def test_htu_is_what_requests_sends(
    scheme: str,
    userinfo: str,
    host: str,
    port: str,
    segments: list[str],
    query: str,
    fragment: str,
    method: str,
) -> None:
    """htu is the URL requests sends, minus userinfo, query, fragment and a default port."""
    url = f"{scheme}://{userinfo}{host}{port}/{'/'.join(segments)}{query}{fragment}"
    prepared = requests.Request(method, url).prepare()
    assert prepared.method == method.upper()
    assert prepared.url is not None
    sent = urllib.parse.urlsplit(prepared.url)
    expected_port = None if sent.port == {"http": 80, "https": 443}[sent.scheme] else sent.port
    htu = normalize_htu(url)
    assert htu == normalize_htu(prepared.url)  # same answer before and after requests
    parts = urllib.parse.urlsplit(htu)
    assert (parts.scheme, parts.hostname, parts.port) == (
        sent.scheme,
        sent.hostname,
        expected_port,
    )
    assert (parts.username, parts.query, parts.fragment) == (None, "", "")
    assert parts.path == sent.path


def test_pem_round_trip(key: DPoPKey) -> None:
    """to_pem then from_pem gives the same key, which signs proofs the old key's JWK verifies."""
    again = DPoPKey.from_pem(key.to_pem(), alg=key.alg)
    assert again == key
    assert hash(again) == hash(key)
    assert again.alg == key.alg
    verify(again.proof("GET", "https://a.example/"), key.public_jwk, key.alg)


def test_encrypted_pem_needs_its_password() -> None:
    """A PEM written with a password is encrypted, and reads back only with that password."""
    key = DPoPKey.generate()
    pem = key.to_pem(b"correct horse")
    assert b"ENCRYPTED" in pem
    assert DPoPKey.from_pem(pem.decode(), b"correct horse") == key
    with pytest.raises(ValueError, match="password"):
        DPoPKey.from_pem(pem)
    with pytest.raises(ValueError, match="password"):
        DPoPKey.from_pem(pem, b"wrong")


def test_jwk_round_trip_is_checked_by_joserfc(key: DPoPKey) -> None:
    """private_jwk imports into joserfc, whose public key is ours; from_jwk gives the key back."""
    private = key.private_jwk()
    theirs = jwk.import_key(private)
    assert theirs.as_dict(private=False) | {"alg": key.alg} == key.public_jwk | {"alg": key.alg}
    assert theirs.thumbprint() == key.thumbprint
    again = DPoPKey.from_jwk(private)
    assert again == key
    assert again.alg == key.alg


def test_thumbprint_matches_joserfc(key: DPoPKey) -> None:
    """Our RFC 7638 thumbprint (jkt) is joserfc's."""
    assert jwk.import_key(key.public_jwk).thumbprint() == key.thumbprint


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_mismatched_public_part_is_refused(alg: str) -> None:
    """A JWK whose public members belong to another key is refused, quoting none of them."""
    private = DPoPKey.generate(alg).private_jwk()
    other = DPoPKey.generate(alg).public_jwk
    member = "n" if alg == "RS256" else "x"
    mixed = {**private, member: other[member]}
    with pytest.raises(ValueError, match="JWK") as caught:
        DPoPKey.from_jwk(mixed)
    for value in mixed.values():
        if len(value) > 8:
            assert value not in str(caught.value)


def test_public_jwk_has_no_private_member(key: DPoPKey) -> None:
    """The public JWK has only public members, and changing the copy leaves the key alone."""
    public = key.public_jwk
    assert not set(public) & {"d", "p", "q", "dp", "dq", "qi"}
    public["x"] = "changed"
    assert key.public_jwk != public


def test_repr_shows_alg_and_thumbprint_only(key: DPoPKey) -> None:
    """repr and str name the algorithm and thumbprint, never a private member."""
    text = repr(key) + str(key)
    assert key.alg in text
    assert key.thumbprint in text
    for name, value in key.private_jwk().items():
        if name not in ("kty", "crv", "alg", "e"):
            assert value not in text


def test_keys_do_not_pickle_but_copy() -> None:
    """Pickling a key fails with advice (no accidental private key); copies are the key."""
    key = DPoPKey.generate()
    with pytest.raises(TypeError, match="to_pem"):
        pickle.dumps(key)
    assert copy.copy(key) is key
    assert copy.deepcopy(key) is key


def test_proof_of_rsa_pem_defaults_to_rs256_and_takes_ps256() -> None:
    """An RSA PEM signs RS256 unless told PS256; an EC key refuses PS256."""
    pem = DPoPKey.generate("PS256").to_pem()
    assert DPoPKey.from_pem(pem).alg == "RS256"
    assert DPoPKey.from_pem(pem, alg="PS256").alg == "PS256"
    with pytest.raises(ValueError, match="EC key signs with ES256"):
        DPoPKey.from_pem(DPoPKey.generate().to_pem(), alg="PS256")
