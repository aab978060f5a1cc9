"""The client that section 1b runs under callgrind: ``CLIENT PORT REQUESTS [REDIS_URL]``."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from requests_refresh import (
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    RefreshAdapter,
    Token,
    TokenStore,
)


def main() -> None:
    client, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    url = f"http://127.0.0.1:{port}/"
    token = Token("a" * 40, "r" * 40, expires_at=time.time() + 3600, issued_at=time.time())
    with tempfile.TemporaryDirectory() as directory, requests.Session() as session:
        if client == "base":
            session.mount(url, HTTPAdapter())
            session.headers["Authorization"] = token.authorization
        else:
            store: TokenStore
            if client == "memory":
                store = MemoryTokenStore(token)
            elif client == "redis":
                store = RedisTokenStore(sys.argv[4], "instructions")
                store.save(token)
            else:
                store = FileTokenStore(Path(directory) / "tokens.json")
                store.save(token)
            RefreshAdapter(store=store, refresher=lambda old: old).mount(session, url)
        for _ in range(count):
            session.get(url, timeout=30).content  # noqa: B018 - read the whole body


if __name__ == "__main__":
    main()
