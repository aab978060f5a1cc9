"""``requests-refresh demo``: one screen that shows a naive client losing its login to a
refresh storm, then RefreshAdapter crawling through the same expiries without a failure."""

from __future__ import annotations

import subprocess
import sys

import pytest

from requests_refresh.cli import main

ROWS = (
    "requests",
    "failed requests",
    "replayed after a 401",
    "threads that waited for a refresh",
    "refreshes counted by the server",
    "invalid_grant answers",
    "login revoked",
)

DEMO_ARGS = ("--seconds", "1.5", "--ttl", "0.5", "--threads", "8")


def summary(out: str) -> dict[str, tuple[str, str]]:
    """The comparison table: row name -> (naive client, RefreshAdapter)."""
    table: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        for name in ROWS:
            rest = line.strip().removeprefix(name)
            if rest != line.strip() and rest[:2] == "  ":
                naive, ours = rest.split()
                table[name] = (naive, ours)
    return table


@pytest.fixture(scope="module")
def demo_output() -> str:
    """The output of one short demo run in a subprocess (not a terminal), exit status 0."""
    result = subprocess.run(
        [sys.executable, "-m", "requests_refresh", "demo", *DEMO_ARGS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


def test_the_naive_client_loses_its_login_to_the_storm(demo_output: str) -> None:
    """The naive crawl shows invalid_grant answers, failed requests and a revoked login."""
    naive = {name: values[0] for name, values in summary(demo_output).items()}
    assert int(naive["invalid_grant answers"]) > 0
    assert int(naive["failed requests"]) > 0
    assert naive["login revoked"] == "yes"
    assert naive["threads that waited for a refresh"] == "-"
    assert "reuse detection revoked the login" in demo_output


def test_refresh_adapter_crawls_through_every_expiry(demo_output: str) -> None:
    """Through RefreshAdapter: 0 failures, 0 invalid_grant, login kept, several refreshes."""
    ours = {name: values[1] for name, values in summary(demo_output).items()}
    assert set(ours) == set(ROWS)
    assert ours["failed requests"] == "0"
    assert ours["invalid_grant answers"] == "0"
    assert ours["login revoked"] == "no"
    assert int(ours["refreshes counted by the server"]) >= 2  # 1.5 s of 0.5 s tokens
    assert int(ours["requests"]) > 0
    assert "RefreshAdapter: every request succeeded" in demo_output


def test_the_naive_crawl_comes_first_and_the_output_fits_one_screen(demo_output: str) -> None:
    """Naive client first, then ours, then the table: at most 40 lines of at most 88."""
    naive_at = demo_output.index("1/2 a naive client")
    ours_at = demo_output.index("2/2 RefreshAdapter")
    assert naive_at < ours_at < demo_output.index("invalid_grant answers  ")
    lines = demo_output.splitlines()
    assert len(lines) <= 40
    assert max(map(len, lines)) <= 88


def test_the_output_says_refresh_ahead_is_off_and_what_leeway_does(demo_output: str) -> None:
    """Refresh-ahead off (so 401 replays show) and the --leeway option, explained."""
    text = " ".join(demo_output.split())
    assert "Refresh-ahead is off in this demo (--leeway 0)" in text
    assert "get a 401 and are replayed" in text
    assert "--leeway S refreshes S seconds before expiry" in text


def test_leeway_turns_refresh_ahead_on(capsys: pytest.CaptureFixture[str]) -> None:
    """With --leeway the output says refresh-ahead is on, and the crawl still succeeds."""
    status = main(["demo", "--seconds", "1", "--ttl", "0.6", "--threads", "2", "--leeway", "0.2"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Refresh-ahead is on (--leeway 0.2)" in " ".join(out.split())


def test_leeway_and_demo_are_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --help` explains --leeway; a negative leeway is a usage error."""
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--leeway" in text
    assert "turns refresh-ahead off" in text
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--leeway", "-1"])
    assert caught.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err
