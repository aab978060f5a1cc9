"""RefreshTokenGrant: the RFC 6749 section 6 request, and section 5.2 errors made typed."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator

import pytest

from requests_refresh import (
    InsecureTransportError,
    InvalidGrantError,
    InvalidTokenResponseError,
    LoginRequiredError,
    NoTokenError,
    RefreshTokenGrant,
    Token,
    TokenEndpointError,
    TokenEndpointUnavailableError,
)
from requests_refresh.testing import AuthorizationServer

from .servers import Reply, ScriptedServer, Seen

TOKEN_JSON = {"access_token": "new-access", "token_type": "bearer", "expires_in": 60}


@pytest.fixture
def endpoint() -> Iterator[ScriptedServer]:
    """A token endpoint that answers a fresh token and records each request."""

    def answer(seen: Seen) -> Reply:
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(TOKEN_JSON).encode())

    with ScriptedServer(answer) as running:
        yield running


def form_of(seen: Seen) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(seen.body.decode()))


@pytest.mark.parametrize(
    ("auth_method", "sends_basic", "form_has"),
    [
        ("client_secret_basic", True, {"client_id": None, "client_secret": None}),
        ("client_secret_post", False, {"client_id": "app", "client_secret": "pa ss:/"}),
    ],
)
def test_confidential_client_authenticates_as_configured(
    endpoint: ScriptedServer,
    auth_method: str,
    sends_basic: bool,
    form_has: dict[str, str | None],
) -> None:
    """Basic sends form-encoded credentials in the header; post sends them as fields."""
    grant = RefreshTokenGrant(
        endpoint.url + "/token",
        "app",
        "pa ss:/",
        auth_method=auth_method,  # type: ignore[arg-type]
    )
    with grant:
        grant(Token("old", "refresh-1"))
    (seen,) = endpoint.seen
    form = form_of(seen)
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "refresh-1"
    for name, value in form_has.items():
        assert form.get(name) == value
    if sends_basic:
        assert seen.authorization is not None
        decoded = base64.b64decode(seen.authorization.split()[1]).decode()
        assert decoded == "app:pa+ss%3A%2F"  # RFC 6749 section 2.3.1
    else:
        assert seen.authorization is None


def test_public_client_sends_only_its_id(endpoint: ScriptedServer) -> None:
    """Without a secret, client_id goes in the form and nothing in Authorization."""
    with RefreshTokenGrant(endpoint.url + "/token", "public-app") as grant:
        grant(Token("old", "refresh-1"))
    (seen,) = endpoint.seen
    assert form_of(seen) == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "client_id": "public-app",
    }
    assert seen.authorization is None
    assert seen.headers["accept"] == "application/json"


def test_scope_and_extra_params_are_sent(endpoint: ScriptedServer) -> None:
    """scope and extra_params become form fields."""
    with RefreshTokenGrant(
        endpoint.url + "/token", "app", scope="read", extra_params={"resource": "https://api"}
    ) as grant:
        grant(Token("old", "refresh-1"))
    form = form_of(endpoint.seen[0])
    assert form["scope"] == "read"
    assert form["resource"] == "https://api"


def test_extra_params_cannot_override_the_grant() -> None:
    """extra_params may not set grant_type, refresh_token or client credentials."""
    with pytest.raises(ValueError, match="refresh_token"):
        RefreshTokenGrant("https://a.test/token", "app", extra_params={"refresh_token": "x"})


def test_the_old_refresh_token_is_kept_when_none_comes_back(endpoint: ScriptedServer) -> None:
    """A server that does not rotate sends no refresh_token: the old one stays usable."""
    with RefreshTokenGrant(endpoint.url + "/token", "app") as grant:
        new = grant(Token("old", "refresh-1"))
    assert new.access_token == "new-access"
    assert new.refresh_token == "refresh-1"
    assert new.token_type == "Bearer"


def test_refresh_against_the_authorization_server_with_a_secret() -> None:
    """A real exchange with client authentication: a new, rotated pair comes back."""
    with AuthorizationServer(client_secret="s3cret") as server:
        first = server.login()
        with RefreshTokenGrant(server.token_url, server.client_id, "s3cret") as grant:
            second = grant(first)
        assert second.access_token != first.access_token
        assert second.refresh_token not in (None, first.refresh_token)
        assert server.stats.refreshes == 1


def test_wrong_client_secret_is_a_token_endpoint_error_that_says_what_to_check() -> None:
    """invalid_client carries error, status and advice, not the secret."""
    with (
        AuthorizationServer(client_secret="right") as server,
        RefreshTokenGrant(server.token_url, server.client_id, "wrong-s3cret") as grant,
        pytest.raises(TokenEndpointError) as caught,
    ):
        grant(server.login())
    error = caught.value
    assert not isinstance(error, InvalidGrantError)
    assert error.error == "invalid_client"
    assert error.status_code == 401
    assert "client_secret" in str(error)
    assert "wrong-s3cret" not in str(error)


def test_a_spent_refresh_token_is_invalid_grant_saying_sign_in_again(
    server: AuthorizationServer,
) -> None:
    """invalid_grant becomes InvalidGrantError, a LoginRequiredError, telling what to do."""
    login = server.login()
    with RefreshTokenGrant(server.token_url, server.client_id) as grant:
        grant(login)
        with pytest.raises(InvalidGrantError) as caught:
            grant(login)  # the same refresh token again: already used
    error = caught.value
    assert isinstance(error, LoginRequiredError)
    assert error.error == "invalid_grant"
    assert error.error_description == "refresh token already used"
    assert error.status_code == 400
    assert "sign in again" in str(error)
    assert login.refresh_token is not None
    assert login.refresh_token not in str(error)


def test_invalid_grant_is_recognised_by_its_body_whatever_the_status(
    server: AuthorizationServer,
) -> None:
    """Some servers send invalid_grant with 403: the body decides, not the status."""
    server.fail_next(403, body={"error": "invalid_grant"})
    with (
        RefreshTokenGrant(server.token_url, server.client_id) as grant,
        pytest.raises(InvalidGrantError) as caught,
    ):
        grant(server.login())
    assert caught.value.status_code == 403


def test_error_description_echoing_a_secret_is_redacted(server: AuthorizationServer) -> None:
    """A server that echoes the refresh token in its description does not leak it."""
    login = server.login()
    assert login.refresh_token is not None
    server.fail_next(
        400, body={"error": "invalid_request", "error_description": login.refresh_token}
    )
    with (
        RefreshTokenGrant(server.token_url, server.client_id) as grant,
        pytest.raises(TokenEndpointError) as caught,
    ):
        grant(login)
    assert login.refresh_token not in str(caught.value)
    assert caught.value.error_description == "<redacted>"


UNAVAILABLE, MALFORMED = TokenEndpointUnavailableError, InvalidTokenResponseError
HTML = {"Content-Type": "text/html"}


def test_a_very_short_client_secret_does_not_garble_messages() -> None:
    """Redaction skips one-letter secrets: 'refresh token already used' stays readable."""
    with AuthorizationServer(client_secret="s") as server:
        login = server.login()
        with RefreshTokenGrant(server.token_url, server.client_id, "s") as grant:
            grant(login)
            with pytest.raises(InvalidGrantError) as caught:
                grant(login)
    assert caught.value.error_description == "refresh token already used"


@pytest.mark.parametrize(
    ("status", "body", "headers", "error_type", "message"),
    [
        (500, b"", {}, UNAVAILABLE, "HTTP 500"),
        (503, {"error": "temporarily_unavailable"}, {"Retry-After": "7"}, UNAVAILABLE, "unavail"),
        (429, b"slow down", {"Retry-After": "3"}, UNAVAILABLE, "HTTP 429"),
        (200, b"<html>login page</html>", HTML, MALFORMED, "not JSON"),
        (200, b"{not json", {}, MALFORMED, "not JSON"),
        (200, {"token_type": "Bearer"}, {}, MALFORMED, "no access_token"),
        (200, {"access_token": "a", "expires_in": -1}, {}, MALFORMED, "not positive"),
        (404, b"not here", {}, TokenEndpointError, "HTTP 404"),
        (
            302,
            b"",
            {"Location": "https://elsewhere.test/token"},
            TokenEndpointError,
            "not followed",
        ),
    ],
)
def test_bad_answers_become_typed_errors(
    server: AuthorizationServer,
    status: int,
    body: bytes | dict[str, str],
    headers: dict[str, str],
    error_type: type[Exception],
    message: str,
) -> None:
    """Each kind of bad answer raises its own error class with a message that says why."""
    server.fail_next(status, body=body, headers=headers)
    with (
        RefreshTokenGrant(server.token_url, server.client_id) as grant,
        pytest.raises(error_type, match=message) as caught,
    ):
        grant(server.login())
    retry_after = getattr(caught.value, "retry_after", None)
    assert retry_after == (float(headers["Retry-After"]) if "Retry-After" in headers else None)
    assert server.stats.token_requests == 1  # one call, no redirect followed


def test_a_timeout_is_transient_and_bounded(server: AuthorizationServer) -> None:
    """A token endpoint that does not answer gives up after the grant's timeout."""
    server.fail_next(200, delay=5.0)
    with (
        RefreshTokenGrant(server.token_url, server.client_id, timeout=0.3) as grant,
        pytest.raises(TokenEndpointUnavailableError, match="did not answer"),
    ):
        grant(server.login())


