"""Token responses as providers send them: ``expires_in: 0``, the login's end, ``refresh_in``.

Parsing is pinned with plain values; what the adapter and the refresh grant do with it
runs against the real test server, across several token generations and threads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from requests_refresh import (
    FileTokenStore,
    InvalidGrantError,
    InvalidTokenResponseError,
    MemoryTokenStore,
    RefreshAdapter,
    RefreshTokenGrant,
    Token,
)
from requests_refresh.cli import describe_token
from requests_refresh.testing import AuthorizationServer
from requests_refresh.token import MAX_EXPIRES_IN, REFRESH_EXPIRY_FIELDS

NOW = 1_700_000_000.0
WAIT = 30.0  # seconds: the bound on every wait in this module
BASE = {"access_token": "at-parse", "token_type": "Bearer", "refresh_token": "rt-parse"}


# -- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 0.0, "0", " 0 ", None], ids=repr)
def test_expires_in_zero_or_absent_means_the_expiry_is_unknown(value: object) -> None:
    """``expires_in`` 0 (in any spelling) or absent: a token with no expiry, not refused."""
    payload = {**BASE} if value is None else {**BASE, "expires_in": value}
    token = Token.from_response(payload, now=NOW)
    assert token.expires_at is None
    assert token.issued_at == NOW
    assert token.refresh_due_at(30.0) is None
    assert not token.is_expired(now=NOW + 10 * 365 * 86400)
    assert "expires_in" not in token.extra


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (-1, "not positive"),
        ("-5", "not positive"),
        (-0.001, "not positive"),
        (MAX_EXPIRES_IN + 1, "ten years"),
        (10**400, "ten years"),
        ("soon", "not a number of seconds"),
        (True, "not a number"),
        (float("nan"), "not a number"),
    ],
    ids=repr,
)
def test_negative_or_absurd_expires_in_is_still_refused(value: object, complaint: str) -> None:
    """A negative, huge or non-numeric ``expires_in`` stays an InvalidTokenResponseError."""
    with pytest.raises(InvalidTokenResponseError, match=complaint) as caught:
        Token.from_response({**BASE, "expires_in": value}, now=NOW)
    assert "at-parse" not in str(caught.value)
    assert "rt-parse" not in str(caught.value)


@pytest.mark.parametrize("field", REFRESH_EXPIRY_FIELDS)
@pytest.mark.parametrize("value", [86400, 86400.0, "86400", " 86400 "], ids=repr)
def test_each_providers_refresh_expiry_field_gives_the_logins_end(
    field: str, value: object
) -> None:
    """Keycloak's, GitHub's and Intuit's field, number or numeric string: refresh_expires_at."""
    token = Token.from_response({**BASE, "expires_in": 300, field: value}, now=NOW)
    assert token.refresh_expires_at == NOW + 86400
    assert field not in token.extra


@pytest.mark.parametrize("field", REFRESH_EXPIRY_FIELDS)
def test_a_refresh_expiry_of_zero_means_unknown(field: str) -> None:
    """``refresh_expires_in: 0`` (Keycloak's offline tokens): the login's end is unknown."""
    token = Token.from_response({**BASE, "expires_in": 300, field: 0}, now=NOW)
    assert token.refresh_expires_at is None
    assert field not in token.extra


