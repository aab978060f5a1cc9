"""The test servers as the tests see them: started in their own process, one interface.

:class:`ServerProcess` runs a server module on 127.0.0.1 and stops it by its PID.
:class:`IdP` is what a scenario needs of any server: its URLs, its clients, its
counters (``/__stats``), and a user who signs in and consents through the server's
own pages with ``requests`` (login form, consent form, CSRF tokens where the server
has them), for the authorization code flow with PKCE and for the device flow.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html.parser
import importlib.metadata
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from requests_refresh import Token

from ..workers.process import REPO_ROOT
from .accounts import PASSWORD, USERNAME, Client

#: Access token lifetime on the test servers, in (whole) seconds.
ACCESS_TTL = 2
#: Where the authorization code flow sends the user back. No listener is needed: the
#: user's "browser" here is ``requests``, which reads the redirect instead of following.
CALLBACK = "http://127.0.0.1:53682/callback"
_TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class Kind:
    """What differs between the servers: the module to run and where things are."""

    name: str
    distribution: str  # whose version the Interoperability table reports
    module: str
    needs: tuple[str, ...]  # importable names the server needs
    authorize_path: str
    device_authorization_path: str
    forbidding_resource_path: str | None  # a view answering a refused token with 403


KINDS = {
    "dot": Kind(
        "dot",
        "django-oauth-toolkit",
        "tests.interop.dot_project.serve",
        ("django", "oauth2_provider", "waitress"),
        "/o/authorize/",
        "/o/device-authorization/",
        "/resource-403",
    ),
    "authlib": Kind(
        "authlib",
        "Authlib",
        "tests.interop.authlib_server",
        ("authlib", "flask", "waitress"),
        "/authorize",
        "/device_authorization",
        None,
    ),
}


class ServerProcess:
    """``python -m MODULE`` in its own process; its origin once it answers ``/__stats``."""

    def __init__(self, module: str, workdir: Path, access_ttl: int, start_timeout: float = 60):
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        url_file = workdir / "origin"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        env.update(
            INTEROP_URL_FILE=str(url_file),
            INTEROP_DB=str(workdir / "db.sqlite3"),
            INTEROP_ACCESS_TTL=str(access_ttl),
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
            )
        try:
            self.origin = self._await_ready(url_file, start_timeout)
        except BaseException:
            self.stop()
            raise

    def _await_ready(self, url_file: Path, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self} exited with {self.process.returncode} before it was ready:\n"
                    + self.log()
                )
            if url_file.exists():
                origin = url_file.read_text()
                try:
                    if requests.get(origin + "/__stats", timeout=5).status_code == 200:
                        return origin
                except requests.RequestException:
                    pass
            time.sleep(0.1)  # polling a process we cannot signal from
        raise RuntimeError(f"{self} was not ready within {timeout:g} s:\n" + self.log())

    def __repr__(self) -> str:
        return f"<ServerProcess pid={self.process.pid} args={self.process.args!r}>"

    def log(self) -> str:
        """What the server printed (its last 4,000 characters)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Terminate the server by its PID, then kill it if it does not go within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=10)


@dataclasses.dataclass(frozen=True)
class Stats:
    """The token endpoint's counters (all since the server started, or between two reads)."""

    calls: Counter[str]
    issued: Counter[str]
    errors: Counter[str]
    events: Counter[str]
    error_statuses: dict[str, list[int]]
    params: Counter[str]  # "<grant type> <name>=<value>" of the fields stats.py shows

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(
            Counter(data["calls"]),
            Counter(data["issued"]),
            Counter(data["errors"]),
            Counter(data["events"]),
            data["error_statuses"],
            Counter(data["params"]),
        )

    def since(self, before: Stats) -> Stats:
        """What happened between ``before`` and this reading."""
        return Stats(
            self.calls - before.calls,
            self.issued - before.issued,
            self.errors - before.errors,
            self.events - before.events,
            self.error_statuses,
            self.params - before.params,
        )

    @property
    def refresh_calls(self) -> int:
        """Calls to the token endpoint with the refresh token grant, answered or refused."""
        return self.calls["refresh_token"]

    @property
    def refreshes(self) -> int:
        """Refresh token grants that issued a new token: the token generations made."""
        return self.issued["refresh_token"]

    @property
    def invalid_grant(self) -> int:
        return self.errors["invalid_grant"]


