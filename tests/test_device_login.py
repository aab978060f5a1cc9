"""device_login (RFC 8628) against AuthorizationServer, with a clock the test controls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from requests_refresh import (
    AuthorizationDeniedError,
    DeviceAuthorization,
    InvalidTokenResponseError,
    LoginError,
    LoginTimeoutError,
    RefreshError,
    TokenEndpointUnavailableError,
    device_login,
)
from requests_refresh.testing import AuthorizationServer

from .servers import Reply, ScriptedServer, Seen, TrickledHead


class FakeTime:
    """A monotonic clock that only moves when the flow sleeps; records every sleep.

    ``on_sleep(n)`` runs before the n-th poll (1-based), e.g. to approve the code then.
    """

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


def login(server: AuthorizationServer, fake: FakeTime, **options: object) -> object:
    """device_login against ``server`` with the fake time; shown codes land in options."""
    return device_login(
        server.client_id,
        issuer=server.issuer,
        sleep=fake.sleep,
        clock=fake.clock,
        **options,  # type: ignore[arg-type]
    )


def test_approved_login_returns_a_token_and_shows_the_code_once(
    server: AuthorizationServer,
) -> None:
    """on_code gets the user code and URIs once; approval yields a working token."""
    shown: list[DeviceAuthorization] = []
    fake = FakeTime(on_sleep=lambda n: server.approve(shown[0].user_code) if n == 1 else None)
    token = device_login(
        server.client_id,
        issuer=server.issuer,
        scope="read write",
        on_code=shown.append,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert len(shown) == 1
    code = shown[0]
    assert code.verification_uri == server.url + "/device"
    assert code.verification_uri_complete == f"{server.url}/device?user_code={code.user_code}"
    assert code.interval == 5.0
    assert fake.sleeps == [5.0]
    assert token.refresh_token is not None
    assert token.scope == "read write"
    assert server.stats.device_polls == 1


def test_pending_keeps_polling_at_the_interval(server: AuthorizationServer) -> None:
    """authorization_pending twice, then approved: three polls, each after the interval."""
    shown: list[DeviceAuthorization] = []
    fake = FakeTime(on_sleep=lambda n: server.approve(shown[0].user_code) if n == 3 else None)
    login(server, fake, on_code=shown.append)
    assert fake.sleeps == [5.0, 5.0, 5.0]
    assert server.stats.device_polls == 3


def test_slow_down_adds_five_seconds_for_good(server: AuthorizationServer) -> None:
    """After slow_down the interval is 5 s longer, and stays so."""
    shown: list[DeviceAuthorization] = []

    def on_sleep(n: int) -> None:
        if n == 1:
            server.fail_next(400, body={"error": "slow_down"})
        if n == 4:
            server.approve(shown[0].user_code)

    fake = FakeTime(on_sleep=on_sleep)
    login(server, fake, on_code=shown.append)
    assert fake.sleeps == [5.0, 10.0, 10.0, 10.0]


def test_denied_ends_with_authorization_denied(server: AuthorizationServer) -> None:
    """access_denied is AuthorizationDeniedError (a LoginError and RefreshError)."""
    server.on_user_code = server.deny
    with pytest.raises(AuthorizationDeniedError) as caught:
        login(server, FakeTime(), on_code=lambda code: None)
    assert isinstance(caught.value, LoginError)
    assert isinstance(caught.value, RefreshError)
    assert caught.value.error == "access_denied"
    assert "run the login again" in str(caught.value)


def test_expired_token_ends_with_login_timeout(server: AuthorizationServer) -> None:
    """The server's expired_token is LoginTimeoutError that says to run the login again."""
    server.fail_next(400, body={"error": "expired_token"})
    with pytest.raises(LoginTimeoutError, match="run the login again") as caught:
        login(server, FakeTime(), on_code=lambda code: None)
    assert caught.value.error == "expired_token"


