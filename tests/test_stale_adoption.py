"""A token another process stored is adopted only while it is still good to send."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from requests_refresh import MemoryTokenStore, RefreshTokenGrant, Token
from requests_refresh.testing import AuthorizationServer

from .conftest import MakeSession


class WrittenWhileWaiting(MemoryTokenStore):
    """A store into which "another process" writes a token while we wait for the lock."""

    def __init__(self, token: Token, written_meanwhile: Token) -> None:
        super().__init__(token)
        self.pending: Token | None = written_meanwhile

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        if self.pending is not None:
            self.save(self.pending)
            self.pending = None
        yield


def test_refused_request_refreshes_an_expired_token_another_process_stored(
    server: AuthorizationServer, make_session: MakeSession
) -> None:
    """A stored token that has expired is refreshed, not adopted and replayed into a 401."""
    login = server.login()
    # Another process refreshed our login, stored the result, then went quiet: by the
    # time we read it, its access token has expired. Its refresh token is the live one.
    theirs = RefreshTokenGrant(server.token_url, server.client_id)(login)
    stale = Token("expired-access-token", theirs.refresh_token, expires_at=time.time() - 1)
    ours = Token("refused-access-token", login.refresh_token, expires_at=time.time() + 60)
    session, adapter = make_session(store=WrittenWhileWaiting(ours, stale))

    response = session.get(server.resource_url, timeout=30)

    assert response.status_code == 200
    assert server.stats.invalid_grant == 0
    assert (adapter.stats.refreshes, adapter.stats.adopted) == (1, 0)