@dataclasses.dataclass
class IdP:
    """A running third-party authorization server, as every scenario uses it."""

    kind: Kind
    server: ServerProcess
    access_ttl: int

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def version(self) -> str:
        return importlib.metadata.version(self.kind.distribution)

    @property
    def origin(self) -> str:
        return self.server.origin

    @property
    def token_url(self) -> str:
        return self.origin + "/token"

    @property
    def resource_url(self) -> str:
        """A protected resource that answers a refused token with 401."""
        return self.origin + "/resource"

    @property
    def forbidding_resource_url(self) -> str | None:
        """A protected resource that answers a refused token with 403, if the server has one."""
        path = self.kind.forbidding_resource_path
        return None if path is None else self.origin + path

    @property
    def authorize_url(self) -> str:
        return self.origin + self.kind.authorize_path

    @property
    def device_authorization_url(self) -> str:
        return self.origin + self.kind.device_authorization_path

    def stats(self) -> Stats:
        answer = requests.get(self.origin + "/__stats", timeout=_TIMEOUT)
        answer.raise_for_status()
        return Stats.from_json(answer.json())

    # The user, played with requests through the server's own pages.

    def browser(self) -> requests.Session:
        """A fresh "browser": a session with no cookies yet."""
        return requests.Session()

    def consent(
        self, authorize_url: str, browser: requests.Session | None = None, *, allow: bool = True
    ) -> str:
        """Open ``authorize_url``, sign in, approve (or decline); where the server redirects.

        This is what a user does in the browser that a login flow opens; the returned
        URL (the redirect URI with ``code`` and ``state``, or ``error``) is what the
        browser would then load from the client's loopback listener. Declining submits
        the consent form without its "allow" button, as both servers' cancel does.
        """
        browser = browser or self.browser()
        with browser:
            page = self._signed_in(browser, browser.get(authorize_url, timeout=_TIMEOUT))
            answer = submit(browser, page, button=_allow_button(page) if allow else None)
            if answer.status_code not in (301, 302, 303, 307, 308):
                raise AssertionError(
                    f"{self.name}: the consent form was answered with HTTP"
                    f" {answer.status_code}, not a redirect:\n{answer.text[:2000]}"
                )
            return str(answer.headers["Location"])

    def page(self, url: str) -> requests.Response:
        """``url`` as the user sees it once signed in (through the login form if asked)."""
        with self.browser() as browser:
            return self._signed_in(browser, browser.get(url, timeout=_TIMEOUT))

    def approve_device(
        self, verification_uri: str, user_code: str, *, accept: bool = True
    ) -> None:
        """Play the user of the device flow: sign in, enter ``user_code``, accept (or deny)."""
        decision = ("action", "accept" if accept else "deny")
        with self.browser() as browser:
            page = self._signed_in(browser, browser.get(verification_uri, timeout=_TIMEOUT))
            for _ in range(3):  # DOT: the code, then accept; Authlib: both on one page
                buttons = forms_of(page.text)[0].buttons if forms_of(page.text) else []
                if decision in buttons:
                    done = submit(browser, page, button=decision, user_code=user_code)
                    done.raise_for_status()
                    return
                page = submit(browser, page, user_code=user_code)
                page.raise_for_status()
        raise AssertionError(f"{self.name}: no page offered to {decision[1]} the device")

    def _signed_in(self, browser: requests.Session, page: requests.Response) -> requests.Response:
        """``page``, after signing in through the login form if the server asked for it."""
        form = forms_of(page.text)[0] if forms_of(page.text) else None
        if form is not None and "password" in form.fields:
            page = submit(browser, page, username=USERNAME, password=PASSWORD)
        page.raise_for_status()
        return page

    def login(self, client: Client, scope: str = "read") -> Token:
        """A first token for ``client``: the authorization code flow with PKCE (S256)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": CALLBACK,
            "scope": scope,
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        back = self.consent(self.authorize_url + "?" + urllib.parse.urlencode(query))
        assert back.startswith(CALLBACK + "?"), back
        answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
        assert answer.get("state") == state, answer
        form = {
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        }
        auth = None
        if client.client_secret is None:
            form["client_id"] = client.client_id
        else:
            auth = (client.client_id, client.client_secret)
        response = requests.post(self.token_url, data=form, auth=auth, timeout=_TIMEOUT)
        assert response.status_code == 200, response.text
        return Token.from_response(response.json())


def start(kind: Kind, workdir: Path, access_ttl: int = ACCESS_TTL) -> IdP:
    """Start a server of ``kind`` in its own process (stop it with ``idp.server.stop()``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return IdP(kind, ServerProcess(kind.module, workdir, access_ttl), access_ttl)


# Reading and submitting HTML forms, as a browser would.


@dataclasses.dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    buttons: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(attr.get("action", ""), attr.get("method", "get").lower()))
            return
        if not self.forms or "name" not in attr:
            return
        kind = attr.get("type", "submit" if tag == "button" else "text").lower()
        if tag == "button" or (tag == "input" and kind == "submit"):
            self.forms[-1].buttons.append((attr["name"], attr.get("value", "")))
        elif tag in ("input", "textarea", "select"):
            self.forms[-1].fields[attr["name"]] = attr.get("value", "")


def forms_of(page: str) -> list[Form]:
    """The forms of an HTML page, with their fields' initial values and named buttons."""
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


def submit(
    browser: requests.Session,
    page: requests.Response,
    button: tuple[str, str] | None = None,
    **values: str,
) -> requests.Response:
    """Fill in the first form of ``page`` with ``values`` and submit it with ``button``.

    Redirects within the server are followed; one that leaves it (back to the client's
    redirect URI) is returned, as nobody need listen there.
    """
    forms = forms_of(page.text)
    assert forms, f"no form on {page.url}:\n{page.text[:2000]}"
    form = forms[0]
    data = {**form.fields, **values}
    if button is not None:
        data[button[0]] = button[1]
    url = urllib.parse.urljoin(page.url, form.action or page.url)
    answer = browser.post(url, data=data, timeout=_TIMEOUT, allow_redirects=False)
    while answer.is_redirect:
        target = urllib.parse.urljoin(answer.url, answer.headers["Location"])
        if _origin(target) != _origin(page.url):
            return answer
        answer = browser.get(target, timeout=_TIMEOUT, allow_redirects=False)
    return answer


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def _allow_button(page: requests.Response) -> tuple[str, str]:
    buttons = forms_of(page.text)[0].buttons
    for name, value in buttons:
        if name == "allow":
            return name, value
    raise AssertionError(f"no button to allow on {page.url}: {buttons}")
