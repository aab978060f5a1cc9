"""The authorization code grant for native apps (RFC 8252), with PKCE (RFC 7636).

The user signs in in their browser; the server redirects the browser to a one-shot
listener on 127.0.0.1, which receives the authorization code; the code is exchanged
for a token with the PKCE verifier only this process knows.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import html
import os
import secrets
import sys
import threading
import urllib.parse
import webbrowser
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from .._values import quote_server_text
from ..exceptions import AuthorizationDeniedError, DiscoveryError, LoginError, LoginTimeoutError
from ..token import Token
from ._exchange import ClientAuthMethod, TokenEndpoint
from ._grant import open_endpoint, refuse_reserved

__all__ = ["browser_login", "open_in_browser"]

# Parameters of the authorization request the flow sets itself (RFC 6749 4.1.1, RFC 7636).
_AUTHORIZATION_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)
_MAX_ERROR = 200


def open_in_browser(url: str) -> None:
    """The default ``open_browser``: print the URL (on stderr), then try a browser.

    The URL is always printed, for SSH sessions and machines without a browser. A
    browser is started only where one can show a window (macOS, Windows, a
    ``DISPLAY``/``WAYLAND_DISPLAY``) or ``$BROWSER`` names one, so that a text-mode
    browser never takes over the terminal.
    """
    print(  # noqa: T201 - the user must see it
        f"Sign in in your browser: {url}\n(if no browser opens, open that URL yourself)",
        file=sys.stderr,
        flush=True,
    )
    graphical = sys.platform in ("darwin", "win32") or any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    )
    if graphical:
        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(url)


def browser_login(
    client_id: str,
    *,
    issuer: str | None = None,
    authorization_url: str | None = None,
    token_url: str | None = None,
    client_secret: str | None = None,
    auth_method: ClientAuthMethod | None = None,
    scope: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    open_browser: Callable[[str], object] | None = None,
    port: int = 0,
    redirect_path: str = "/callback",
    timeout: float = 300.0,
    http_timeout: float = 10.0,
    session: requests.Session | None = None,
    allow_insecure_http: bool = False,
) -> Token:
    """Sign in in the user's browser (RFC 8252, PKCE S256, ``state``); return the token.

    A one-shot listener on ``127.0.0.1:<port>`` (an ephemeral port by default) is
    serving before ``open_browser(url)`` is called with the authorization URL, so
    ``open_browser`` may return at once or block (it runs in a thread of its own). The
    server redirects the browser to ``http://127.0.0.1:<port><redirect_path>``. An
    answer with a wrong or missing ``state`` gets an error page and is ignored (its code
    is never used); the right one gets a page that says the sign-in finished (or why it
    failed) and to return to the terminal, and ends the wait. Save the token::

        store.save(browser_login("my-cli", issuer="https://auth.example.com",
                                 extra_params={"prompt": "consent"}))

    Args:
        client_id: the client identifier.
        issuer: the server's issuer, to discover the endpoints not passed explicitly.
            An ``iss`` in the redirect (RFC 9207) must then match it.
        authorization_url, token_url: the endpoints, instead of discovery.
        client_secret, auth_method: the client's authentication, as for
            :class:`RefreshTokenGrant` (usually none: a CLI is a public client).
        scope: the scope to ask for (space-separated).
        extra_params: more parameters for the authorization request (``prompt``,
            ``access_type``, ``audience``, ...: what some providers need before they
            issue a refresh token).
        open_browser: called with the authorization URL; the default prints it and
            opens a browser where one can be shown (:func:`open_in_browser`).
        port: the listener's port on 127.0.0.1; 0 picks a free one. Servers that
            register the full redirect URI need a fixed one.
        redirect_path: the path of the redirect URI.
        timeout: give up after this many seconds without the browser coming back.
        http_timeout: seconds to wait for each HTTP answer from the server.
        session: a session to send with; by default one of its own, closed at the end.
        allow_insecure_http: allow plain http endpoints that are not loopback.

    Raises:
        AuthorizationDeniedError: the user declined (``error=access_denied``).
        LoginTimeoutError: the browser did not come back within ``timeout``.
        LoginError: the server answered with another error, ``open_browser`` raised, or
            the listener could not listen on ``port`` (in use: the message says to pass
            ``port=0``).
        DiscoveryError: the metadata has no authorization endpoint, or says the server
            does not support PKCE S256.
        TokenEndpointError, TokenEndpointUnavailableError, InvalidTokenResponseError:
            the code could not be exchanged for a token.
    """
    refuse_reserved(extra_params, _AUTHORIZATION_PARAMS, "flow")
    if not redirect_path.startswith("/"):
        raise ValueError(f"redirect_path must start with '/', not {redirect_path!r}")
    endpoint, urls, metadata = open_endpoint(
        client_id,
        client_secret,
        issuer=issuer,
        urls={"authorization_endpoint": authorization_url, "token_endpoint": token_url},
        auth_method=auth_method,
        timeout=http_timeout,
        session=session,
        allow_insecure_http=allow_insecure_http,
        owner="browser_login()",
    )
    with contextlib.closing(endpoint):
        if (
            metadata is not None
            and metadata.code_challenge_methods_supported
            and "S256" not in metadata.code_challenge_methods_supported
        ):
            raise DiscoveryError(
                f"the metadata of {metadata.issuer} does not list PKCE S256 in"
                " code_challenge_methods_supported, which the browser login needs"
            )
        return _sign_in(
            endpoint,
            urls["authorization_endpoint"],
            client_id,
            scope=scope,
            extra_params=extra_params,
            open_browser=open_browser,
            port=port,
            redirect_path=redirect_path,
            timeout=timeout,
            issuer=issuer,
        )


def _sign_in(
    endpoint: TokenEndpoint,
    authorization_url: str,
    client_id: str,
    *,
    scope: str | None,
    extra_params: Mapping[str, str] | None,
    open_browser: Callable[[str], object] | None,
    port: int,
    redirect_path: str,
    timeout: float,
    issuer: str | None,
) -> Token:
    """The loopback listener, the browser, and the code's exchange at ``endpoint``."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-] (RFC 7636 4.1)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(32)
    listener = _Listener(state, redirect_path, port, issuer)
    try:
        redirect_uri = listener.redirect_uri
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if scope is not None:
            params["scope"] = scope
        params.update(extra_params or {})
        url = (
            authorization_url
            + ("&" if "?" in authorization_url else "?")
            + urllib.parse.urlencode(params)
        )
        listener.start()
        listener.open(open_browser or open_in_browser, url)
        code = listener.wait(timeout)
        return endpoint.exchange(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            secrets=(code, verifier),
        )
    finally:
        listener.stop()


