"""browser_login with a real browser: headless Chromium completes the server's login page."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from requests_refresh import browser_login
from requests_refresh.testing import AuthorizationServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (.ci/run installs Debian's chromium package)",
)


class Chromium:
    """Starts headless Chromium on a URL; stops it (its process group) by PID afterwards."""

    def __init__(self) -> None:
        self.profile = tempfile.TemporaryDirectory(prefix="rr-chromium-")
        self.process: subprocess.Popen[bytes] | None = None

    def __call__(self, url: str) -> None:
        assert CHROMIUM is not None
        flags = [
            "--headless",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self.profile.name}",
        ]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.process = subprocess.Popen(
            [CHROMIUM, *flags, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helpers share its process group, stopped together
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.profile.cleanup()


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    """A Chromium opener, stopped at teardown whatever happened."""
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.stop()


def test_headless_chromium_signs_in_through_the_consent_page(chromium: Chromium) -> None:
    """Chromium loads the consent page, its form approves, and the redirect reaches us."""
    with AuthorizationServer(consent="page", consent_autosubmit=True) as server:
        token = browser_login(
            server.client_id, issuer=server.issuer, open_browser=chromium, timeout=60
        )
        assert token.refresh_token is not None
        assert server.stats.authorization_codes == 1
        assert server.stats.code_exchanges == 1
    assert chromium.process is not None
