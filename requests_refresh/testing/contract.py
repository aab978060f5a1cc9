"""The behaviour every :class:`~requests_refresh.TokenStore` keeps, as tests to run.

:class:`TokenStoreContract` is the contract as a pytest test class to subclass;
:func:`make_token` makes the tokens it stores, for a store's own tests too.
"""

from __future__ import annotations

import threading
import unittest
from typing import Any

from ..stores import TokenStore
from ..token import Token

__all__ = ["TokenStoreContract", "make_token"]


def make_token(n: int = 0, **changes: Any) -> Token:
    """A distinct token per ``n`` with every field set, for a store's own tests.

    ``make_token(1) == make_token(1)`` and ``make_token(1) != make_token(2)``; the contract
    saves and loads these. ``changes`` replaces fields (``make_token(3, scope=None)``).
    Every secret in it is fake and easy to spot in a log: ``access-3-secret``.
    """
    fields: dict[str, Any] = {
        "access_token": f"access-{n}-secret",
        "refresh_token": f"refresh-{n}-secret",
        "expires_at": 1_900_000_000.5 + n,
        "issued_at": 1_899_999_000.25 + n,
        "scope": "read write",
        "extra": {"id_token": f"id-{n}", "nested": {"k": [1, 2]}},
    }
    fields.update(changes)
    return Token(**fields)


class TokenStoreContract:
    """The behaviour every :class:`~requests_refresh.TokenStore` keeps, as reusable tests.

    Writing a store for another engine (PostgreSQL, DynamoDB, ...)? Subclass this in a
    pytest test class and say how to make your store; pytest runs every ``test_*``
    method below against it::

        class TestMyStore(TokenStoreContract):
            shared = True  # other processes can open the same data: lock() must exclude

            @pytest.fixture(autouse=True)
            def _database(self, tmp_path):  # whatever your store needs, per test
                self.url = start_database(tmp_path)

            def make_store(self):
                return MyStore(self.url)  # empty at the start of each test

            def reopen_store(self, store):
                return MyStore(self.url)  # a second handle on the same data

    The class needs nothing but the standard library (a test that does not apply is
    skipped with :class:`unittest.SkipTest`, which pytest honours).

    Tests of your store's own (its expiry, its errors) can make their tokens with
    :func:`make_token`, as the contract does.

    Attributes:
        shared: whether other handles (processes, machines) share the store's data: then
            :meth:`reopen_store` returns a new handle and :meth:`TokenStore.lock` must exclude
            it. False for a store that lives in one process.
        lock_wait: seconds the lock tests wait for something that must not happen (a
            second handle taking a lock that is held) and, times 20, for what must.
    """

    shared = False
    lock_wait = 0.3

    def make_store(self) -> TokenStore:
        """An empty store; called at most once per test."""
        raise NotImplementedError("a contract test class implements make_store()")

    def reopen_store(self, store: TokenStore) -> TokenStore:
        """A second handle on ``store``'s data; the same object for in-memory stores."""
        return store

    def _pair(self) -> tuple[TokenStore, TokenStore]:
        store = self.make_store()
        return store, self.reopen_store(store)

    def _require_shared(self) -> None:
        if not self.shared:
            raise unittest.SkipTest("the store lives in one process (shared = False)")

    def test_empty_store_loads_none(self) -> None:
        """A store nothing was saved to has no token."""
        assert self.make_store().load() is None

    def test_save_then_load_round_trips_every_field(self) -> None:
        """What is saved comes back equal, extra fields included, through another handle."""
        store, other = self._pair()
        token = make_token(1)
        store.save(token)
        loaded = other.load()
        assert loaded == token
        assert loaded is not None
        assert loaded.extra == token.extra

    def test_minimal_token_round_trips(self) -> None:
        """A token with only an access token round-trips, its missing fields still missing."""
        store, other = self._pair()
        token = Token("only-access")
        store.save(token)
        assert other.load() == token

    def test_save_replaces_the_previous_token(self) -> None:
        """A second save replaces the first."""
        store, other = self._pair()
        store.save(make_token(1))
        store.save(make_token(2))
        assert other.load() == make_token(2)

    def test_load_sees_a_save_made_through_another_handle(self) -> None:
        """load() reads the store each time: a token saved elsewhere is seen at once."""
        store, other = self._pair()
        store.save(make_token(1))
        assert store.load() == make_token(1)
        other.save(make_token(2))
        assert store.load() == make_token(2)

    def test_clear_removes_the_token(self) -> None:
        """After clear(), nothing is stored."""
        store, other = self._pair()
        store.save(make_token(1))
        store.clear()
        assert other.load() is None

    def test_clear_on_an_empty_store_is_not_an_error(self) -> None:
        """Clearing twice is fine."""
        store = self.make_store()
        store.clear()
        store.clear()
        assert store.load() is None

    def test_save_refuses_what_is_not_a_token(self) -> None:
        """Saving a dict by mistake fails at once with TypeError, and stores nothing."""
        store = self.make_store()
        try:
            store.save({"access_token": "x"})  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("save() accepted a dict")
        assert store.load() is None

    def test_lock_can_be_taken_around_load_and_save(self) -> None:
        """The adapter's reload-refresh-save sequence works under lock(), which re-enters."""
        store = self.make_store()
        store.save(make_token(1))
        with store.lock():
            assert store.load() == make_token(1)
            store.save(make_token(2))
            with store.lock():
                store.save(make_token(3))
        assert store.load() == make_token(3)

    def test_lock_excludes_another_handle_until_released(self) -> None:
        """While one handle holds lock(), another handle's lock() waits for its release."""
        self._require_shared()
        store, other = self._pair()
        taken = threading.Event()
        errors: list[BaseException] = []

        def take() -> None:
            try:
                with other.lock():
                    taken.set()
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        with store.lock():
            thread = threading.Thread(target=take)
            thread.start()
            assert not taken.wait(self.lock_wait), "took a lock another handle holds"
        assert taken.wait(self.lock_wait * 20), "the lock was not taken once released"
        thread.join(timeout=self.lock_wait * 20)
        assert not errors

    def test_concurrent_saves_leave_one_whole_token(self) -> None:
        """Threads saving at once leave exactly one of their tokens, never a mix."""
        store = self.make_store()
        tokens = [make_token(n) for n in range(8)]
        barrier = threading.Barrier(len(tokens))
        errors: list[BaseException] = []

        def save(token: Token) -> None:
            try:
                barrier.wait(timeout=10)
                for _ in range(5):
                    store.save(token)
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=save, args=(token,)) for token in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        assert store.load() in tokens
