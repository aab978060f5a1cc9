"""The Redis side of :class:`RedisTokenStore`: its Lua scripts, client and lease keeper.

Every script acts in one atomic step on the server: a read that checks the lock is still
ours, a save that compares versions, a renewal or release that touches only our lock.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .redis_store import RedisTokenStore

__all__ = [
    "CLEAR",
    "LOAD",
    "LOAD_HELD",
    "RELEASE",
    "RENEW",
    "SAVE",
    "LeaseKeeper",
    "as_text",
    "client_from_url",
    "describe_server",
    "milliseconds",
]

logger = logging.getLogger("requests_refresh")

# KEYS[1] the token hash; ARGV[1] the largest token read (bytes). Returns the token (false
# when it is missing or larger), its version and its size: a token of any size is never
# sent to the client.
LOAD = """
local size = redis.call('HSTRLEN', KEYS[1], 'token')
local version = redis.call('HGET', KEYS[1], 'version')
if size > tonumber(ARGV[1]) then
    return {false, version, size}
end
return {redis.call('HGET', KEYS[1], 'token'), version, size}
"""

# KEYS[1] the token hash, KEYS[2] the lock; ARGV[1] as for LOAD, ARGV[2] our lock token,
# ARGV[3] the lease (ms). Reads the token only while the lock is still ours, and starts
# the lease afresh: the refresh that follows the read gets a whole lease.
LOAD_HELD = (
    """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return 0
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
"""
    + LOAD
)

# KEYS[1] the token hash; ARGV[1] the token's JSON, ARGV[2] the version the caller read
# ('' to write whatever is stored). A stored version other than the one read means a newer
# token was stored meanwhile: nothing is written, the stored version is returned. A hash
# that is gone (the server lost its data) takes the write, numbered on from the caller's.
SAVE = """
local stored = redis.call('HGET', KEYS[1], 'version')
if ARGV[2] ~= '' and stored and stored ~= ARGV[2] then
    return {0, stored}
end
local version = tonumber(stored or (ARGV[2] ~= '' and ARGV[2]) or '0') + 1
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'version', version)
return {1, version}
"""

# KEYS[1] the token hash. Removes the token and moves the version on, so that a holder
# that read the removed token cannot write it back.
CLEAR = """
if redis.call('HEXISTS', KEYS[1], 'token') == 1 then
    redis.call('HDEL', KEYS[1], 'token')
    return redis.call('HINCRBY', KEYS[1], 'version', 1)
end
return 0
"""

# KEYS[1] the lock; ARGV[1] our lock token, ARGV[2] the lease (ms). Compare-and-act: a
# lock that is no longer ours is left alone.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseKeeper(threading.Thread):
    """Renews a held lock's lease every third of it until stopped or the lock is lost."""

    def __init__(self, store: RedisTokenStore, token: str) -> None:
        super().__init__(name="requests-refresh-redis-lease", daemon=True)
        self._store = store
        self._token = token
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Stop renewing; returns at once (the thread ends at its next wake-up).

        A renewal still in flight is harmless: it extends the lease only while the lock
        holds our token, which the release that follows removes.
        """
        self._stopped.set()

    def run(self) -> None:
        store = self._store
        while not self._stopped.wait(store.lease / 3):
            try:
                if store._renew_lease(self._token):
                    continue
            except store._errors.RedisError as exc:
                logger.warning(
                    "could not renew the lease on %s at %s (%s); trying again",
                    store.lock_key,
                    store.server,
                    type(exc).__name__,
                )
                continue
            if not self._stopped.is_set():
                logger.warning(
                    "lost the lock %s on Redis at %s while holding it: its lease (%g s) ran"
                    " out; the token's version check keeps a newer token from being"
                    " overwritten",
                    store.lock_key,
                    store.server,
                    store.lease,
                )
            return


def client_from_url(redis_py: Any, url: str, timeout: float) -> Any:
    """A client for ``url`` with bounded waits: a timeout, and one quick retry."""
    from redis.backoff import ExponentialBackoff  # noqa: PLC0415 - optional dependency
    from redis.retry import Retry  # noqa: PLC0415 - optional dependency

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    try:
        return redis_py.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One retry, at once: a pooled connection that died with a server restart
            # is replaced without failing the command; an outage is reported quickly.
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
        )
    except ValueError:
        # redis-py's message could quote the URL, password included.
        raise ValueError(
            "the Redis URL could not be parsed: check its form,"
            " redis://[[user]:password@]host[:port][/db]"
        ) from None


def describe_server(client: Any) -> str:
    """``host:port``, ``host:port db N`` or ``unix:/path``: never a password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return f"the server of a {type(client).__name__}"
    if kwargs.get("path"):
        where = f"unix:{kwargs['path']}"
    else:
        where = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    db = kwargs.get("db") or 0
    return f"{where} db {db}" if db else where


def as_text(value: object) -> str | None:
    """A reply from Redis as text (bytes decoded as UTF-8), or None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def milliseconds(seconds: float) -> int:
    """``seconds`` in whole milliseconds, rounded up, at least 1 (for PX and PEXPIRE)."""
    return max(1, math.ceil(seconds * 1000))
