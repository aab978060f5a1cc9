"""One process of the keyring storm: threads crawling a resource through a RefreshAdapter
whose KeyringTokenStore is shared with the other processes.

Usage: ``keyring_storm_worker.py CONFIG_JSON``. The keyring backend comes from
``PYTHON_KEYRING_BACKEND`` (the checkout's root on ``PYTHONPATH``). The worker prints
``ready`` once set up, waits for ``go`` on stdin (so that every process starts at once),
crawls for ``seconds``, then prints one JSON line of counts.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import requests

from requests_refresh import KeyringTokenStore, RefreshAdapter, RefreshTokenGrant


def main() -> int:
    config = json.loads(sys.argv[1])
    store = KeyringTokenStore(
        config["service"],
        config["username"],
        lock_path=config["lock_path"],
        max_part_size=config["max_part_size"],
        allow_insecure_backend=True,  # the tests' JSON file backend
    )
    adapter = RefreshAdapter(
        store=store,
        refresher=RefreshTokenGrant(config["token_url"], client_id=config["client_id"]),
        pool_maxsize=config["threads"],
    )
    session = requests.Session()
    adapter.mount(session, config["origin"] + "/")
    counts = {"requests": 0, "failures": 0}
    errors: list[str] = []
    mutex = threading.Lock()

    def crawl(deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                ok = session.get(config["resource_url"], timeout=10).status_code == 200
                error = None if ok else "status"
            except requests.RequestException as exc:
                ok, error = False, type(exc).__name__
            with mutex:
                counts["requests"] += 1
                if not ok:
                    counts["failures"] += 1
                    if error is not None and len(errors) < 20:
                        errors.append(error)

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2  # the test went away
    deadline = time.monotonic() + config["seconds"]
    threads = [
        threading.Thread(target=crawl, args=(deadline,), daemon=True)
        for _ in range(config["threads"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=config["seconds"] + 60)
    session.close()
    stats = adapter.stats
    result = {
        **counts,
        "errors": errors,
        "alive": sum(thread.is_alive() for thread in threads),
        "refreshes": stats.refreshes,
        "adopted": stats.adopted,
        "stats_failures": stats.failures,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
