"""Validation of the options every part of the library takes, with one rule each."""

from __future__ import annotations

import math

__all__ = ["check_seconds"]


def check_seconds(name: str, value: object, *, allow_zero: bool = True) -> float:
    """``value`` as a float when it is a finite number of seconds, 0 or more.

    One rule for every duration an option takes (timeouts, leeways, leases, cool-offs):
    a bool, a string, NaN or infinity is refused. Infinity is no duration: a wait
    without a bound is exactly what the library promises never to make.

    Args:
        name: the option's name, for the message.
        value: what the caller passed.
        allow_zero: whether 0 is accepted; if not, the value must be more than 0.

    Raises:
        ValueError: ``value`` is not such a number; the message names ``name`` and
            quotes a number, never a string (an option may hold a secret by mistake).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a finite number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "more than 0"
        raise ValueError(f"{name} must be a finite number of seconds, {least}, not {number!r}")
    return number
