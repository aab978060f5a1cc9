"""Fixtures of the interoperability suite: third-party servers, each in its own process.

Each server is started once per test session, when a test first asks for it, and
stopped by its PID at the end. Without the ``interop`` extra its tests skip, saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from .idp import KINDS, IdP, start


class Servers:
    """The servers started so far in this session, by kind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[str, IdP] = {}

    def get(self, name: str) -> IdP:
        kind = KINDS[name]
        missing = [module for module in kind.needs if importlib.util.find_spec(module) is None]
        if missing:
            pytest.skip(
                f"the {kind.distribution} server needs {', '.join(missing)}:"
                " pip install -e '.[interop]'"
            )
        if name not in self.running:
            self.running[name] = start(kind, self.root / name)
        return self.running[name]

    def stop(self) -> None:
        for idp in self.running.values():
            idp.server.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Every third-party server this session started; all stopped at its end."""
    started = Servers(tmp_path_factory.mktemp("interop"))
    yield started
    started.stop()


@pytest.fixture(scope="session", params=sorted(KINDS))
def idp(request: pytest.FixtureRequest, servers: Servers) -> IdP:
    """Each third-party authorization server in turn (the scenarios run on every one)."""
    return servers.get(request.param)


@pytest.fixture(scope="session")
def dot(servers: Servers) -> IdP:
    """django-oauth-toolkit, for what only it does."""
    return servers.get("dot")


@pytest.fixture(scope="session")
def authlib(servers: Servers) -> IdP:
    """Authlib's server, for what only it does."""
    return servers.get("authlib")
