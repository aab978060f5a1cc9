"""What a new user meets in the first hour: messages that name the right fix, and the
``--version`` flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

import requests_refresh
from requests_refresh import (
    FileTokenStore,
    InsecureTransportError,
    InvalidTokenResponseError,
    NoTokenError,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
)
from requests_refresh.cli import main
from requests_refresh.testing import AuthorizationServer


def test_an_insecure_token_url_names_the_grant_as_the_place_for_the_flag() -> None:
    """A plain-http token endpoint is refused with a message naming RefreshTokenGrant."""
    with pytest.raises(InsecureTransportError) as caught:
        RefreshTokenGrant("http://auth.example.com/oauth/token", client_id="app")
    message = str(caught.value)
    assert "allow_insecure_http=True to RefreshTokenGrant" in message
    assert "RefreshAdapter" not in message
    # ... and the flag named there is the one that works.
    RefreshTokenGrant(
        "http://auth.example.com/oauth/token", client_id="app", allow_insecure_http=True
    ).close()


def test_an_insecure_api_url_names_the_adapter_as_the_place_for_the_flag() -> None:
    """A plain-http API request is refused with a message naming RefreshAdapter."""
    adapter = RefreshAdapter(
        store=requests_refresh.MemoryTokenStore(Token("t")), refresher=lambda t: t
    )
    with requests.Session() as session:
        adapter.mount(session, "http://api.example.invalid/")
        with pytest.raises(
            InsecureTransportError, match="allow_insecure_http=True to RefreshAdapter"
        ):
            session.get("http://api.example.invalid/x", timeout=5)


def test_no_token_error_from_a_file_store_names_the_file(
    tmp_path: Path, server: AuthorizationServer
) -> None:
    """An empty FileTokenStore's NoTokenError says which file to save the token to."""
    path = tmp_path / "nobody" / "tokens.json"
    adapter = RefreshAdapter(
        store=FileTokenStore(path), refresher=RefreshTokenGrant(server.token_url, "c")
    )
    with requests.Session() as session:
        adapter.mount(session, server.url + "/")
        with pytest.raises(NoTokenError) as caught:
            session.get(server.resource_url, timeout=5)
    assert str(path) in str(caught.value)
    assert "sign in" in str(caught.value)


def test_from_response_given_a_response_suggests_json(server: AuthorizationServer) -> None:
    """Token.from_response(response) says to pass response.json()."""
    response = requests.post(
        server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "c"},
        timeout=5,
    )
    with pytest.raises(InvalidTokenResponseError, match=r"got Response\): .*response\.json\(\)"):
        Token.from_response(response)


def test_from_response_given_a_list_has_no_json_hint() -> None:
    """The .json() hint is only given for objects that have a json() method."""
    with pytest.raises(InvalidTokenResponseError) as caught:
        Token.from_response(["access_token"])
    assert str(caught.value) == "the token response is not a JSON object (got list)"


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`requests-refresh --version` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"requests-refresh {requests_refresh.__version__}"
    assert requests_refresh.__version__ != "0+unknown"
