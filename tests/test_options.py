"""Every duration an option takes follows one rule: a finite number of seconds."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from requests_refresh import (
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    RefreshAdapter,
)


def _adapter(**options: Any) -> object:
    return RefreshAdapter(store=MemoryTokenStore(), refresher=lambda token: token, **options)


def _file_store(tmp_path: Path, **options: Any) -> object:
    return FileTokenStore(tmp_path / "tokens.json", **options)


def _keyring_store(**options: Any) -> object:
    pytest.importorskip("keyring")
    return KeyringTokenStore("service", "user", **options)


def _redis_store(**options: Any) -> object:
    redis = pytest.importorskip("redis")
    return RedisTokenStore(redis.Redis(), **options)


_OPTIONS: list[tuple[str, Callable[..., object], bool]] = [
    ("leeway", lambda _: _adapter, True),
    ("refresh_timeout", lambda _: _adapter, True),
    ("cooloff", lambda _: _adapter, True),
    ("max_cooloff", lambda _: _adapter, True),
    ("lock_timeout", lambda tmp: lambda **o: _file_store(tmp, **o), True),
    ("lock_timeout", lambda _: _keyring_store, True),
    ("lock_timeout", lambda _: _redis_store, True),
    ("lease", lambda _: _redis_store, False),
    ("socket_timeout", lambda _: _redis_store, False),
]


@pytest.mark.parametrize(("option", "build", "zero_ok"), _OPTIONS)
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, -1, True, "5"])
def test_a_duration_that_is_no_finite_number_is_refused_naming_the_option(
    tmp_path: Path,
    option: str,
    build: Callable[[Path], Callable[..., object]],
    zero_ok: bool,
    value: object,
) -> None:
    """Infinity, NaN, a negative number, a bool or a string is a ValueError naming it."""
    with pytest.raises(ValueError, match=f"{option} must be a finite number of seconds"):
        build(tmp_path)(**{option: value})


@pytest.mark.parametrize(("option", "build", "zero_ok"), _OPTIONS)
def test_zero_and_a_plain_number_are_accepted_where_they_make_sense(
    tmp_path: Path, option: str, build: Callable[[Path], Callable[..., object]], zero_ok: bool
) -> None:
    """A whole or fractional number of seconds is taken; 0 only where it means something."""
    build(tmp_path)(**{option: 2.5})
    build(tmp_path)(**{option: 3})
    if zero_ok:
        build(tmp_path)(**{option: 0})
    else:
        with pytest.raises(ValueError, match="more than 0"):
            build(tmp_path)(**{option: 0})