@pytest.mark.parametrize(
    "value",
    [-1, "-3600", "soon", True, float("nan"), MAX_EXPIRES_IN + 1, 10**400, [5], {"s": 5}],
    ids=repr,
)
def test_an_unreadable_refresh_expiry_is_ignored_and_kept_in_extra(
    value: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A bogus refresh expiry costs only itself: the token parses, the value stays in extra.

    The field only informs; refusing the whole answer would throw away a good access
    token (and maybe a rotated refresh token) for it. The DEBUG record names the field,
    not its value.
    """
    caplog.set_level(logging.DEBUG, logger="requests_refresh")
    token = Token.from_response({**BASE, "expires_in": 300, "refresh_expires_in": value}, now=NOW)
    assert token.refresh_expires_at is None
    assert token.expires_at == NOW + 300
    assert "refresh_expires_in" in token.extra
    assert any("refresh_expires_in" in record.getMessage() for record in caplog.records)
    assert not any(
        "at-parse" in r.getMessage() or "rt-parse" in r.getMessage() for r in caplog.records
    )


def test_of_several_refresh_expiry_fields_the_earliest_wins() -> None:
    """Two fields that disagree: the earlier end is believed, so the warning is not late."""
    token = Token.from_response(
        {**BASE, "refresh_expires_in": 7200, "x_refresh_token_expires_in": "3600"}, now=NOW
    )
    assert token.refresh_expires_at == NOW + 3600
    assert not set(token.extra) & {"refresh_expires_in", "x_refresh_token_expires_in"}


@pytest.mark.parametrize(
    ("expires_in", "refresh_in", "due"),
    [
        (3600, 1800, NOW + 1800),  # refresh_in first: it wins
        (3600, 3590, NOW + 3600 - 30),  # the leeway comes first: it wins
        (0, 1800, NOW + 1800),  # no expiry known: refresh_in alone
        (3600, 0, NOW + 3600 - 30),  # refresh_in 0: nothing asked
        (3600, -5, NOW + 3600 - 30),  # unreadable: ignored
    ],
)
def test_refresh_in_brings_the_refresh_ahead_forward(
    expires_in: int, refresh_in: int, due: float
) -> None:
    """Entra's ``refresh_in``: the refresh ahead starts then when it is before the leeway's."""
    token = Token.from_response(
        {**BASE, "expires_in": expires_in, "refresh_in": refresh_in}, now=NOW
    )
    assert token.refresh_due_at(30.0) == due
    assert ("refresh_in" in token.extra) == (refresh_in < 0)


# -- the value: validation, repr, to_dict/from_dict ------------------------------------


def test_the_new_moments_round_trip_through_to_dict_and_json() -> None:
    """refresh_expires_at and refresh_at survive to_dict, JSON and from_dict unchanged."""
    token = Token(
        "at-x",
        "rt-x",
        expires_at=NOW + 60,
        issued_at=NOW,
        refresh_expires_at=NOW + 86400,
        refresh_at=NOW + 30,
    )
    data = json.loads(json.dumps(token.to_dict()))
    assert data["refresh_expires_at"] == NOW + 86400
    assert data["refresh_at"] == NOW + 30
    again = Token.from_dict(data)
    assert again == token
    assert (again.refresh_expires_at, again.refresh_at) == (NOW + 86400, NOW + 30)


def test_a_dict_written_before_these_fields_loads_and_one_without_them_stays_old_readable() -> (
    None
):
    """Old dicts load with both moments unknown; a token without them writes no new keys."""
    old = {
        "access_token": "at-x",
        "token_type": "Bearer",
        "refresh_token": "rt-x",
        "expires_at": NOW,
    }
    token = Token.from_dict(old)
    assert (token.refresh_expires_at, token.refresh_at) == (None, None)
    assert token.to_dict() == old


def test_a_file_store_keeps_the_logins_end(tmp_path: Path) -> None:
    """FileTokenStore keeps refresh_expires_at, and loads a file written before it existed."""
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(Token("at-x", "rt-x", expires_at=NOW, refresh_expires_at=NOW + 86400))
    loaded = FileTokenStore(path).load()
    assert loaded is not None
    assert loaded.refresh_expires_at == NOW + 86400
    store.save(Token("at-y", "rt-y", expires_at=NOW))
    assert "refresh_expires_at" not in path.read_text()
    reloaded = FileTokenStore(path).load()
    assert reloaded is not None
    assert reloaded.refresh_expires_at is None


@pytest.mark.parametrize("field", ["refresh_expires_at", "refresh_at"])
@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (NOW * 1000, "milliseconds"),
        (math.nan, "finite number"),
        (math.inf, "finite number"),
        (True, "finite number"),
        ("soon", "finite number"),
    ],
    ids=repr,
)
def test_the_new_moments_are_validated_like_expires_at(
    field: str, value: object, complaint: str
) -> None:
    """Milliseconds, NaN, infinity, booleans and strings are refused by name, as expires_at."""
    with pytest.raises(ValueError, match=f"{field}.*{complaint}"):
        Token("at-x", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        Token.from_dict({"access_token": "at-x", field: value})


def test_repr_shows_the_moments_and_no_secret() -> None:
    """repr() names when the login ends and when a refresh is asked for, never a token."""
    token = Token("at-secret", "rt-secret", refresh_expires_at=NOW + 5, refresh_at=NOW + 1)
    text = repr(token)
    assert f"refresh_expires_at={NOW + 5!r}" in text
    assert f"refresh_at={NOW + 1!r}" in text
    assert "secret" not in text


def test_token_show_prints_when_the_login_ends() -> None:
    """``requests-refresh token show`` has a row for the login's end: a time, or unknown."""
    rows = dict(describe_token(Token("at-s", "rt-s", refresh_expires_at=NOW + 7200), NOW))
    assert rows["login ends"].startswith("2023-11-15T00:13:20+00:00")
    assert "(ends in 2 h)" in rows["login ends"]
    ended = dict(describe_token(Token("at-s", "rt-s", refresh_expires_at=NOW - 60), NOW))
    assert "ended 60 s ago: sign in again" in ended["login ends"]
    assert dict(describe_token(Token("at-s"), NOW))["login ends"] == "<unknown>"
    assert not any("at-s" in value or "rt-s" in value for value in rows.values())


# -- the refresh grant against the test server -----------------------------------------


@pytest.fixture
def quirky() -> Iterator[AuthorizationServer]:
    """A test server with rotation and reuse detection, to be bent by each test."""
    with AuthorizationServer(access_ttl=60.0) as running:
        yield running


def test_a_refresh_token_past_the_logins_end_is_not_presented(
    quirky: AuthorizationServer,
) -> None:
    """Past refresh_expires_at the grant raises InvalidGrantError and sends nothing."""
    token = dataclasses.replace(quirky.login(), refresh_expires_at=time.time() - 1)
    with (
        RefreshTokenGrant(quirky.token_url, quirky.client_id) as grant,
        pytest.raises(InvalidGrantError, match=r"(?i)sign in again") as caught,
    ):
        grant(token)
    assert "login ended" in str(caught.value)
    assert token.refresh_token is not None
    assert token.refresh_token not in str(caught.value)
    assert quirky.stats.token_requests == 0


@pytest.mark.parametrize("rotate", [True, False], ids=["rotating", "not rotating"])
def test_the_logins_end_is_kept_across_refreshes_that_omit_it(
    quirky: AuthorizationServer, rotate: bool
) -> None:
    """An answer without a refresh expiry keeps the old one, refresh token rotated or not."""
    quirky.rotate = rotate
    quirky.token_fields = {"refresh_expires_in": 3600}
    first = quirky.login()
    assert first.refresh_expires_at is not None
    quirky.token_fields = {}
    token = first
    with RefreshTokenGrant(quirky.token_url, quirky.client_id) as grant:
        for _ in range(3):
            token = grant(token)
            assert token.refresh_expires_at == first.refresh_expires_at
    assert (token.refresh_token != first.refresh_token) == rotate
    assert quirky.stats.refreshes == 3


def test_a_refresh_that_says_when_the_login_ends_replaces_the_old_end(
    quirky: AuthorizationServer,
) -> None:
    """A new refresh expiry in the answer (a login extended by the server) is believed."""
    quirky.token_fields = {"refresh_expires_in": 600}
    first = quirky.login()
    quirky.token_fields = {"refresh_token_expires_in": "7200"}
    with RefreshTokenGrant(quirky.token_url, quirky.client_id) as grant:
        second = grant(first)
    assert first.refresh_expires_at is not None
    assert second.refresh_expires_at is not None
    assert second.refresh_expires_at > first.refresh_expires_at + 6000


# -- the adapter against the test server -----------------------------------------------


def make_adapter(
    server: AuthorizationServer, token: Token, **options: Any
) -> tuple[requests.Session, RefreshAdapter]:
    """A session whose adapter holds ``token`` in memory and refreshes at ``server``.

    Short cool-offs: a token the server lets expire is refused within a second here,
    while the adapter's "refused again" cool-off is meant for refusals seconds apart.
    """
    options.setdefault("cooloff", 0.01)
    options.setdefault("max_cooloff", 0.05)
    adapter = RefreshAdapter(
        store=MemoryTokenStore(token),
        refresher=RefreshTokenGrant(server.token_url, server.client_id),
        pool_maxsize=16,
        **options,
    )
    session = requests.Session()
    adapter.mount(session, server.url + "/")
    return session, adapter


def hammer(
    session: requests.Session, url: str, threads: int, until: Callable[[], bool]
) -> tuple[list[int], list[BaseException]]:
    """Send requests from ``threads`` threads until ``until()`` (or an error) or WAIT passes.

    Returns every status seen and every exception raised; a thread stops at its first
    exception.
    """
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    deadline = time.monotonic() + WAIT

    def run() -> None:
        barrier.wait(timeout=WAIT)
        while not until() and time.monotonic() < deadline:
            try:
                status = session.get(url, timeout=WAIT).status_code
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                statuses.append(status)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=WAIT + 5)
        assert not worker.is_alive()
    return statuses, errors