def test_polling_stops_when_the_code_expires(server: AuthorizationServer) -> None:
    """Never approved: polling stops at the code's lifetime, without a poll past it."""
    server.device_code_ttl = 22.0
    fake = FakeTime()
    with pytest.raises(LoginTimeoutError, match="code expired"):
        login(server, fake, on_code=lambda code: None)
    assert fake.sleeps == [5.0, 5.0, 5.0, 5.0]
    assert server.stats.device_polls == 4


def test_timeout_bounds_the_wait(server: AuthorizationServer) -> None:
    """timeout=12 with a 5 s interval: two polls, then LoginTimeoutError naming timeout."""
    fake = FakeTime()
    with pytest.raises(LoginTimeoutError, match="within 12 s"):
        login(server, fake, on_code=lambda code: None, timeout=12.0)
    assert server.stats.device_polls == 2


def test_real_polling_with_a_short_interval(server: AuthorizationServer) -> None:
    """With real time and a server interval of 0 (floored at 0.2 s), approval lands."""
    server.device_interval = 0
    server.on_user_code = server.approve
    token = device_login(server.client_id, issuer=server.issuer, on_code=lambda code: None)
    assert token.access_token


def test_the_default_on_code_prints_where_to_go(
    server: AuthorizationServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without on_code, the URL and the user code are printed on stderr."""
    codes: list[str] = []
    server.on_user_code = codes.append
    fake = FakeTime(on_sleep=lambda n: server.approve(codes[0]))
    login(server, fake)
    err = capsys.readouterr().err
    assert codes[0] in err
    assert server.url + "/device" in err


def test_a_hostile_device_answer_is_refused() -> None:
    """A user code with control characters is refused; a missing complete URI is None."""
    answers = [
        {
            "device_code": "d",
            "user_code": "AB\x1b[2JCD",
            "verification_uri": "https://x/device",
            "expires_in": 60,
        },
        {
            "device_code": "d",
            "user_code": "ABCD",
            "verification_uri": "https://x/device",
            "expires_in": 60,
            "interval": 1,
        },
    ]

    def answer(seen: Seen) -> Reply:
        if seen.path == "/device":
            body = answers.pop(0)
        else:
            body = {"access_token": "a", "token_type": "Bearer", "expires_in": 60}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    shown: list[DeviceAuthorization] = []
    with ScriptedServer(answer) as scripted:
        device_url, token_url = scripted.url + "/device", scripted.url + "/token"
        with pytest.raises(InvalidTokenResponseError, match="control characters"):
            device_login(
                "c",
                device_authorization_url=device_url,
                token_url=token_url,
                on_code=shown.append,
            )
        fake = FakeTime()
        device_login(
            "c",
            device_authorization_url=device_url,
            token_url=token_url,
            on_code=shown.append,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert shown[0].verification_uri_complete is None
    assert shown[0].interval == 1.0


def test_extra_params_may_not_set_what_the_flow_sets(server: AuthorizationServer) -> None:
    """scope or client_id in extra_params is a ValueError naming it, before anything is sent."""
    with pytest.raises(ValueError, match=r"\['client_id', 'scope'\].*use scope="):
        device_login(
            server.client_id,
            issuer=server.issuer,
            extra_params={"scope": "admin", "client_id": "other"},
        )
    assert server.stats.device_authorizations == 0


def test_a_trickled_device_authorization_head_is_bounded_by_the_timeout() -> None:
    """Headers sent a line at a time by the device authorization endpoint: an error in time.

    Protects against: the timeout bounding each read only, so that a server sending a
    header line every 0.1 s holds the login before it even shows a code.
    """
    shown: list[DeviceAuthorization] = []
    with TrickledHead() as server:
        started = time.monotonic()
        with pytest.raises(TokenEndpointUnavailableError, match="exceeded the timeout of 1 s"):
            device_login(
                "c",
                device_authorization_url=server.url + "/device",
                token_url=server.url + "/token",
                on_code=shown.append,
                http_timeout=1.0,
            )
        assert time.monotonic() - started < 1.0 + 2.0
    assert shown == []


def test_a_trickled_device_authorization_body_is_bounded_by_the_timeout() -> None:
    """A device authorization answer sent a byte at a time: an error within the timeout.

    Protects against: the device authorization endpoint reading its answer with a
    weaker bound than the token endpoint.
    """
    body = json.dumps({"device_code": "d" * 50, "user_code": "U", "expires_in": 60}).encode()
    trickle = Reply(200, {"Content-Type": "application/json"}, body, per_byte=0.05)
    with ScriptedServer(lambda seen: trickle) as scripted:
        started = time.monotonic()
        with pytest.raises(TokenEndpointUnavailableError, match=r"exceeded the timeout of 0\.5 s"):
            device_login(
                "c",
                device_authorization_url=scripted.url + "/device",
                token_url=scripted.url + "/token",
                on_code=lambda code: None,
                http_timeout=0.5,
            )
        assert time.monotonic() - started < 0.5 + 2.0


def device_answer(**fields: object) -> Callable[[Seen], Reply]:
    """A device authorization endpoint at /device answering ``fields`` over a usable
    answer, and a token endpoint that issues a token at once."""
    usable = {
        "device_code": "dc-usable-device-code",
        "user_code": "ABCD",
        "verification_uri": "https://x/device",
        "expires_in": 600,
    }

    def answer(seen: Seen) -> Reply:
        if seen.path == "/device":
            body: dict[str, object] = {**usable, **fields}
        else:
            body = {"access_token": "at-x", "token_type": "Bearer", "expires_in": 60}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    return answer


def test_huge_numbers_in_the_device_answer_are_clamped() -> None:
    """expires_in and interval of 10**400 are clamped to a day and two minutes.

    Protects against: a raw OverflowError (int too large to convert to float) escaping
    from device_login instead of the bounds every other large number gets.
    """
    shown: list[DeviceAuthorization] = []
    fake = FakeTime()
    answer = device_answer(expires_in=10**400, interval=10**400)
    with ScriptedServer(answer) as scripted:
        started = time.time()
        token = device_login(
            "c",
            device_authorization_url=scripted.url + "/device",
            token_url=scripted.url + "/token",
            on_code=shown.append,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert token.access_token == "at-x"
    assert shown[0].interval == 120.0
    assert started + 24 * 3600 - 5 < shown[0].expires_at < time.time() + 24 * 3600 + 5
    assert fake.sleeps == [120.0]


@pytest.mark.parametrize("expires_in", [-(10**400), float("nan")], ids=["-10**400", "NaN"])
def test_an_unusable_huge_expires_in_is_an_invalid_response(expires_in: float) -> None:
    """expires_in of -10**400 (or NaN): InvalidTokenResponseError, never a raw error."""
    answer = device_answer(expires_in=expires_in)
    with ScriptedServer(answer) as scripted, pytest.raises(InvalidTokenResponseError):
        device_login(
            "c",
            device_authorization_url=scripted.url + "/device",
            token_url=scripted.url + "/token",
            on_code=lambda code: None,
        )


def test_a_broken_device_code_is_named_not_quoted() -> None:
    """A device_code with a control character is refused without quoting it.

    Protects against: the device code, a secret that is one poll away from a token,
    reaching the error message (and every log line that prints it).
    """
    answer = device_answer(device_code="dc-SECRET-device-code\n")
    refused = pytest.raises(InvalidTokenResponseError, match="device_code")
    with ScriptedServer(answer) as scripted, refused as caught:
        device_login(
            "c",
            device_authorization_url=scripted.url + "/device",
            token_url=scripted.url + "/token",
            on_code=lambda code: None,
        )
    assert "SECRET" not in str(caught.value)
    assert "SECRET" not in repr(caught.value)
