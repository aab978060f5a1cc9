"""Scenario 6: what these servers do that our own test server does not, and how the
library copes. Each difference is recorded as an expectation about the server, next
to what the library does with it."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable

import pytest
import requests
from requests.models import Response

from requests_refresh import (
    AuthorizationDeniedError,
    ClientCredentialsGrant,
    DeviceAuthorization,
    InvalidGrantError,
    LoginRequiredError,
    MemoryTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
    TokenEndpointError,
    browser_login,
    default_should_refresh,
    device_login,
)
from requests_refresh.oauth2 import ClientAuthMethod

from .accounts import CONFIDENTIAL, DEVICE, PUBLIC, SERVICE
from .idp import IdP, forms_of
from .load import crawl, session_for, wait_until_expired

#: The HTTP status each server gives ``invalid_grant`` and ``invalid_client``.
ERROR_STATUSES = {
    "dot": {"invalid_grant": 400, "invalid_client": 401},
    "authlib": {"invalid_grant": 400, "invalid_client": 401},
}
#: Whether the server explains a declined sign-in with an ``error_description``.
DESCRIBES_A_DECLINE = {"dot": False, "authlib": True}
#: Whether the device authorization answer has a ``verification_uri_complete``.
SENDS_VERIFICATION_URI_COMPLETE = {"dot": False, "authlib": True}
#: What a client credentials request for a scope the client may not have gets: refused
#: with ``invalid_scope``, or a token for the scopes it may have (here: none).
UNGRANTED_SCOPE = {"dot": "invalid_scope", "authlib": "narrowed"}
CRAWL_THREADS = 16
CRAWL_SECONDS = 4.0


def test_invalid_grant_is_a_login_required_error_whatever_its_status(idp: IdP) -> None:
    """An unknown refresh token: invalid_grant (HTTP status as recorded) -> InvalidGrantError."""
    token = idp.login(PUBLIC)
    forged = Token(token.access_token, "not-a-refresh-token-of-this-server")
    grant = RefreshTokenGrant(idp.token_url, PUBLIC.client_id)
    with grant, pytest.raises(InvalidGrantError) as caught:
        grant(forged)
    assert isinstance(caught.value, LoginRequiredError)
    assert caught.value.status_code == ERROR_STATUSES[idp.name]["invalid_grant"]
    assert "not-a-refresh-token" not in str(caught.value)


def test_a_wrong_client_secret_is_a_client_configuration_error(idp: IdP) -> None:
    """A wrong secret: invalid_client (status as recorded) -> TokenEndpointError, login kept."""
    token = idp.login(CONFIDENTIAL)
    wrong = RefreshTokenGrant(idp.token_url, CONFIDENTIAL.client_id, "wrong-secret-0123456789")
    with wrong, pytest.raises(TokenEndpointError) as caught:
        wrong(token)
    assert not isinstance(caught.value, LoginRequiredError)
    assert caught.value.error == "invalid_client"
    assert caught.value.status_code == ERROR_STATUSES[idp.name]["invalid_client"]
    assert "wrong-secret-0123456789" not in str(caught.value)
    # The refresh token was not spent: the right secret still refreshes it.
    assert CONFIDENTIAL.client_secret is not None
    with RefreshTokenGrant(
        idp.token_url, CONFIDENTIAL.client_id, CONFIDENTIAL.client_secret
    ) as ok:
        ok(token)


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_refreshes_with_either_authentication(
    idp: IdP, auth_method: ClientAuthMethod
) -> None:
    """The confidential client refreshes with HTTP Basic and with form fields alike."""
    assert CONFIDENTIAL.client_secret is not None
    token = idp.login(CONFIDENTIAL)
    with RefreshTokenGrant(
        idp.token_url,
        CONFIDENTIAL.client_id,
        CONFIDENTIAL.client_secret,
        auth_method=auth_method,
    ) as grant:
        new = grant(token)
    assert new.refresh_token not in (None, token.refresh_token)


def test_a_spent_refresh_token_presented_again_revokes_the_login(idp: IdP) -> None:
    """Reuse revokes the family: the current refresh token dies too -> InvalidGrantError."""
    token = idp.login(PUBLIC)
    with RefreshTokenGrant(idp.token_url, PUBLIC.client_id) as grant:
        current = grant(token)
        with pytest.raises(InvalidGrantError):
            grant(token)  # the spent one: reuse
        with pytest.raises(InvalidGrantError):
            grant(current)  # the family is revoked
    # What an application sees once its token expires: sign in again.
    adapter = RefreshAdapter(
        store=MemoryTokenStore(current),
        refresher=RefreshTokenGrant(idp.token_url, PUBLIC.client_id),
    )
    wait_until_expired(current)
    with session_for(adapter, idp.origin) as session, pytest.raises(LoginRequiredError):
        session.get(idp.resource_url, timeout=30)
    adapter.close()


def test_the_replaced_access_token_is_refused_at_once(idp: IdP) -> None:
    """A refresh kills the old access token before it expires (ours lets it live)."""
    token = idp.login(PUBLIC)
    with RefreshTokenGrant(idp.token_url, PUBLIC.client_id) as grant:
        new = grant(token)
    assert token.expires_at is not None
    assert time.time() < token.expires_at
    old = requests.get(
        idp.resource_url, headers={"Authorization": token.authorization}, timeout=30
    )
    assert old.status_code == 401
    assert "invalid_token" in old.headers.get("WWW-Authenticate", "")
    assert (
        requests.get(
            idp.resource_url, headers={"Authorization": new.authorization}, timeout=30
        ).status_code
        == 200
    )


def test_authlib_counts_token_lifetimes_from_the_whole_second(authlib: IdP) -> None:
    """Authlib keeps ``issued_at`` in whole seconds: a token dies up to 1 s before its
    ``expires_in`` says. The request refused early is refreshed and replayed."""
    for _ in range(5):  # sign in 0.6-0.7 s into a second, within one second
        time.sleep((0.6 - time.time() % 1) % 1)
        before = time.time()
        token = authlib.login(PUBLIC)
        if math.floor(time.time()) == math.floor(before):
            break
    else:
        pytest.fail("could not sign in within one second in 5 tries")
    server_expiry = math.floor(before) + authlib.access_ttl  # refused after this
    assert token.expires_at is not None
    assert token.expires_at >= server_expiry + 0.5
    adapter = RefreshAdapter(
        store=MemoryTokenStore(token),
        refresher=RefreshTokenGrant(authlib.token_url, PUBLIC.client_id),
        leeway=0,
    )
    time.sleep(max(0.0, server_expiry + 0.05 - time.time()))  # the server's expiry: the event
    with session_for(adapter, authlib.origin) as session:
        answer = session.get(authlib.resource_url, timeout=30)
    adapter.close()
    assert answer.status_code == 200
    assert [refused.status_code for refused in answer.history] == [401]
    assert adapter.stats.refreshes == 1


def test_dot_stores_client_secrets_and_tokens_hashed(dot: IdP) -> None:
    """DOT keeps a hash of the client secret and a checksum of each token; clients are unaware."""
    token = dot.login(CONFIDENTIAL)
    database = dot.server.workdir / "db.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        (secret,) = db.execute(
            "SELECT client_secret FROM oauth2_provider_application WHERE client_id = ?",
            (CONFIDENTIAL.client_id,),
        ).fetchone()
        (checksum,) = db.execute(
            "SELECT token_checksum FROM oauth2_provider_accesstoken WHERE token = ?",
            (token.access_token,),
        ).fetchone()
    db.close()
    assert secret != CONFIDENTIAL.client_secret
    assert secret.startswith("md5$")
    assert checksum not in (None, "", token.access_token)


def forbidden_or_unauthorized(response: Response) -> bool:
    """A ``should_refresh`` for servers that answer a refused token with 403."""
    return response.status_code in (401, 403)


@pytest.mark.parametrize(
    "should_refresh",
    [default_should_refresh, forbidden_or_unauthorized],
    ids=["default", "401-or-403"],
)
def test_dot_default_view_403s_never_reach_the_caller(
    dot: IdP, should_refresh: Callable[[Response], bool]
) -> None:
    """DOT's default views answer 403 (16 threads, 4 s, tokens rotating): none reach the
    caller, neither with the default adapter (a 403 earned by a replaced token is
    replayed with the current one) nor with a should_refresh that takes 403."""
    url = dot.forbidding_resource_url
    assert url is not None
    adapter = RefreshAdapter(
        store=MemoryTokenStore(dot.login(PUBLIC)),
        refresher=RefreshTokenGrant(dot.token_url, PUBLIC.client_id),
        should_refresh=should_refresh,
        pool_maxsize=CRAWL_THREADS,
    )
    before = dot.stats()
    with session_for(adapter, dot.origin) as session:
        outcomes = crawl(session, url, CRAWL_THREADS, CRAWL_SECONDS)
    served = dot.stats().since(before)
    adapter.close()
    assert outcomes["status 403"] == 0, outcomes
    assert set(outcomes) == {"ok"}, outcomes
    assert served.refreshes >= 1  # tokens were replaced while requests were in flight
    assert served.refresh_calls == served.refreshes == adapter.stats.refreshes
    assert served.invalid_grant == 0


def test_a_sign_in_declined_in_the_browser_is_authorization_denied(idp: IdP) -> None:
    """Cancel on the server's consent page: browser_login raises AuthorizationDeniedError."""

    def decline(url: str) -> None:
        requests.get(idp.consent(url, allow=False), timeout=30)  # back to the listener

    with pytest.raises(AuthorizationDeniedError) as caught:
        browser_login(
            PUBLIC.client_id,
            authorization_url=idp.authorize_url,
            token_url=idp.token_url,
            scope="read",
            open_browser=decline,
            timeout=30,
        )
    assert caught.value.error == "access_denied"
    assert (caught.value.error_description is not None) == DESCRIBES_A_DECLINE[idp.name]


