"""Reading a stored token's JSON: of bounded size, and never quoting what it read."""

from __future__ import annotations

import json

#: The largest stored token read back (a token file, a Redis value), in bytes; a save
#: that would store more is refused.
MAX_TOKEN_SIZE = 1024 * 1024


class StoredJSONError(ValueError):
    """Stored text is not JSON; the message says what is wrong, never quoting the text."""


def parse_stored_json(raw: bytes | str) -> object:
    """``raw`` (UTF-8 bytes, or text) parsed as JSON.

    Raises:
        StoredJSONError: it is not UTF-8 or not valid JSON (the position is given, never
            the content), it is nested too deeply for the parser, or it holds a number
            with more digits than ``sys.get_int_max_str_digits()``.
    """
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    except json.JSONDecodeError as exc:
        problem = f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    except RecursionError:
        problem = "it is nested too deeply"
    except ValueError:
        problem = "it holds a number too long to read"
    raise StoredJSONError(problem)
