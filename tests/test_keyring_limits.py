"""KeyringTokenStore never stores what it could not load back: a token that would need more
parts than a load accepts is refused at save time, and the stored token stays usable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("keyring")  # the rest needs it: skipped where the extra is missing

from requests_refresh import KeyringTokenStore, Token, TokenStoreError

from .keyring_backends import MemoryKeyring
from .store_contract import make_token

SERVICE = "requests-refresh-tests"
USERNAME = "alice@example.com"
PART_SIZE = 128  # the smallest max_part_size: the fewest characters for the most parts
MAX_PARTS = 10_000  # what a load accepts (keyring_store._MAX_PARTS)


def token_of_length(characters: int) -> Token:
    """A token whose stored JSON is exactly ``characters`` long."""

    def length(token: Token) -> int:
        return len(json.dumps(token.to_dict(), ensure_ascii=True, separators=(",", ":")))

    overhead = length(Token("a")) - 1
    token = Token("a" * (characters - overhead), refresh_token=None)
    assert length(token) == characters
    return token


def make_store(backend: MemoryKeyring, tmp_path: Path) -> KeyringTokenStore:
    return KeyringTokenStore(
        SERVICE,
        USERNAME,
        lock_path=tmp_path / "store.lock",
        backend=backend,
        max_part_size=PART_SIZE,
        allow_insecure_backend=True,  # an in-memory test backend
    )


def test_token_needing_too_many_parts_is_refused_at_save_and_the_old_one_kept(
    tmp_path: Path,
) -> None:
    """A token over 10,000 parts is a TokenStoreError at save, not a "damaged header" later."""
    backend = MemoryKeyring()
    store = make_store(backend, tmp_path)
    store.save(make_token(1))
    before = dict(backend.entries)
    with pytest.raises(TokenStoreError, match=r"more than the 10,000 parts") as caught:
        store.save(token_of_length(PART_SIZE * MAX_PARTS + 1))
    message = str(caught.value)
    assert "max_part_size" in message
    assert "aaaa" not in message
    assert backend.entries == before  # nothing written, nothing deleted
    assert make_store(backend, tmp_path).load() == make_token(1)


def test_token_of_exactly_the_most_parts_round_trips(tmp_path: Path) -> None:
    """The largest token the limit allows (10,000 parts) is saved and loads back equal."""
    backend = MemoryKeyring()
    token = token_of_length(PART_SIZE * MAX_PARTS)
    make_store(backend, tmp_path).save(token)
    assert len(backend.entries) == MAX_PARTS + 1  # the header and its parts
    assert make_store(backend, tmp_path).load() == token
