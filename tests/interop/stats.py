"""Counters a test server keeps of its token endpoint, served as JSON on ``/__stats``.

Shared by both servers so that the tests read them the same way.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

#: Form fields of token requests the counters show, as ``"<grant type> <name>=<value>"``
#: (never a secret: client secrets and codes are not among them).
SHOWN_PARAMS = ("scope", "audience")


class TokenEndpointStats:
    """Token endpoint calls by grant type, successes, error codes with their statuses, and
    the :data:`SHOWN_PARAMS` each call sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._issued: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._statuses: dict[str, set[int]] = {}
        self._events: Counter[str] = Counter()
        self._params: Counter[str] = Counter()

    def note(self, event: str) -> None:
        """Count a server-side event, such as a detected refresh token reuse."""
        with self._lock:
            self._events[event] += 1

    def record(
        self, grant_type: str, status: int, body: bytes, form: Mapping[str, str] | None = None
    ) -> None:
        """Count one answer of the token endpoint (``form``: the request's form fields)."""
        fields = form or {}
        shown = [f"{grant_type} {name}={fields[name]}" for name in SHOWN_PARAMS if name in fields]
        error = None
        if status != 200:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            error = payload.get("error") if isinstance(payload, dict) else None
            error = error if isinstance(error, str) else f"HTTP {status}"
        with self._lock:
            self._calls[grant_type] += 1
            self._params.update(shown)
            if error is None:
                self._issued[grant_type] += 1
            else:
                self._errors[error] += 1
                self._statuses.setdefault(error, set()).add(status)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(self._calls),
                "issued": dict(self._issued),
                "errors": dict(self._errors),
                "error_statuses": {error: sorted(s) for error, s in self._statuses.items()},
                "events": dict(self._events),
                "params": dict(self._params),
            }