class _Listener:
    """The loopback redirect listener: one right answer ends it; wrong ones are ignored."""

    def __init__(self, state: str, path: str, port: int, issuer: str | None) -> None:
        self.state = state
        self.path = path
        self.issuer = issuer
        self.done = threading.Event()
        self.code: str | None = None
        self.error: LoginError | None = None
        self._lock = threading.Lock()
        try:
            # On failure, the server closes its socket before raising.
            self._httpd = _OneShotServer(("127.0.0.1", port), _CallbackHandler)
        except OSError as exc:
            raise _listen_error(port, exc) from exc
        self._httpd.listener = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="browser_login listener",
            daemon=True,
        )

    @property
    def redirect_uri(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}{self.path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def open(self, open_browser: Callable[[str], object], url: str) -> None:
        """Run ``open_browser(url)`` in a thread: it may block, as a browser process can."""

        def run() -> None:
            try:
                open_browser(url)
            except Exception as exc:  # reported as the login's outcome
                error = LoginError(
                    f"open_browser raised {type(exc).__name__}: open the URL yourself, or"
                    " fix the browser command"
                )
                error.__cause__ = exc
                self.finish(error=error)

        threading.Thread(target=run, name="browser_login open_browser", daemon=True).start()

    def finish(self, *, code: str | None = None, error: LoginError | None = None) -> bool:
        """Record the outcome, once. False when there already was one."""
        with self._lock:
            if self.done.is_set():
                return False
            self.code, self.error = code, error
            self.done.set()
            return True

    def wait(self, timeout: float) -> str:
        if not self.done.wait(timeout):
            raise LoginTimeoutError(
                f"the browser did not come back within {timeout:g} s: run the login again"
                " and finish signing in sooner (or raise timeout)"
            )
        if self.error is not None:
            raise self.error
        assert self.code is not None  # noqa: S101 - finish() sets one of the two
        return self.code

    def outcome(self, query: Mapping[str, str]) -> tuple[int, str, str]:  # noqa: PLR0911
        """Handle one redirect: (HTTP status, page title, page text)."""
        if not secrets.compare_digest(query.get("state", ""), self.state):
            return (
                400,
                "Sign-in not recognised",
                "This answer does not belong to the sign-in in progress, and was ignored."
                " Return to the terminal; if it is still waiting, finish signing in from"
                " the link it shows.",
            )
        iss = query.get("iss")
        if iss is not None and self.issuer is not None and iss != self.issuer:
            error = LoginError(
                f"the answer came from the issuer {quote_server_text(iss)}, not"
                f" {self.issuer!r} (RFC 9207): run the login again; if it happens again,"
                " someone may be trying to intercept the sign-in"
            )
            self.finish(error=error)
            return 400, "Sign-in failed", "The answer came from the wrong server."
        if "error" in query:
            reason = query["error"][:_MAX_ERROR]
            description = query.get("error_description", "")[:_MAX_ERROR] or None
            detail = f"{reason}: {description}" if description else reason
            error = (
                AuthorizationDeniedError(
                    f"the sign-in was declined ({quote_server_text(detail)}): run the login"
                    " again and approve it",
                    error=reason,
                    error_description=description,
                )
                if reason == "access_denied"
                else LoginError(
                    f"the server refused the sign-in ({quote_server_text(detail)}): check"
                    " the client id, scope and extra parameters",
                    error=reason,
                    error_description=description,
                )
            )
            if not self.finish(error=error):
                return 400, "Sign-in already finished", "Return to the terminal."
            return 200, "Sign-in failed", f"The server said: {detail}. Return to the terminal."
        code = query.get("code")
        if not code:
            error = LoginError("the server's answer had neither a code nor an error")
            self.finish(error=error)
            return 400, "Sign-in failed", "The answer had no code. Return to the terminal."
        if not self.finish(code=code):
            return 400, "Sign-in already finished", "Return to the terminal."
        return (
            200,
            "Signed in",
            "The sign-in finished. You can close this window and return to the terminal.",
        )


def _listen_error(port: int, exc: OSError) -> LoginError:
    """The error for a listener that could not listen on ``port``."""
    if exc.errno == errno.EADDRINUSE:
        problem = "is in use (by another program, or a login still running)"
    else:
        problem = f"cannot be listened on ({exc.strerror or type(exc).__name__})"
    return LoginError(
        f"the browser login's listener on 127.0.0.1:{port} {problem}: pass port=0 to"
        " use a free port if the server accepts any loopback port (RFC 8252 section"
        " 7.3), or free that port"
    )


class _OneShotServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    listener: _Listener


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _OneShotServer
    timeout = 10  # a connection that sends nothing is dropped

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the query holds the authorization code."""

    def do_GET(self) -> None:
        listener = self.server.listener
        path, _, query = self.path.partition("?")
        if path != listener.path:
            self._page(404, "Not found", "Nothing here. Return to the terminal.")
            return
        params = dict(urllib.parse.parse_qsl(query[:8192]))
        status, title, text = listener.outcome(params)
        self._page(status, title, text)

    def _page(self, status: int, title: str, text: str) -> None:
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True
