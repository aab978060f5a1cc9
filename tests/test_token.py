"""Token: parsing RFC 6749 token responses, round-trips, and never showing a secret."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from requests_refresh import InvalidTokenResponseError, Token

NOW = 1_800_000_000.0


def test_from_response_parses_a_full_rfc6749_response() -> None:
    """Every section 5.1 field lands where it belongs; expires_in counts from now."""
    token = Token.from_response(
        {
            "access_token": "2YotnFZFEjr1zCsicMWpAA",
            "token_type": "example",
            "expires_in": 3600,
            "refresh_token": "tGzv3JOkF0XG5Qx2TlKWIA",
            "scope": "read write",
            "example_parameter": "example_value",
        },
        now=NOW,
    )
    assert token.access_token == "2YotnFZFEjr1zCsicMWpAA"
    assert token.refresh_token == "tGzv3JOkF0XG5Qx2TlKWIA"
    assert token.expires_at == NOW + 3600
    assert token.issued_at == NOW
    assert token.token_type == "example"
    assert token.scope == "read write"
    assert token.extra == {"example_parameter": "example_value"}


@pytest.mark.parametrize("spelling", ["bearer", "BEARER", "Bearer", " bearer "])
def test_token_type_bearer_is_case_insensitive(spelling: str) -> None:
    """'bearer' in any case becomes the canonical 'Bearer' used in the header."""
    token = Token.from_response({"access_token": "a", "token_type": spelling})
    assert token.token_type == "Bearer"
    assert token.authorization == "Bearer a"


def test_missing_refresh_token_and_expiry_stay_missing() -> None:
    """A response without refresh_token or expires_in does not invent them."""
    token = Token.from_response({"access_token": "a", "token_type": "Bearer"}, now=NOW)
    assert token.refresh_token is None
    assert token.expires_at is None
    assert not token.is_expired(now=NOW + 10**9)


def test_numeric_string_expires_in_is_accepted() -> None:
    """Some identity providers send expires_in as "3599": it is read as seconds."""
    token = Token.from_response({"access_token": "a", "expires_in": "3599"}, now=NOW)
    assert token.expires_at == NOW + 3599


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ([], "not a JSON object"),
        ("access_token=a", "not a JSON object"),
        ({}, "no access_token"),
        ({"access_token": ""}, "access_token"),
        ({"access_token": 5}, "access_token"),
        ({"access_token": "a", "refresh_token": 7}, "refresh_token"),
        ({"access_token": "a", "token_type": ""}, "token_type"),
        ({"access_token": "a", "expires_in": -5}, "not positive"),
        ({"access_token": "a", "expires_in": "-1"}, "not positive"),
        ({"access_token": "a", "expires_in": "soon"}, "not a number of seconds"),
        ({"access_token": "a", "expires_in": 10**12}, "ten years"),
        ({"access_token": "a", "expires_in": True}, "not a number"),
        ({"access_token": "a", "expires_in": float("nan")}, "not a number"),
        ({"access_token": "a", "scope": 3}, "scope"),
    ],
)
def test_malformed_responses_raise_a_typed_error_naming_the_field(
    payload: object, complaint: str
) -> None:
    """A response that is not a usable token raises InvalidTokenResponseError saying why."""
    with pytest.raises(InvalidTokenResponseError, match=complaint):
        Token.from_response(payload, now=NOW)


def test_error_messages_never_contain_the_secret() -> None:
    """The message names the bad field, not the secret values around it."""
    with pytest.raises(InvalidTokenResponseError) as caught:
        Token.from_response(
            {"access_token": "s3cret-access", "refresh_token": "s3cret-refresh", "expires_in": -1}
        )
    assert "s3cret" not in str(caught.value)


def test_to_dict_from_dict_round_trips() -> None:
    """to_dict() and from_dict() give back an equal token, extra fields included."""
    token = Token.from_response(
        {
            "access_token": "a",
            "refresh_token": "r",
            "expires_in": 60,
            "scope": "s",
            "id_token": "x.y.z",
            "expires_at": "vendor field",  # an extra field that collides with ours
        },
        now=NOW,
    )
    again = Token.from_dict(token.to_dict())
    assert again == token
    assert again.extra == {"id_token": "x.y.z", "expires_at": "vendor field"}


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"token_type": "Bearer"},
        {"access_token": "a", "surprise": 1},
        {"access_token": 1},
    ],
)
def test_from_dict_rejects_what_is_not_a_stored_token(data: object) -> None:
    """from_dict raises ValueError (which stores turn into TokenStoreError)."""
    with pytest.raises(ValueError, match=r"token|access_token"):
        Token.from_dict(data)


def test_repr_shows_no_secret() -> None:
    """repr() says which fields are set, never their secret values."""
    token = Token("access-SECRET", "refresh-SECRET", NOW, extra={"id_token": "id-SECRET"})
    text = repr(token)
    assert "SECRET" not in text
    assert "<redacted>" in text
    assert "id_token" in text  # the field's name is useful, its value is not shown


def test_tokens_are_immutable_and_pickle() -> None:
    """A token cannot be changed in place, and survives pickling (multiprocessing)."""
    token = Token("a", "r", NOW, extra={"k": "v"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.access_token = "b"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(token)) == token  # noqa: S301 - our own data


def test_extra_is_a_private_copy() -> None:
    """Changing the dict passed as extra does not change the token."""
    extra = {"k": "v"}
    token = Token("a", extra=extra)
    extra["k"] = "changed"
    assert token.extra == {"k": "v"}


@pytest.mark.parametrize(
    ("lifetime", "leeway", "due_before_expiry"),
    [(3600, 30, 30), (2, 30, 1), (60, 30, 30), (10, 0, 0)],
)
def test_refresh_is_due_leeway_before_expiry_capped_at_half_the_lifetime(
    lifetime: float, leeway: float, due_before_expiry: float
) -> None:
    """Short-lived tokens refresh at half-life, not on every use."""
    token = Token("a", expires_at=NOW + lifetime, issued_at=NOW)
    assert token.refresh_due_at(leeway) == NOW + lifetime - due_before_expiry


def test_refresh_without_known_lifetime_uses_the_full_leeway() -> None:
    """A token loaded without issued_at refreshes leeway seconds ahead."""
    assert Token("a", expires_at=NOW).refresh_due_at(30) == NOW - 30
    assert Token("a").refresh_due_at(30) is None
