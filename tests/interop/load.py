"""Threads that send requests through one session, started together, bounded in time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import requests

from requests_refresh import RefreshAdapter, Token


def outcome_of(send: Callable[[], requests.Response]) -> str:
    """``"ok"``, ``"status 403"``, or the name of the exception ``send()`` raised."""
    try:
        response = send()
    except requests.RequestException as exc:
        return type(exc).__name__
    return "ok" if response.status_code == 200 else f"status {response.status_code}"


def crawl(session: requests.Session, url: str, threads: int, seconds: float) -> Counter[str]:
    """``threads`` threads GET ``url`` for ``seconds``, released together: outcomes counted."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait(timeout=30)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            outcome = outcome_of(lambda: session.get(url, timeout=30))
            with lock:
                outcomes[outcome] += 1

    run(work, threads, timeout=seconds + 60)
    return outcomes


def storm(session: requests.Session, url: str, threads: int) -> Counter[str]:
    """``threads`` threads released together, one GET each: outcomes counted."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait(timeout=30)
        outcome = outcome_of(lambda: session.get(url, timeout=30))
        with lock:
            outcomes[outcome] += 1

    run(work, threads, timeout=60)
    return outcomes


def run(work: Callable[[], None], threads: int, timeout: float) -> None:
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
    assert not any(worker.is_alive() for worker in workers), "a thread did not finish"


def wait_until_expired(token: Token) -> None:
    """Return once ``token`` has expired, by the clock the local server reads too."""
    assert token.expires_at is not None
    while (left := token.expires_at - time.time()) >= 0:
        time.sleep(left + 0.05)  # the expiry is the event awaited: a deadline, not a guess


def session_for(adapter: RefreshAdapter, origin: str) -> requests.Session:
    """A session with ``adapter`` mounted on ``origin``."""
    session = requests.Session()
    adapter.mount(session, origin + "/")
    return session