def test_a_device_sign_in_declined_on_the_servers_page_is_authorization_denied(idp: IdP) -> None:
    """Deny on the device page: AuthorizationDeniedError. Only Authlib sends a
    verification_uri_complete (its page has the code filled in); DOT's is None."""
    shown: list[DeviceAuthorization] = []

    def deny(code: DeviceAuthorization) -> None:
        shown.append(code)
        idp.approve_device(code.verification_uri, code.user_code, accept=False)

    with pytest.raises(AuthorizationDeniedError) as caught:
        device_login(
            DEVICE.client_id,
            device_authorization_url=idp.device_authorization_url,
            token_url=idp.token_url,
            on_code=deny,
            timeout=30,
        )
    assert caught.value.error == "access_denied"
    (code,) = shown
    complete = code.verification_uri_complete
    assert (complete is not None) == SENDS_VERIFICATION_URI_COMPLETE[idp.name]
    if complete is not None:
        (form,) = forms_of(idp.page(complete).text)
        assert form.fields["user_code"] == code.user_code


def test_client_credentials_for_a_scope_the_client_may_not_have(idp: IdP) -> None:
    """DOT refuses an ungranted scope (invalid_scope, 400: a TokenEndpointError from the
    request); Authlib issues a token without it and leaves ``scope`` out: Token.scope None."""
    assert SERVICE.client_secret is not None
    grant = ClientCredentialsGrant(
        idp.token_url, SERVICE.client_id, SERVICE.client_secret, scope="admin"
    )
    adapter = RefreshAdapter(store=MemoryTokenStore(), refresher=grant)
    with session_for(adapter, idp.origin) as session:
        if UNGRANTED_SCOPE[idp.name] == "invalid_scope":
            with pytest.raises(TokenEndpointError) as caught:
                session.get(idp.resource_url, timeout=30)
            assert not isinstance(caught.value, LoginRequiredError)
            assert caught.value.error == "invalid_scope"
            assert caught.value.status_code == 400
            assert adapter.store.load() is None
        else:
            assert session.get(idp.resource_url, timeout=30).status_code == 200
            token = adapter.store.load()
            assert token is not None
            assert token.scope is None
    adapter.close()
    # Asking for the scope it may have works on both.
    with ClientCredentialsGrant(
        idp.token_url, SERVICE.client_id, SERVICE.client_secret, scope="read"
    ) as allowed:
        assert allowed.acquire().scope == "read"
