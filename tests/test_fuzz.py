"""Fuzzing the parsers of untrusted input: token responses and stored tokens.

``Token.from_response`` reads what a token endpoint sent; ``Token.from_dict`` reads what
a token store holds (a file store parses its file with ``json.loads`` and hands the
result to ``from_dict``). Whatever they are given, they return a valid token or raise
their one documented error, whose message never repeats a secret.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_refresh import FileTokenStore, InvalidTokenResponseError, Token, TokenStoreError
from requests_refresh.token import MAX_EXPIRES_IN

MARKER = "SeCrEt-9f3a"
NOW = 1_700_000_000.0

_RESPONSE_KEYS = ["access_token", "token_type", "expires_in", "refresh_token", "scope"]
_DICT_KEYS = [
    "access_token",
    "token_type",
    "expires_at",
    "issued_at",
    "refresh_token",
    "scope",
    "refresh_expires_at",
    "refresh_at",
]

secrets_ = st.text(max_size=12).map(lambda text: MARKER + text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["3599", " 60 ", "-1", "0", "1e400", "nan", "inf", "٣٠", "0x10", "Bearer"]),
    secrets_,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)


def objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that mostly use the parser's own field names, with any values and keys."""
    return st.dictionaries(
        st.one_of(st.sampled_from(keys), st.text(max_size=8), secrets_), json_values, max_size=8
    )


def attempt(parse: Callable[[Any], Token], value: Any, allowed: type[Exception]) -> object:
    """``parse(value)``, or the ``allowed`` error it raised; any other error propagates."""
    try:
        return parse(value)
    except allowed as exc:
        return exc


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(objects(_RESPONSE_KEYS), json_values))
def test_from_response_returns_a_token_or_raises_its_typed_error(payload: Any) -> None:
    """Any JSON value: a valid Token, or InvalidTokenResponseError without a secret.

    Protects against: a token endpoint's answer crashing the refresh with TypeError,
    OverflowError and the like (which callers do not expect), or being accepted with an
    expiry that is not a sane number of seconds from now.
    """
    token = attempt(lambda p: Token.from_response(p, now=NOW), payload, InvalidTokenResponseError)
    if isinstance(token, InvalidTokenResponseError):
        assert MARKER not in str(token)
        return
    assert isinstance(token, Token)
    assert isinstance(token.access_token, str)
    assert token.access_token
    if token.expires_at is not None:
        assert math.isfinite(token.expires_at)
        assert 0 < token.expires_at - NOW <= MAX_EXPIRES_IN
    assert token.issued_at == NOW


@FUZZ
@given(
    st.fixed_dictionaries(
        # A header-safe access token: the test is about expires_in.
        {"access_token": st.text(alphabet="abc-._~+/=", min_size=1, max_size=8)},
        optional={
            "expires_in": st.one_of(
                st.integers(), st.floats(), st.text(max_size=12), st.integers(10**300, 10**400)
            )
        },
    )
)
def test_expires_in_is_accepted_only_as_a_sane_number_of_seconds(payload: dict[str, Any]) -> None:
    """expires_in: numbers and numeric strings in [0, ten years]; anything else refused.

    0 means "expiry unknown". Protects against: tokens born expired, tokens trusted for
    centuries, and a huge integer overflowing ``float()`` instead of being refused.
    """
    value = payload.get("expires_in")
    try:
        seconds = float(value.strip()) if isinstance(value, str) else value
    except ValueError:
        seconds = None
    sane = (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and (not isinstance(value, str) or value.strip().isascii())
        and 0 <= seconds <= MAX_EXPIRES_IN
    )
    try:
        token = Token.from_response(payload, now=NOW)
    except InvalidTokenResponseError:
        assert value is not None
        assert not sane
        return
    assert value is None or sane
    assert (token.expires_at is None) == (value is None or seconds == 0)
    # A tiny positive expires_in may round to now: refused as positive, not re-checked.
    assert token.expires_at is None or 0 <= token.expires_at - NOW <= MAX_EXPIRES_IN


@FUZZ
@given(st.one_of(objects([*_DICT_KEYS, "extra"]), json_values))
def test_from_dict_returns_a_token_or_raises_value_error(data: Any) -> None:
    """Any JSON value in a store: a valid Token, or ValueError without a secret.

    Protects against: a corrupt or hand-edited store crashing every request with an
    unexpected exception type (a file store turns ValueError into TokenStoreError).
    """
    token = attempt(Token.from_dict, data, ValueError)
    if isinstance(token, ValueError):
        assert MARKER not in str(token)
        return
    assert isinstance(token, Token)
    assert Token.from_dict(token.to_dict()) == token


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        objects([*_DICT_KEYS, "extra"]).map(lambda value: json.dumps(value).encode()),
    )
)
def test_stored_bytes_parse_to_a_token_or_raise_value_error(raw: bytes) -> None:
    """A store file's raw content, through json.loads then from_dict: ValueError only.

    Protects against: a truncated, binary or garbage token file raising anything but
    ValueError (JSONDecodeError and UnicodeDecodeError are ValueErrors) on the way to
    a Token.
    """
    token = attempt(lambda r: Token.from_dict(json.loads(r)), raw, ValueError)
    assert isinstance(token, Token) or MARKER not in str(token)


def envelope(entry: Any) -> bytes:
    return json.dumps({"version": 1, "tokens": {"default": entry}}).encode()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        objects([*_DICT_KEYS, "extra"]).map(envelope),
        json_values.map(envelope),
        objects(["version", "tokens"]).map(lambda value: json.dumps(value).encode()),
    )
)
def test_a_token_file_with_any_content_loads_or_raises_token_store_error(raw: bytes) -> None:
    """FileTokenStore.load() on any file content: a Token, None, or TokenStoreError.

    Protects against: a damaged token file crashing a program with a KeyError,
    TypeError or JSONDecodeError, leaking a secret in the message, or being rewritten.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tokens.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
        result = attempt(lambda _: FileTokenStore(path).load(), None, TokenStoreError)  # type: ignore[arg-type, return-value]
        assert result is None or isinstance(result, (Token, TokenStoreError))
        if isinstance(result, TokenStoreError):
            assert MARKER not in str(result)
            assert result.path == str(path)
        assert path.read_bytes() == raw  # never overwritten or deleted


def test_round_trip_of_every_field() -> None:
    """A token with every field set survives to_dict/json/from_dict unchanged."""
    token = Token(
        "at",
        "rt",
        expires_at=NOW + 60,
        scope="read",
        issued_at=NOW,
        extra={"id_token": "x", "n": [1, 2.5, None]},
    )
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token
