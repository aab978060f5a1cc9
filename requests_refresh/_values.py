"""Small rules for values, one each: durations, numbers, server text, type names.

Every part of the library that validates a number of seconds, reads a JSON number,
quotes what a server said or names a type in a message does it here, so that the rule
is the same everywhere.
"""

from __future__ import annotations

import math

__all__ = ["check_seconds", "clean_server_text", "json_number", "quote_server_text", "type_name"]

#: The longest server text or type name kept in a message, in characters.
MAX_QUOTED = 200


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


def json_number(value: object, *, strings: bool = False) -> float | None:
    """A number read from JSON (or a form) as a float; None for anything else.

    An integer too large for a float (JSON allows any number of digits) is infinity of
    its sign, for the caller's bounds to refuse or clamp; NaN and bools are None. With
    ``strings``, a string of ASCII that parses as a number is one too (some servers
    send ``"3599"``); surrounding white space is allowed.
    """
    if isinstance(value, str) and strings:
        text = value.strip()
        if not text.isascii():
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf if value > 0 else -math.inf
    return None if math.isnan(number) else number


def clean_server_text(text: str, limit: int = MAX_QUOTED) -> str:
    """Text a server sent, fit for a message or a log: one printable line, cut short.

    Every character that is not printable (line breaks, escapes, controls) becomes
    U+FFFD, so that a hostile server cannot forge lines in a log or a terminal.
    """
    if len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    return "".join(char if char.isprintable() else "\N{REPLACEMENT CHARACTER}" for char in text)


def quote_server_text(value: object, limit: int = MAX_QUOTED) -> str:
    """A value a server sent, cleaned (:func:`clean_server_text`) and in quotes."""
    text = value if isinstance(value, str) else repr(value)
    return repr(clean_server_text(text, limit))


def type_name(value: object) -> str:
    """The qualified name of ``value``'s type, bounded: code, never data."""
    kind = type(value)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    return name[:MAX_QUOTED]
