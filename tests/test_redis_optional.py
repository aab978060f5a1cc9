"""redis-py is an optional extra: the package imports without it, and only constructing a
RedisTokenStore asks for it. Runs with and without redis-py installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a child process where `import redis` fails as if it were not installed.
_WITHOUT_REDIS = textwrap.dedent(
    """
    import sys
    sys.modules["redis"] = None  # any import of redis now raises ImportError

    import requests_refresh
    from requests_refresh import RedisTokenStore

    assert "RedisTokenStore" in requests_refresh.__all__
    try:
        RedisTokenStore("redis://127.0.0.1:6379/0")
    except ImportError as exc:
        assert exc.__cause__ is not None, "the original ImportError is chained"
        print(exc)
    else:
        raise SystemExit("constructed a RedisTokenStore without redis-py")
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


def test_the_package_imports_without_redis_and_the_store_names_the_extra() -> None:
    """Without redis-py, import works and construction says which extra to install."""
    result = _run(_WITHOUT_REDIS)
    assert result.returncode == 0, result.stderr
    assert "pip install 'requests-refresh[redis]'" in result.stdout


def test_importing_the_package_does_not_import_redis() -> None:
    """`import requests_refresh` (and its testing module) leaves redis-py unimported."""
    result = _run(
        "import sys, requests_refresh, requests_refresh.testing; print('redis' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