def test_a_token_said_not_to_expire_is_used_until_refused_then_refreshed(
    quirky: AuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``expires_in: 0`` across generations and threads: every request succeeds.

    The server lets its tokens expire after half a second while saying they do not: the
    adapter refreshes on each refusal, one refresh per generation, and replays. Never
    a spent refresh token presented; the DEBUG record of the unknown expiry comes once
    for the login, not once per refresh.
    """
    caplog.set_level(logging.DEBUG, logger="requests_refresh")
    quirky.access_ttl = 0.5
    quirky.token_fields = {"expires_in": 0}
    login = quirky.login()
    assert login.expires_at is None
    session, adapter = make_adapter(quirky, login)
    with session:
        statuses, errors = hammer(
            session, quirky.resource_url, 6, lambda: quirky.stats.refreshes >= 3
        )
    assert errors == []
    assert statuses
    assert set(statuses) == {200}
    assert adapter.stats.refreshes >= 3
    assert adapter.stats.replays >= 3
    assert quirky.stats.reuse_detected == 0
    assert quirky.stats.invalid_grant == 0
    noted = [r for r in caplog.records if "has no expiry" in r.getMessage()]
    assert len(noted) == 1
    assert noted[0].levelno == logging.DEBUG


def test_a_token_said_not_to_expire_is_never_refreshed_ahead(
    quirky: AuthorizationServer,
) -> None:
    """No expiry known: however far the clock moves, no refresh until a refusal."""
    quirky.token_fields = {"expires_in": 0}
    offset = [0.0]
    session, adapter = make_adapter(quirky, quirky.login(), clock=lambda: time.time() + offset[0])
    with session:
        for shift in (0.0, 3600.0, 365 * 86400.0):
            offset[0] = shift
            assert session.get(quirky.resource_url, timeout=WAIT).status_code == 200
    assert adapter.stats.refreshes == 0
    assert quirky.stats.token_requests == 0


def test_refresh_in_starts_the_refresh_ahead_before_the_leeway_would(
    quirky: AuthorizationServer,
) -> None:
    """A 60 s token with ``refresh_in: 5`` is refreshed ahead once 5 s have passed, not 30 s."""
    quirky.token_fields = {"refresh_in": 5}
    offset = [0.0]
    session, adapter = make_adapter(
        quirky, quirky.login(), clock=lambda: time.time() + offset[0], leeway=30.0
    )
    with session:
        assert session.get(quirky.resource_url, timeout=WAIT).status_code == 200
        assert adapter.stats.refreshes == 0
        offset[0] = 6.0
        assert session.get(quirky.resource_url, timeout=WAIT).status_code == 200
        assert adapter.stats.refreshes == 1
        assert quirky.stats.resource_unauthorized == 0


def test_requests_work_until_the_login_ends_then_fail_with_invalid_grant(
    quirky: AuthorizationServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A login of 3 s, tokens of 0.4 s, 6 threads: all 200 until the end, then InvalidGrantError.

    Every generation but the last is refreshed ahead; past the login's end the refresh
    token is not presented (the server sees no spent or ended refresh token, but for
    the one refresh that may cross the end on its way). The warning that the login
    ends soon is logged once, without a secret.
    """
    caplog.set_level(logging.DEBUG, logger="requests_refresh")
    quirky.access_ttl = 0.4
    quirky.login_ttl = 3.0
    login = quirky.login()
    assert login.refresh_expires_at is not None
    session, adapter = make_adapter(quirky, login)
    with session:
        statuses, errors = hammer(session, quirky.resource_url, 6, lambda: False)
        final = adapter.store.load()
    assert set(statuses) == {200}
    assert len(errors) == 6
    for error in errors:
        assert isinstance(error, InvalidGrantError), repr(error)
    assert adapter.stats.refreshes >= 3
    assert quirky.stats.reuse_detected == 0
    assert quirky.stats.invalid_grant <= 1  # a refresh sent just before the end, answered after
    assert final is not None
    # Each answer says the time left again; counted from each answer's arrival.
    assert final.refresh_expires_at == pytest.approx(login.refresh_expires_at, abs=1.0)
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "login" in r.getMessage()
    ]
    assert len([r for r in warnings if "ends at" in r.getMessage()]) == 1
    secrets = {login.access_token, login.refresh_token, final.access_token, final.refresh_token}
    for record in caplog.records:
        for secret in secrets:
            assert secret is None or secret not in record.getMessage()


