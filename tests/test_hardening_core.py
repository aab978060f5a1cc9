"""The coordinator under outside probing: rotated tokens, remembered errors, fork, clocks.

Each test pins a promise that a probe once broke: one refresh per generation, the login
survives, no token leaks, every wait is bounded. Real servers on 127.0.0.1, real threads,
real forked processes; every wait is bounded.
"""

from __future__ import annotations

import time

import pytest

from requests_refresh import MemoryTokenStore, Token

# -- 12. small mismatches ------------------------------------------------------------------


def test_a_memory_store_refuses_a_dict_at_construction() -> None:
    """MemoryTokenStore({...}) is refused at once, without echoing the dict.

    Protects against: a dict accepted and failing later with AttributeError deep inside
    a request.
    """
    with pytest.raises(TypeError, match=r"Token\.from_dict") as caught:
        MemoryTokenStore({"access_token": "secret-at"})  # type: ignore[arg-type]
    assert "secret-at" not in str(caught.value)


@pytest.mark.parametrize("field", ["expires_at", "issued_at"])
def test_a_time_in_milliseconds_is_refused_with_a_hint(field: str) -> None:
    """Token(expires_at=<milliseconds>) is refused and the message says to divide by 1000.

    Protects against: a token whose expiry lies in the year 50,000, so that it is never
    refreshed ahead of expiry and every request after its real expiry gets a 401.
    """
    milliseconds = time.time() * 1000
    with pytest.raises(ValueError, match="milliseconds") as caught:
        Token("at", "rt", **{field: milliseconds})  # type: ignore[arg-type]
    assert "1000" in str(caught.value)
    Token("at", "rt", **{field: time.time() + 10 * 365 * 24 * 3600})  # type: ignore[arg-type]
