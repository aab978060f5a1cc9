"""What scenarios 4 and 5 rely on, checked on every server with plain requests, so that a
failure here points at a server's set-up rather than the library: a client credentials
client, the device flow played through the server's own pages, and the authorization
code flow with PKCE to a loopback redirect on any port."""

from __future__ import annotations

import time
import urllib.parse

import requests

from requests_refresh import RefreshTokenGrant, Token

from .accounts import DEVICE, PUBLIC, SERVICE
from .idp import IdP

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"


def test_the_service_client_gets_tokens_by_client_credentials(idp: IdP) -> None:
    """The service client authenticates with its secret and gets a token without refresh."""
    assert SERVICE.client_secret is not None
    answer = requests.post(
        idp.token_url,
        data={"grant_type": "client_credentials"},
        auth=(SERVICE.client_id, SERVICE.client_secret),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token = Token.from_response(answer.json())
    assert token.refresh_token is None
    assert token.expires_at is not None
    assert token.expires_at - time.time() <= idp.access_ttl
    resource = requests.get(
        idp.resource_url, headers={"Authorization": token.authorization}, timeout=30
    )
    assert resource.status_code == 200


def test_the_device_flow_completes_once_the_user_approves(idp: IdP) -> None:
    """Device authorization, pending, the user approves on the server's pages, a token."""
    started = requests.post(
        idp.device_authorization_url, data={"client_id": DEVICE.client_id}, timeout=30
    )
    assert started.status_code == 200, started.text
    grant = started.json()
    poll = {"grant_type": DEVICE_CODE, "device_code": grant["device_code"]}
    poll["client_id"] = DEVICE.client_id
    pending = requests.post(idp.token_url, data=poll, timeout=30)
    assert pending.json()["error"] == "authorization_pending"

    idp.approve_device(grant["verification_uri"], grant["user_code"])

    deadline = time.monotonic() + 30
    while True:
        time.sleep(grant.get("interval", 5))  # RFC 8628 section 3.5: the polling interval
        answer = requests.post(idp.token_url, data=poll, timeout=30)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        assert answer.json()["error"] in ("authorization_pending", "slow_down"), answer.text
    assert answer.status_code == 200, answer.text
    token = Token.from_response(answer.json())
    assert token.refresh_token is not None
    with RefreshTokenGrant(idp.token_url, DEVICE.client_id) as refresh:
        assert refresh(token).refresh_token != token.refresh_token


def test_the_browser_flow_redirects_to_a_loopback_port_of_the_clients_choosing(
    idp: IdP,
) -> None:
    """Any loopback port is accepted (RFC 8252 section 7.3): the code comes back with state."""
    redirect_uri = "http://127.0.0.1:40123/callback"
    query = {
        "response_type": "code",
        "client_id": PUBLIC.client_id,
        "redirect_uri": redirect_uri,
        "scope": "read",
        "state": "state-0123",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    back = idp.consent(idp.authorize_url + "?" + urllib.parse.urlencode(query))
    parts = urllib.parse.urlsplit(back)
    answer = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == redirect_uri
    assert answer["state"] == "state-0123"
    assert answer["code"]
