"""KeyringTokenStore on the real freedesktop Secret Service: gnome-keyring-daemon, started
headless in a private D-Bus session and unlocked from stdin, in a throwaway home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("keyring")  # the rest needs it: skipped where the extra is missing

ROOT = Path(__file__).resolve().parent.parent
STARTED = "secret-service-started"

# Runs inside the D-Bus session, with the daemon unlocked.
_CHILD = textwrap.dedent(
    """
    import sys
    import keyring
    from requests_refresh import KeyringTokenStore, Token

    backend = keyring.get_keyring()
    assert type(backend).__module__ == "keyring.backends.SecretService", backend
    body = "eyJhbGciOiJSUzI1NiJ9." + "x" * 4000 + ".signature"
    token = Token(body, "rt-" + "r" * 200, expires_at=1_900_000_000.0,
                  extra={"id_token": body.replace("x", "y")})
    store = KeyringTokenStore("requests-refresh-tests", "alice", lock_path=sys.argv[1])
    assert store.load() is None
    store.save(token)
    other = KeyringTokenStore("requests-refresh-tests", "alice", lock_path=sys.argv[1])
    assert other.load() == token
    store.save(Token("short"))
    assert store.load() == Token("short")
    store.clear()
    assert store.load() is None
    print("round-tripped")
    """
)


def test_a_long_token_round_trips_through_gnome_keyring(tmp_path: Path) -> None:
    """Save, reload through another handle, shrink and clear, on gnome-keyring-daemon."""
    dbus_run_session = shutil.which("dbus-run-session")
    missing = [
        name for name in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(name) is None
    ]
    if dbus_run_session is None or missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: no headless Secret Service here")
    pytest.importorskip("secretstorage", reason="keyring's Secret Service backend needs it")
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    script = (
        "printf test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
        f' && echo {STARTED} && exec "$0" -c "$1" "$2"'
    )
    try:
        result = subprocess.run(
            [
                dbus_run_session,
                "--",
                "sh",
                "-c",
                script,
                sys.executable,
                _CHILD,
                str(tmp_path / "store.lock"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the Secret Service test did not finish within {exc.timeout:g} s")
    if STARTED not in result.stdout:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"gnome-keyring-daemon could not start headless here: {reason}")
    assert result.returncode == 0, result.stderr
    assert "round-tripped" in result.stdout
