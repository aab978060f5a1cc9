"""The counters an adapter keeps of its refreshes (:attr:`RefreshAdapter.stats`)."""

from __future__ import annotations

import dataclasses

__all__ = ["RefreshStats"]


@dataclasses.dataclass(frozen=True)
class RefreshStats:
    """Counters of one adapter, read with :attr:`RefreshAdapter.stats`.

    Attributes:
        generation: the current token generation (0 for the first token loaded).
        refreshes: refreshes this process made (token endpoint calls that succeeded).
        adopted: tokens taken from the store because another process (or a new
            login) had stored a newer one: refreshes saved.
        failures: refresh attempts that failed.
        replays: requests sent again after their token was refused.
        waits: times a request blocked until another thread's refresh finished.
    """

    generation: int = 0
    refreshes: int = 0
    adopted: int = 0
    failures: int = 0
    replays: int = 0
    waits: int = 0

    def plus(self, **increments: int) -> RefreshStats:
        """These counters with ``increments`` added (``plus(waits=1)``)."""
        return dataclasses.replace(
            self, **{name: getattr(self, name) + n for name, n in increments.items()}
        )
