"""What a new user meets in the first hour: messages that name the right fix, the
``--version`` flag, and type checkers that see the installed package."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
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

REPOSITORY = Path(__file__).resolve().parent.parent


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


USER_SCRIPT = """\
from requests_refresh import MemoryTokenStore, Token

store = MemoryTokenStore(Token("access", "refresh", expires_at=0.0))
token = store.load()
assert token is not None
wrong: int = token.access_token  # the one error mypy must report
"""


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None, reason="mypy is not installed (the test extra)"
)
def test_mypy_strict_sees_the_installed_package_from_outside_the_repository(
    tmp_path: Path,
) -> None:
    """mypy --strict on a user's script in another directory reads our annotations."""
    directory = tmp_path / "user-project"
    directory.mkdir()
    (directory / "script.py").write_text(USER_SCRIPT, encoding="utf-8")
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONPATH", "MYPYPATH", "MYPY_CONFIG_FILE_DIR"}
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            "script.py",
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    assert "import-not-found" not in report, report
    assert "import-untyped" not in report, report
    # The package's own types reached mypy: it knows access_token is a str.
    assert report.strip() == textwrap.dedent(
        """\
        script.py:6: error: Incompatible types in assignment (expression has type "str",\
 variable has type "int")  [assignment]"""
    ), report
    assert REPOSITORY not in directory.parents
