"""The JWS building blocks, checked against RFC examples and an independent verifier
(joserfc): base64url, compact JSON, thumbprints, client_secret_jwt, and the extras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from requests_refresh import _jose
from requests_refresh._jwk import thumbprint

jws = pytest.importorskip("joserfc.jws")
jwk = pytest.importorskip("joserfc.jwk")

ROOT = Path(__file__).resolve().parent.parent

# RFC 7638 section 3.1: an RSA key and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
    "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
# RFC 7515 appendix A.3: an ES256 JWS and the public key that verifies it.
RFC7515_A3 = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
RFC7515_A3_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
SECRET = "s" * 40


def test_rfc7638_thumbprint_example() -> None:
    """The thumbprint of RFC 7638's RSA key is the one the RFC gives, extra members ignored."""
    key = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc9449_jkt_example() -> None:
    """The thumbprint of RFC 9449's example proof key is the ``jkt`` of its section 6.1."""
    key = {
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256",
    }
    assert thumbprint(key) == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


def test_thumbprint_refuses_symmetric_and_incomplete_keys() -> None:
    """A thumbprint needs a public EC, OKP or RSA key with all its required members."""
    with pytest.raises(ValueError, match="thumbprint"):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(ValueError, match="thumbprint"):
        thumbprint({"kty": "EC", "crv": "P-256", "x": "AA"})


def test_rfc7515_a3_encoding() -> None:
    """Our base64url and JSON give RFC 7515 A.3's header and payload segments."""
    header, payload, signature = RFC7515_A3.split(".")
    assert _jose.encode_segment({"alg": "ES256"}) == header
    raw = _jose.b64url_decode(payload)
    assert _jose.b64url(raw) == payload
    assert len(_jose.b64url_decode(signature)) == 64  # ES256: r || s, 32 bytes each
    verified = jws.deserialize_compact(
        RFC7515_A3, jwk.ECKey.import_key(RFC7515_A3_KEY), algorithms=["ES256"]
    )
    assert verified.payload == raw


@pytest.mark.parametrize("size", range(6))
def test_base64url_has_no_padding_and_round_trips(size: int) -> None:
    """base64url text has no '=', '+' or '/', and decodes to the same bytes."""
    data = bytes(range(250, 256))[:size] + b"\xfb\xff"
    text = _jose.b64url(data)
    assert not set(text) & set("=+/")
    assert _jose.b64url_decode(text) == data


def test_base64url_refuses_other_text() -> None:
    """Text outside the base64url alphabet is refused with a ValueError."""
    with pytest.raises(ValueError, match="base64url"):
        _jose.b64url_decode("ab+/")


def test_compact_json_is_deterministic() -> None:
    """Same mapping, same bytes: sorted keys, no whitespace, UTF-8."""
    assert _jose.compact_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert _jose.compact_json({"a": "é", "b": 1}) == _jose.compact_json({"b": 1, "a": "é"})


def test_secret_assertion_verifies_with_hs256() -> None:
    """client_secret_jwt: HS256 over the secret, RFC 7523 claims, verified by joserfc."""
    before = int(time.time())
    token = _jose.secret_assertion("client-1", SECRET, "https://as.example/token")
    key = jwk.OctKey.import_key(SECRET)
    verified = jws.deserialize_compact(token, key, algorithms=["HS256"])
    assert verified.protected == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(verified.payload)
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["aud"] == "https://as.example/token"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60
    assert len(_jose.b64url_decode(claims["jti"])) >= 12


def test_secret_assertion_is_new_each_call() -> None:
    """Two assertions never share a jti."""
    first, second = (
        json.loads(_jose.b64url_decode(_jose.secret_assertion("c", SECRET, "a").split(".")[1]))
        for _ in range(2)
    )
    assert first["jti"] != second["jti"]


def test_secret_assertion_refuses_short_secrets_without_quoting_them() -> None:
    """A secret shorter than 32 bytes is refused (RFC 7518 3.2); the message omits it."""
    with pytest.raises(ValueError, match="32 bytes") as caught:
        _jose.secret_assertion("client-1", "short-secret-value", "https://as.example/token")
    assert "short-secret-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("client_id", "audience", "lifetime"),
    [("", "aud", 60), ("cid", "", 60), ("cid", "aud", 0), ("cid", "aud", float("inf"))],
)
def test_assertion_claims_refuse_bad_arguments(
    client_id: str, audience: str, lifetime: float
) -> None:
    """An empty client ID or audience, or a lifetime not a positive finite number, is refused."""
    with pytest.raises(ValueError, match=r"client assertion|lifetime"):
        _jose.assertion_claims(client_id, audience, lifetime)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_importing_the_package_does_not_import_cryptography() -> None:
    """`import requests_refresh` in a fresh interpreter leaves cryptography unimported."""
    result = _run("import sys, requests_refresh; print('cryptography' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "extra", "call"),
    [
        ("DPoPKey", "dpop", "DPoPKey.generate()"),
        ("DPoPKey", "dpop", "DPoPKey.from_pem(b'')"),
        ("DPoPKey", "dpop", "DPoPKey.from_jwk({})"),
        ("ClientKey", "keys", "ClientKey.generate()"),
        ("ClientKey", "keys", "ClientKey.from_pem(b'')"),
        ("ClientKey", "keys", "ClientKey.from_jwk({})"),
    ],
)
def test_missing_cryptography_names_the_extra(name: str, extra: str, call: str) -> None:
    """Without cryptography, making a key raises ImportError naming the extra to install."""
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        f"from requests_refresh import {name}\n"
        "try:\n"
        f"    {call}\n"
        "except ImportError as exc:\n"
        "    assert exc.__cause__ is not None\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('made a key without cryptography')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'requests-refresh[{extra}]'" in result.stdout


def test_client_secret_jwt_needs_no_cryptography() -> None:
    """client_secret_jwt is HMAC from the standard library: it works without cryptography."""
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "from requests_refresh._jose import secret_assertion\n"
        f"print(secret_assertion('c', {SECRET!r}, 'a').count('.'))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
