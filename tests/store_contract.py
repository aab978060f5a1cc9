"""The contract every TokenStore keeps. A store's test module subclasses
:class:`TokenStoreContract` and provides a ``store`` fixture (an empty store) and,
for stores that can be opened twice, ``reopen`` (a second handle on the same data).
"""

from __future__ import annotations

import threading

import pytest

from requests_refresh import Token, TokenStore


def make_token(n: int = 0, **changes: object) -> Token:
    """A distinct token per ``n``, with every field set."""
    fields: dict[str, object] = {
        "access_token": f"access-{n}-secret",
        "refresh_token": f"refresh-{n}-secret",
        "expires_at": 1_900_000_000.5 + n,
        "issued_at": 1_899_999_000.25 + n,
        "scope": "read write",
        "extra": {"id_token": f"id-{n}", "nested": {"k": [1, 2]}},
    }
    fields.update(changes)
    return Token(**fields)  # type: ignore[arg-type]


class TokenStoreContract:
    """Behaviour shared by every store."""

    @pytest.fixture
    def store(self) -> TokenStore:
        raise NotImplementedError("a store's test module provides this fixture")

    @pytest.fixture
    def reopen(self, store: TokenStore) -> TokenStore:
        """A second handle on the same data; the same object for in-memory stores."""
        return store

    def test_empty_store_loads_none(self, store: TokenStore) -> None:
        """A store nothing was saved to has no token."""
        assert store.load() is None

    def test_save_then_load_round_trips_every_field(
        self, store: TokenStore, reopen: TokenStore
    ) -> None:
        """What is saved comes back equal, extra fields included, through another handle."""
        token = make_token(1)
        store.save(token)
        loaded = reopen.load()
        assert loaded == token
        assert loaded is not None
        assert loaded.extra == token.extra

    def test_minimal_token_round_trips(self, store: TokenStore, reopen: TokenStore) -> None:
        """A token with only an access token round-trips, its missing fields still missing."""
        token = Token("only-access")
        store.save(token)
        assert reopen.load() == token

    def test_save_replaces_the_previous_token(self, store: TokenStore, reopen: TokenStore) -> None:
        """A second save replaces the first."""
        store.save(make_token(1))
        store.save(make_token(2))
        assert reopen.load() == make_token(2)

    def test_clear_removes_the_token(self, store: TokenStore, reopen: TokenStore) -> None:
        """After clear(), nothing is stored."""
        store.save(make_token(1))
        store.clear()
        assert reopen.load() is None

    def test_clear_on_an_empty_store_is_not_an_error(self, store: TokenStore) -> None:
        """Clearing twice is fine."""
        store.clear()
        store.clear()
        assert store.load() is None

    def test_lock_can_be_taken_around_load_and_save(self, store: TokenStore) -> None:
        """The coordinator's reload-refresh-save sequence works under lock()."""
        store.save(make_token(1))
        with store.lock():
            assert store.load() == make_token(1)
            store.save(make_token(2))
        assert store.load() == make_token(2)

    def test_concurrent_saves_leave_one_whole_token(self, store: TokenStore) -> None:
        """Threads saving at once leave exactly one of their tokens, never a mix."""
        tokens = [make_token(n) for n in range(8)]
        barrier = threading.Barrier(len(tokens))
        errors: list[BaseException] = []

        def save(token: Token) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(5):
                    store.save(token)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=save, args=(token,)) for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert store.load() in tokens
