"""One renewal of the token, as a transaction on the store; and what a refresher is.

:func:`renew` takes the store's lock, reloads, and either adopts a token someone else
stored or asks the refresher for a new one (or, from an empty store, a first one) and
saves it. It runs without the coordinator's lock, by one thread at a time, and returns
what happened as a frozen :class:`Renewal`: the coordinator applies it under its lock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ._values import type_name
from .exceptions import (
    LoginRequiredError,
    NoTokenError,
    RefreshError,
    RequestsRefreshError,
    TokenStoreConflictError,
    refresher_failure,
)
from .stores import TokenStore
from .token import Token

__all__ = ["AcquiringRefresher", "Refresher", "Renewal", "renew"]

logger = logging.getLogger("requests_refresh")


#: Called as ``on_refresh(old, new)`` once per refresh this process made, after the new
#: token is in use, with no lock held.
RefreshHook = Callable[[Token, Token], None]


@runtime_checkable
class Refresher(Protocol):
    """Turns a token into a new one: ``refresher(token) -> Token``; raises on failure.

    :class:`RefreshTokenGrant` is one; so is any function of that shape. A refresher
    reports a dead login by raising :class:`InvalidGrantError` (any
    :class:`LoginRequiredError`): requests then fail with it until a new login is
    stored. Anything else it raises becomes a :class:`RefreshError` (or, for
    ``requests``' timeouts and connection errors, a
    :class:`TokenEndpointUnavailableError`) and is retried after a cool-off. A
    :class:`RefreshError` whose ``rotated_token`` is set has that token saved to the
    store before the error is reported.
    """

    def __call__(self, token: Token, /) -> Token:
        """Return a new token for ``token`` (usually by spending its refresh token)."""
        ...


@runtime_checkable
class AcquiringRefresher(Refresher, Protocol):
    """A :class:`Refresher` that can also start from nothing: ``acquire() -> Token``.

    With the store empty, the coordinator calls ``acquire()`` (one call for all the
    threads waiting, like a refresh) instead of raising :class:`NoTokenError`.
    ``on_refresh`` is not called for that first token. :class:`ClientCredentialsGrant`
    is one.
    """

    def acquire(self) -> Token:
        """Return a first token, without any earlier one."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Renewal:
    """What one renewal brought: a token (``new``) or an ``error``, never both.

    Attributes:
        new: the token to use now.
        old: the token the refresher turned into ``new``; None for a first token, or
            when ``new`` was adopted.
        adopted: ``new`` was found in the store (stored by another process, or a new
            login), not made by this process.
        saved: ``new`` is in the store (False: kept in memory only, the save failed).
        error: why there is no new token, as a library error.
        rotated: a token carrying a refresh token rotated by a failed refresh: the one
            to present next time.
        rotated_saved: ``rotated`` is in the store.
        interrupted: a ``BaseException`` (``KeyboardInterrupt``...) that stopped the
            renewal; the caller raises it once it has recorded ``error``.
    """

    new: Token | None = None
    old: Token | None = None
    adopted: bool = False
    saved: bool = False
    error: RequestsRefreshError | None = None
    rotated: Token | None = None
    rotated_saved: bool = False
    interrupted: BaseException | None = None


