"""MemoryTokenStore keeps the store contract."""

from __future__ import annotations

import pytest

from requests_refresh import MemoryTokenStore, TokenStore

from .store_contract import TokenStoreContract, make_token


class TestMemoryTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self) -> TokenStore:
        return MemoryTokenStore()


def test_repr_shows_no_secret() -> None:
    """repr() tells whether a token is held, not what it is."""
    store = MemoryTokenStore(make_token(1))
    assert "secret" not in repr(store)
    assert "has_token=True" in repr(store)


def test_save_refuses_what_is_not_a_token() -> None:
    """Saving a dict by mistake fails at once, not at the next request."""
    with pytest.raises(TypeError, match="Token"):
        MemoryTokenStore().save({"access_token": "x"})  # type: ignore[arg-type]