@pytest.mark.parametrize(
    ("login_end_warning", "warned"),
    [(86400.0, 1), (3600.0, 1), (60.0, 0), (0.0, 0)],
)
def test_the_login_end_warning_comes_once_and_only_within_its_window(
    quirky: AuthorizationServer,
    caplog: pytest.LogCaptureFixture,
    login_end_warning: float,
    warned: int,
) -> None:
    """Keycloak-like answers (each says 600 s left): one warning per login, none outside it.

    The check runs as each token comes in: across several refreshes, each again
    within the window, the warning is not repeated; 0 turns it off.
    """
    caplog.set_level(logging.WARNING, logger="requests_refresh")
    quirky.access_ttl = 0.3
    quirky.token_fields = {"refresh_expires_in": 600}
    session, _ = make_adapter(quirky, quirky.login(), login_end_warning=login_end_warning)
    with session:
        statuses, errors = hammer(
            session, quirky.resource_url, 3, lambda: quirky.stats.refreshes >= 3
        )
    assert errors == []
    assert set(statuses) == {200}
    ending = [r for r in caplog.records if "login ends at" in r.getMessage()]
    assert len(ending) == warned
    assert all("in 10 min" in r.getMessage() for r in ending)


def test_a_new_login_that_comes_near_its_end_is_warned_about_again(
    quirky: AuthorizationServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A login that ends far away resets the warning: the next login near its end warns.

    Each new login is saved to the shared file as a sign-in would; the adapter adopts
    it at its next refresh. The refreshes between them say nothing of the login's end.
    """
    caplog.set_level(logging.WARNING, logger="requests_refresh")
    quirky.access_ttl = 0.3

    def sign_in(ends_in: float) -> Token:
        quirky.token_fields = {"refresh_expires_in": ends_in}
        try:
            return quirky.login()
        finally:
            quirky.token_fields = {}

    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(sign_in(600))
    adapter = RefreshAdapter(
        store=store,
        refresher=RefreshTokenGrant(quirky.token_url, quirky.client_id),
        login_end_warning=3600.0,
    )
    with requests.Session() as session:
        adapter.mount(session, quirky.url + "/")
        assert session.get(quirky.resource_url, timeout=WAIT).status_code == 200
        for adopted, ends_in in enumerate((30 * 86400, 600), start=1):
            store.save(sign_in(ends_in))
            deadline = time.monotonic() + WAIT
            while adapter.stats.adopted < adopted and time.monotonic() < deadline:
                assert session.get(quirky.resource_url, timeout=WAIT).status_code == 200
            assert adapter.stats.adopted == adopted
    assert len([r for r in caplog.records if "login ends at" in r.getMessage()]) == 2


@pytest.mark.parametrize("value", [-1.0, math.nan])
def test_login_end_warning_must_be_a_number_of_seconds(
    quirky: AuthorizationServer, value: float
) -> None:
    """login_end_warning below 0 or NaN is a ValueError naming the option."""
    with pytest.raises(ValueError, match="login_end_warning"):
        RefreshAdapter(
            store=MemoryTokenStore(),
            refresher=RefreshTokenGrant(quirky.token_url, quirky.client_id),
            login_end_warning=value,
        )
