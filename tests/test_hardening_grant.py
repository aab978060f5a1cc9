"""Token contents that cannot go into a header are refused (issue 10, grant side)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from requests_refresh import FileTokenStore, Token, TokenStoreError

# -- item 5: token contents that cannot go into a header ---------------------------------

UNSAFE = ["at\r\nX-Injected: 1", "at\nx", "at\x00x", "at\x7fx", "at\tx", "at-\xe9", "at-\u20ac"]


@pytest.mark.parametrize("value", UNSAFE)
@pytest.mark.parametrize("field", ["access_token", "token_type"])
def test_a_token_value_refuses_what_cannot_go_into_a_header(value: str, field: str) -> None:
    """Token(...) refuses header-unsafe access_token/token_type with ValueError, unquoted.

    Protects against: a custom refresher or a stored token injecting headers.
    """
    fields: dict[str, Any] = {"access_token": "at-fine", field: value}
    with pytest.raises(ValueError, match=field) as caught:
        Token(**fields)
    assert value not in str(caught.value)


def test_a_stored_token_that_cannot_go_into_a_header_is_a_store_error(tmp_path: Path) -> None:
    """A token file whose access token holds CRLF is a TokenStoreError, not a raw error."""
    path = tmp_path / "tokens.json"
    entry = {"access_token": "at\r\nX-Injected: 1"}
    path.write_text(json.dumps({"version": 1, "tokens": {"default": entry}}))
    path.chmod(0o600)
    with pytest.raises(TokenStoreError) as caught:
        FileTokenStore(path).load()
    assert "X-Injected" not in str(caught.value)


def test_header_safe_tokens_with_unusual_characters_are_accepted() -> None:
    """Printable ASCII (RFC 6749 appendix A.12 VSCHAR) stays accepted: no over-refusal."""
    token = Token("a.b_c-d~e+f/g=h!#$%&'()*,:;<>?@[]^`{|} z", token_type="Bearer")
    assert token.authorization.startswith("Bearer a.b_c")
