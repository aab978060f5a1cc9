"""A RefreshAdapter is never pickled or copied: a copy would spend the same login twice."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
import requests

from requests_refresh import MemoryTokenStore, RefreshAdapter, Token


def _refresh(token: Token) -> Token:
    return Token("at-new", "rt-new")


@pytest.fixture
def adapter() -> RefreshAdapter:
    store = MemoryTokenStore(Token("at-secret", "rt-secret"))
    return RefreshAdapter(store=store, refresher=_refresh, origin="https://api.example.test")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_raises_type_error_saying_what_to_do(
    adapter: RefreshAdapter, protocol: int
) -> None:
    """Every pickle protocol refuses, naming the shared stores to build one per process."""
    with pytest.raises(TypeError, match="cannot be pickled or copied") as caught:
        pickle.dumps(adapter, protocol=protocol)
    message = str(caught.value)
    assert "in the process that uses it" in message
    for store in ("FileTokenStore", "RedisTokenStore", "KeyringTokenStore"):
        assert store in message


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copying_refuses_as_pickling_does(
    adapter: RefreshAdapter, duplicate: Callable[[object], object]
) -> None:
    """copy.copy and copy.deepcopy raise the same TypeError as pickle."""
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        duplicate(adapter)


def test_the_refusal_carries_no_secret(adapter: RefreshAdapter) -> None:
    """The message names no token: it may end up in a worker's log."""
    with pytest.raises(TypeError) as caught:
        pickle.dumps(adapter)
    assert "secret" not in str(caught.value)


def test_a_session_with_the_adapter_mounted_refuses_too(adapter: RefreshAdapter) -> None:
    """Pickling a session (multiprocessing's spawn) stops at the adapter, not silently."""
    with requests.Session() as session:
        adapter.mount(session, "https://api.example.test/")
        with pytest.raises(TypeError, match="cannot be pickled or copied"):
            pickle.dumps(session)


def test_the_adapter_still_works_after_a_refused_pickle(adapter: RefreshAdapter) -> None:
    """A failed attempt to pickle leaves the adapter as it was."""
    with pytest.raises(TypeError):
        pickle.dumps(adapter)
    assert adapter.origins == ("https://api.example.test",)
    assert adapter.stats.generation == 0