def test_a_refused_connection_is_transient() -> None:
    """No server listening is a TokenEndpointUnavailableError, not a crash."""
    with AuthorizationServer() as server:
        login, token_url = server.login(), server.token_url
    with (
        RefreshTokenGrant(token_url, "test-client", timeout=2) as grant,
        pytest.raises(TokenEndpointUnavailableError, match="could not connect"),
    ):
        grant(login)


def test_a_token_without_refresh_token_cannot_be_refreshed() -> None:
    """Refreshing a token that has no refresh token says to sign in again."""
    with (
        RefreshTokenGrant("https://auth.test/token", "app") as grant,
        pytest.raises(NoTokenError, match="sign in again"),
    ):
        grant(Token("access-only"))


def test_plain_http_token_endpoint_is_refused_unless_loopback_or_allowed() -> None:
    """Refresh tokens do not travel over plain http to a remote host by accident."""
    with pytest.raises(InsecureTransportError, match="https"):
        RefreshTokenGrant("http://auth.example.com/token", "app")
    RefreshTokenGrant("http://auth.example.com/token", "app", allow_insecure_http=True).close()
    RefreshTokenGrant("http://127.0.0.1:1/token", "app").close()


def test_repr_shows_no_secret() -> None:
    """repr() names the endpoint and client, never the client secret."""
    grant = RefreshTokenGrant("https://auth.test/token", "app", "the-s3cret")
    assert "the-s3cret" not in repr(grant)
    assert "app" in repr(grant)
    grant.close()
