"""The library and its command line never import the test server; only the demo does."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["requests_refresh", "requests_refresh.cli"])
def test_importing_leaves_the_test_server_unimported(module: str) -> None:
    """A fresh interpreter that imports the library or its CLI has no test server, no demo."""
    code = (
        f"import sys, {module}\n"
        "prefixes = ('requests_refresh.testing', 'requests_refresh._demo')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(prefixes))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
