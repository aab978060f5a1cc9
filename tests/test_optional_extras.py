"""keyring and redis-py are optional extras: the package imports without them, and only
constructing the store that needs one asks for it. Runs with and without them installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (the module, its extra, the store, how to construct one)
EXTRAS = [
    pytest.param("keyring", "keyring", "KeyringTokenStore", '("service", "user")', id="keyring"),
    pytest.param("redis", "redis", "RedisTokenStore", '("redis://127.0.0.1:6379/0")', id="redis"),
]

# Runs in a child process where `import {module}` fails as if it were not installed.
_WITHOUT = textwrap.dedent(
    """
    import sys
    sys.modules[{module!r}] = None  # any import of {module} now raises ImportError

    import requests_refresh
    from requests_refresh import {store}

    assert {store!r} in requests_refresh.__all__
    try:
        {store}{arguments}
    except ImportError as exc:
        assert exc.__cause__ is not None, "the original ImportError is chained"
        print(exc)
    else:
        raise SystemExit("constructed a {store} without {module}")
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


@pytest.mark.parametrize(("module", "extra", "store", "arguments"), EXTRAS)
def test_the_package_imports_without_the_extra_and_the_store_names_it(
    module: str, extra: str, store: str, arguments: str
) -> None:
    """Without the module, import works and construction says which extra to install."""
    result = _run(_WITHOUT.format(module=module, store=store, arguments=arguments))
    assert result.returncode == 0, result.stderr
    assert f"pip install 'requests-refresh[{extra}]'" in result.stdout


@pytest.mark.parametrize(("module", "extra", "store", "arguments"), EXTRAS)
def test_importing_the_package_does_not_import_the_extra(
    module: str, extra: str, store: str, arguments: str
) -> None:
    """`import requests_refresh` (and its testing module) leaves the module unimported."""
    result = _run(
        f"import sys, requests_refresh, requests_refresh.testing; print({module!r} in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
