"""revoke_token (RFC 7009) against AuthorizationServer."""

from __future__ import annotations

import json
import time

import pytest

from requests_refresh import (
    InvalidGrantError,
    RefreshTokenGrant,
    TokenEndpointError,
    TokenEndpointUnavailableError,
    revoke_token,
)
from requests_refresh.testing import AuthorizationServer

from .servers import Reply, ScriptedServer, TrickledHead


def test_revoking_the_refresh_token_ends_the_login(server: AuthorizationServer) -> None:
    """After revocation the refresh token is refused with invalid_grant."""
    token = server.login()
    revoke_token(token, server.client_id, issuer=server.issuer)
    assert server.stats.revocations == 1
    assert server.token_params == []
    with pytest.raises(InvalidGrantError):
        RefreshTokenGrant(server.token_url, server.client_id)(token)
    assert server.token_params[0]["grant_type"] == "refresh_token"


def test_an_unknown_token_is_not_an_error(server: AuthorizationServer) -> None:
    """The server answers 200 for a token it does not know; so does revoke_token."""
    revoke_token("rt-never-issued", server.client_id, revocation_url=server.revocation_url)
    assert server.stats.revocations == 1


def test_a_refused_client_is_a_typed_error_without_the_token(
    server: AuthorizationServer,
) -> None:
    """invalid_client at the revocation endpoint is TokenEndpointError; no secret shown."""
    token = server.login()
    with pytest.raises(TokenEndpointError) as caught:
        revoke_token(token, "someone-else", revocation_url=server.revocation_url)
    assert caught.value.error == "invalid_client"
    assert "revocation endpoint" in str(caught.value)
    assert token.refresh_token is not None
    assert token.refresh_token not in str(caught.value)


def test_a_trickled_answer_is_bounded_by_the_timeout() -> None:
    """A revocation answer sent a byte at a time: TokenEndpointUnavailableError in time.

    Protects against: the revocation endpoint reading its answer with a weaker bound
    than the token endpoint, so that a trickling server holds a sign-out for minutes.
    """
    trickle = Reply(200, {}, b" " * 200, per_byte=0.05)  # 10 s at this pace
    with ScriptedServer(lambda seen: trickle) as scripted:
        started = time.monotonic()
        with pytest.raises(TokenEndpointUnavailableError, match="exceeded the timeout"):
            revoke_token("rt-x", "app", revocation_url=scripted.url + "/revoke", timeout=0.5)
        assert time.monotonic() - started < 0.5 + 2.0
    assert scripted.seen[0].headers["accept-encoding"] == "identity"


def test_a_trickled_head_is_bounded_by_the_timeout() -> None:
    """Headers sent a line at a time: TokenEndpointUnavailableError within the timeout.

    Protects against: the timeout bounding each read only, so that a server sending a
    header line every 0.1 s holds a sign-out for ever.
    """
    with TrickledHead() as server:
        started = time.monotonic()
        with pytest.raises(TokenEndpointUnavailableError, match="exceeded the timeout of 1 s"):
            revoke_token("rt-x", "app", revocation_url=server.url + "/revoke", timeout=1.0)
        assert time.monotonic() - started < 1.0 + 2.0
        assert server.arrived.is_set()


@pytest.mark.parametrize("error", [None, ""])
def test_a_success_with_an_empty_error_field_is_a_success(error: object) -> None:
    """200 with ``"error": null`` or ``""`` from the revocation endpoint: revoked, no error."""
    answer = Reply(200, {}, json.dumps({"error": error}).encode())
    with ScriptedServer(lambda seen: answer) as scripted:
        revoke_token("rt-x", "app", revocation_url=scripted.url + "/revoke", timeout=5)
    assert len(scripted.seen) == 1
