"""The store contract (shipped as :class:`requests_refresh.testing.TokenStoreContract`),
fed by pytest fixtures: a store's test module subclasses :class:`TokenStoreContract`
here and provides a ``store`` fixture (an empty store) and, for stores that can be
opened twice, ``reopen`` (a second handle on the same data).
"""

from __future__ import annotations

import pytest

from requests_refresh import TokenStore, testing
from requests_refresh.testing import make_token

__all__ = ["TokenStoreContract", "make_token"]


class TokenStoreContract(testing.TokenStoreContract):
    """The shipped contract, with the store made by the ``store`` and ``reopen`` fixtures."""

    @pytest.fixture
    def store(self) -> TokenStore:
        raise NotImplementedError("a store's test module provides this fixture")

    @pytest.fixture
    def reopen(self, store: TokenStore) -> TokenStore:
        """A second handle on the same data; the same object for in-memory stores."""
        return store

    @pytest.fixture(autouse=True)
    def _bind_fixtures(self, store: TokenStore, reopen: TokenStore) -> None:
        self._fixture_store = store
        self._fixture_reopen = reopen

    def make_store(self) -> TokenStore:
        return self._fixture_store

    def reopen_store(self, store: TokenStore) -> TokenStore:
        return self._fixture_reopen
