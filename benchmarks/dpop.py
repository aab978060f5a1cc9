"""``python -m benchmarks.dpop``: the cost of one DPoP proof, against a bare ECDSA sign.

Prints a table of timeit medians (µs per proof, ES256) for our proof, the bare P-256
ECDSA signature under it, and the JOSE libraries that are installed.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable

from requests_refresh import DPoPKey

URL = "https://api.example.com/resource"
TOKEN = "an-access-token"


def _median_us(call: Callable[[], object], number: int = 2000, repeat: int = 7) -> float:
    return statistics.median(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def _peers(key: DPoPKey) -> dict[str, Callable[[], object]]:
    import json
    import secrets
    import time

    claims = {"htm": "GET", "htu": URL, "ath": "x" * 43}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    private = key.private_jwk()
    found: dict[str, Callable[[], object]] = {}
    try:
        from joserfc import jws
        from joserfc.jwk import ECKey

        jkey = ECKey.import_key(private)
        found["joserfc"] = lambda: jws.serialize_compact(
            header,
            json.dumps({**claims, "jti": secrets.token_urlsafe(16), "iat": int(time.time())}),
            jkey,
        )
    except ImportError:
        pass
    try:
        import jwt

        pem = key.to_pem()
        found["PyJWT"] = lambda: jwt.encode(
            {**claims, "jti": secrets.token_urlsafe(16), "iat": int(time.time())},
            pem,
            algorithm="ES256",
            headers=header,
        )
    except ImportError:
        pass
    try:
        from jwcrypto import jwk
        from jwcrypto import jws as jwcrypto_jws

        ckey = jwk.JWK(**private)

        def jwcrypto_proof() -> str:
            payload = json.dumps({**claims, "jti": secrets.token_urlsafe(16), "iat": 0})
            token = jwcrypto_jws.JWS(payload)
            token.add_signature(ckey, None, json.dumps(header))
            return str(token.serialize(compact=True))

        found["jwcrypto"] = jwcrypto_proof
    except ImportError:
        pass
    return found


def main() -> None:
    """Print the table."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = DPoPKey.generate("ES256")
    raw = ec.generate_private_key(ec.SECP256R1())
    ecdsa = ec.ECDSA(hashes.SHA256())
    rows = {
        "bare ECDSA P-256 sign (cryptography)": lambda: raw.sign(b"x" * 300, ecdsa),
        "DPoPKey.proof (ES256, with ath)": lambda: key.proof("GET", URL, access_token=TOKEN),
        "DPoPKey.proof (ES256, no ath)": lambda: key.proof("GET", URL),
        **_peers(key),
    }
    print("| proof | µs (median) |")
    print("|---|---|")
    for name, call in rows.items():
        print(f"| {name} | {_median_us(call):.1f} |")


if __name__ == "__main__":
    main()