def renew(
    store: TokenStore,
    refresher: Refresher,
    token: Token | None,
    *,
    basis: Token | None,
    is_due: Callable[[Token], bool],
) -> Renewal:
    """Reload, then refresh ``token`` and save the result, under the store's lock.

    ``basis`` is the token last read from or written to the store: a stored token that
    differs from it was stored by someone else, and is adopted instead of calling the
    refresher (unless ``is_due``: then its refresh token, the newest, is refreshed).
    With ``token`` None, or the store found empty, an :class:`AcquiringRefresher` is
    asked for a first token. A refresh token rotated by a failed refresh is saved before
    the error is reported; a save that loses to a newer stored token adopts that one.
    Never raises: every failure is the returned :attr:`Renewal.error`.
    """
    rotated: Token | None = None
    rotated_saved = False
    interrupted: BaseException | None = None
    try:
        with store.lock():
            stored = store.load()
            if stored is None:
                if not isinstance(refresher, AcquiringRefresher):
                    return Renewal(
                        error=NoTokenError(
                            "the token store was cleared (signed out?): sign in again and"
                            " save the new token to the store"
                        )
                    )
                token = None  # start from nothing
            elif stored != basis:
                if not is_due(stored):
                    return Renewal(new=stored, adopted=True, saved=True)
                # Another process stored a token that is already due (its holder went
                # quiet): adopting it would send a token about to be refused. Its
                # refresh token is the newest one, so refresh that instead.
                token = stored
            try:
                result = _call(refresher, token)
            except RefreshError as exc:
                rotated, rotated_saved = _save_rotated(store, exc)
                if isinstance(exc, LoginRequiredError):
                    # Not a reason to give up yet: a new login may have been stored
                    # meanwhile by something that does not take the lock.
                    again = store.load()
                    if again is not None and again not in (stored, rotated):
                        return Renewal(
                            new=again,
                            adopted=True,
                            saved=True,
                            rotated=rotated,
                            rotated_saved=rotated_saved,
                        )
                raise
            if not isinstance(result, Token):
                return Renewal(
                    error=RefreshError(f"the refresher returned {type_name(result)}, not a Token")
                )
            return _save_new(store, result, old=token)
    except RequestsRefreshError as exc:
        error = exc
    except Exception as exc:  # any refresher failure reaches every waiter
        error = refresher_failure(exc)
    except BaseException as exc:  # KeyboardInterrupt...: recorded, then raised again
        error, interrupted = RefreshError("the token refresh was interrupted"), exc
    return Renewal(
        error=error, rotated=rotated, rotated_saved=rotated_saved, interrupted=interrupted
    )


def _call(refresher: Refresher, token: Token | None) -> object:
    """Refresh ``token``; with None, ask the refresher for a first token.

    Typed ``object``: a refresher that breaks its contract is reported, not trusted.
    """
    if token is not None:
        return refresher(token)
    assert isinstance(refresher, AcquiringRefresher)  # noqa: S101 - None only then
    return refresher.acquire()


def _save_new(store: TokenStore, new: Token, *, old: Token | None) -> Renewal:
    """Save a token the refresher just made (store lock held); adopt a newer one."""
    try:
        store.save(new)
    except TokenStoreConflictError as exc:
        # A newer token was stored while ours was in flight (our lease on the lock ran
        # out, or a new sign-in): the stored one wins, so that every process sharing the
        # store goes on with the same token.
        logger.warning("adopting the stored token: %s", exc)
        newer = store.load()
        if newer is None:
            return Renewal(
                error=NoTokenError(
                    "the token store was cleared (signed out?) during a refresh: sign in"
                    " again and save the new token to the store"
                )
            )
        return Renewal(new=newer, adopted=True, saved=True)
    except RequestsRefreshError as exc:
        # The old refresh token may be spent already: keep the new token in memory
        # rather than lose the login, and try to save again next time.
        logger.error("the new token could not be saved (%s); it is kept in memory only", exc)
        return Renewal(new=new, old=old)
    return Renewal(new=new, old=old, saved=True)


def _save_rotated(store: TokenStore, error: RefreshError) -> tuple[Token | None, bool]:
    """Save the refresh token a failed refresh rotated (store lock held).

    The server may have spent the refresh token we presented: the rotated one is the
    login now, so it goes to the store before anything else can fail. The error stops
    carrying it, so that no secret travels with what callers see. Returns the rotated
    token (None if there is none) and whether it was saved.
    """
    rotated, error.rotated_token = error.rotated_token, None
    if not isinstance(rotated, Token) or rotated.refresh_token is None:
        return None, False
    saved = False
    try:
        store.save(rotated)
    except RequestsRefreshError as exc:
        logger.error(
            "the refresh token rotated by a failed refresh could not be saved (%s);"
            " it is kept in memory only",
            exc,
        )
    else:
        saved = True
    logger.warning(
        "the token endpoint rotated the refresh token in an answer that could not be"
        " used (%s); the new refresh token is kept for the next attempt",
        type(error).__name__,
    )
    return rotated, saved
