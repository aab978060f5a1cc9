"""keyring is an optional extra: the package imports without it, and only constructing a
KeyringTokenStore asks for it. Runs with and without keyring installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a child process where `import keyring` fails as if it were not installed.
_WITHOUT_KEYRING = textwrap.dedent(
    """
    import sys
    sys.modules["keyring"] = None  # any import of keyring now raises ImportError

    import requests_refresh
    from requests_refresh import KeyringTokenStore

    assert "KeyringTokenStore" in requests_refresh.__all__
    try:
        KeyringTokenStore("service", "user")
    except ImportError as exc:
        assert exc.__cause__ is not None, "the original ImportError is chained"
        print(exc)
    else:
        raise SystemExit("constructed a KeyringTokenStore without keyring")
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_package_imports_without_keyring_and_the_store_names_the_extra() -> None:
    """Without keyring, import works and construction says which extra to install."""
    result = _run(_WITHOUT_KEYRING)
    assert result.returncode == 0, result.stderr
    assert "pip install 'requests-refresh[keyring]'" in result.stdout


def test_importing_the_package_does_not_import_keyring() -> None:
    """`import requests_refresh` leaves keyring unimported: no cost for those who skip it."""
    result = _run("import sys, requests_refresh; print('keyring' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
