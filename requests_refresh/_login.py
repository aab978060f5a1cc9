"""What the adapter tells the operator about a login, checked as each token comes in."""

from __future__ import annotations

import datetime
import logging

from .token import Token

__all__ = ["LoginWatch", "format_utc"]

logger = logging.getLogger("requests_refresh")


class LoginWatch:
    """Logs, once each, that a login's tokens have no expiry and that the login ends soon.

    :meth:`installed` is called with each token the adapter starts using (loaded,
    refreshed or adopted), with the adapter's lock held: never per request.

    * A token without ``expires_at`` that follows one with it (or none) is logged at
      DEBUG: it is used until the server refuses it. The refreshes of such a token that
      again bring none do not log again.
    * A token whose login ends (``refresh_expires_at``) within ``warning`` seconds is
      logged at WARNING, once; again only after a token whose login ends later than that
      (a new login, or a server that extended it) has come in between. ``warning`` 0
      turns it off.

    Neither message holds anything secret: times, never tokens.
    """

    def __init__(self, warning: float) -> None:
        self.warning = warning
        self._expiry_known = True  # the last token had an expiry (or there was none)
        self._warned = False  # the login's end was announced

    def installed(self, token: Token, now: float) -> None:
        """Note ``token``, now the one in use; ``now`` is the adapter's clock."""
        if token.expires_at is None and self._expiry_known:
            logger.debug(
                "the token has no expiry (its token response had no expires_in, or 0):"
                " it is used until the server refuses it, then refreshed"
            )
        self._expiry_known = token.expires_at is not None
        ends = token.refresh_expires_at
        if ends is None or self.warning <= 0:
            return
        remaining = ends - now
        if remaining > self.warning:
            self._warned = False
            return
        if self._warned:
            return
        self._warned = True
        when = format_utc(ends)
        if remaining <= 0:
            logger.warning(
                "the login ended at %s: requests fail with InvalidGrantError once the"
                " current access token expires; sign in again and save the new token",
                when,
            )
        else:
            logger.warning(
                "the login ends at %s, in %s: after that requests fail with"
                " InvalidGrantError; sign in again before then and save the new token",
                when,
                _hours(remaining),
            )


def format_utc(when: float) -> str:
    """``when`` (epoch seconds) as an ISO 8601 UTC time, to the second."""
    try:
        moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):  # before the calendar's start
        return f"{when!r} (epoch seconds)"
    return moment.isoformat(timespec="seconds")


def _hours(seconds: float) -> str:
    """``42 min`` or ``5.5 h``."""
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
