"""A token store in Redis, shared by every process of every machine that uses one login.

redis-py is an optional extra, imported when a :class:`RedisTokenStore` is constructed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._fork import reset_in_child
from .._values import check_seconds, clean_server_text
from ..exceptions import TokenStoreConflictError, TokenStoreError
from ..token import Token
from ._json import MAX_TOKEN_SIZE, StoredJSONError, parse_stored_json
from ._locking import DEFAULT_LOCK_TIMEOUT, SharedLock
from ._redis import (
    CLEAR,
    LOAD,
    LOAD_HELD,
    RELEASE,
    RENEW,
    SAVE,
    LeaseKeeper,
    as_text,
    client_from_url,
    describe_server,
    milliseconds,
)
from .base import TokenStore

if TYPE_CHECKING:
    import redis as redis_py

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_LEASE",
    "DEFAULT_PREFIX",
    "DEFAULT_SOCKET_TIMEOUT",
    "RedisTokenStore",
]

logger = logging.getLogger("requests_refresh")

#: The login a store reads and writes when no ``key`` is given.
DEFAULT_KEY = "default"
#: The first part of every Redis key the store uses.
DEFAULT_PREFIX = "requests-refresh"
#: How long the lock outlives a holder that stops renewing it (a crash, a pause), seconds.
DEFAULT_LEASE = 10.0
#: Socket timeouts of a client made from a URL, in seconds.
DEFAULT_SOCKET_TIMEOUT = 5.0

_EXTRA = "pip install 'requests-refresh[redis]'"
_LONGEST_POLL = 0.05  # the longest pause between two tries for a busy lock, seconds


class RedisTokenStore(TokenStore):
    """Keeps one login's token in Redis, shared by processes on any number of machines.

    The token lives in the hash ``{<prefix>:<key>}:token`` (fields ``token``, its JSON,
    and ``version``, a number that grows with each save); the lock is the string
    ``{<prefix>:<key>}:lock``. The braces are a hash tag: both keys of one login are in
    one hash slot, so the store's scripts work on Redis Cluster, and logins under other
    keys or prefixes never touch each other.

    * :meth:`lock` is a lease: ``SET NX PX`` with a random token, renewed every third of
      ``lease`` by a background thread while it is held, released by a script that
      deletes it only while it is still ours. A holder that dies frees it when its lease
      runs out. The wait for it is bounded by ``lock_timeout``. Threads of this process
      queue in memory first, so at most one of them polls Redis.
    * :meth:`load` under the lock checks that the lock is still ours and starts its lease
      afresh, in the same script that reads the token: a holder paused past its lease
      learns it before it spends the refresh token it read.
    * :meth:`save` under the lock, after a :meth:`load`, is a compare-and-set on the
      version that load read. If another holder (one that took over after our lease ran
      out) or a new sign-in stored a token meanwhile, nothing is written and
      :class:`~requests_refresh.TokenStoreConflictError` is raised; the adapter then
      adopts the stored token. Any other save replaces what is stored.
    * :meth:`clear` removes the token but keeps the version, so that a holder that read
      the removed token cannot write it back.

    The adapter keeps the token in memory: Redis is read at start and when the token is
    due, refused or dead, never for a request whose token is valid. While Redis is
    unreachable those requests go on; a refresh fails with
    :class:`~requests_refresh.TokenStoreError` naming the server (never its password)
    and is tried again after a cool-off, so that service resumes by itself when Redis is
    back. A server that lost its data (restarted without persistence) reads as "no
    token", and a warning says so. Run Redis with persistence (``appendonly yes``) and
    with ACLs and TLS (``rediss://``): it holds secrets.

    Args:
        redis: a ``redis.Redis`` client (or one with its interface: valkey's, a cluster
            client), or a URL (``redis://``, ``rediss://``, ``unix://``) to make one from,
            with ``socket_timeout`` on connecting and on every reply.
        key: which login this store reads and writes; ``"default"`` if None.
        prefix: the first part of the store's Redis keys.
        lock_timeout: the longest to wait for another holder of the lock, in seconds,
            before :class:`~requests_refresh.TokenStoreError`.
        lease: how long the lock outlives a holder that stops renewing it, in seconds.
        socket_timeout: for a client made from a URL: how long to wait for a connection
            or an answer, in seconds.

    Raises:
        ImportError: redis-py is not installed (``pip install 'requests-refresh[redis]'``).
    """

    def __init__(
        self,
        redis: redis_py.Redis | str,
        key: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        lease: float = DEFAULT_LEASE,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> None:
        try:
            import redis as redis_py  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise ImportError(f"RedisTokenStore needs redis-py: {_EXTRA}") from exc
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError("key must be a non-empty string or None")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        check_seconds("lock_timeout", lock_timeout)
        check_seconds("lease", lease, allow_zero=False)
        check_seconds("socket_timeout", socket_timeout, allow_zero=False)
        self._errors = redis_py.exceptions
        self._owns_client = isinstance(redis, str)
        if isinstance(redis, str):
            self._client: Any = client_from_url(redis_py, redis, float(socket_timeout))
        else:
            self._client = redis
        self.key = DEFAULT_KEY if key is None else key
        self.prefix = prefix
        self.lock_timeout = float(lock_timeout)
        self.lease = float(lease)
        slot = "{" + prefix + ":" + self.key + "}"
        self.token_key = slot + ":token"
        self.lock_key = slot + ":lock"
        self.server = describe_server(self._client)
        self._load = self._client.register_script(LOAD)
        self._load_held = self._client.register_script(LOAD_HELD)
        self._save = self._client.register_script(SAVE)
        self._clear = self._client.register_script(CLEAR)
        self._renew = self._client.register_script(RENEW)
        self._release = self._client.register_script(RELEASE)
        # The lock: threads of this process queue here, the holder may enter again.
        self._lock = SharedLock(self.lock_key, self.lock_timeout, self._hold_lease)
        self._holder: int | None = None  # the thread holding the Redis lock
        self._lock_token = ""  # ours while we hold it
        self._fence: str | None = None  # the version the holder's load() read
        self._lost_save = False  # a save of the holder's lost to a newer token
        self._keeper: LeaseKeeper | None = None
        self._random = random.Random()  # noqa: S311 - polling jitter, not cryptography
        self._seen_version = 0  # the highest version read or written: to notice data loss
        reset_in_child(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server={self.server!r}, key={self.key!r})"

    def close(self) -> None:
        """Close the client, if this store made it from a URL; a client given is left open."""
        if self._owns_client:
            self._client.close()

    # -- the TokenStore interface ---------------------------------------------------------

    def load(self) -> Token | None:
        """Return the stored token, or None.

        Under :meth:`lock`, this also checks that the lock is still ours and renews its
        lease, and remembers the version read for :meth:`save`'s compare-and-set.

        Raises:
            TokenStoreError: Redis cannot be reached or refused the command, the stored
                entry is not a token, or (under the lock) the lock's lease ran out.
        """
        # Under the lock, unless a save of this hold lost already: then it only reads,
        # for the caller to adopt the newer token.
        holding = self._holder == threading.get_ident() and not self._lost_save
        try:
            if holding:
                reply = self._load_held(
                    keys=[self.token_key, self.lock_key],
                    args=[MAX_TOKEN_SIZE, self._lock_token, milliseconds(self.lease)],
                )
                if not isinstance(reply, list):
                    raise TokenStoreError(
                        f"the lock {self.lock_key} on Redis at {self.server} was lost before"
                        f" the token was read: its lease ({self.lease:g} s) ran out while this"
                        " process was paused or cut off, and another may hold it now. The"
                        " refresh is tried again after a cool-off; raise lease= if pauses"
                        " this long are expected"
                    )
            else:
                reply = self._load(keys=[self.token_key], args=[MAX_TOKEN_SIZE])
        except self._errors.RedisError as exc:
            raise self._store_error(exc, "read") from exc
        raw, version = as_text(reply[0]), as_text(reply[1])
        size = int(reply[2])
        if holding:
            self._fence = version or ""
        self._notice_version(version, has_token=raw is not None or size > 0)
        if raw is None and size == 0:
            return None
        try:
            if raw is None:
                raise StoredJSONError(
                    f"it is {size:,} bytes, over the {MAX_TOKEN_SIZE:,} bytes a token may"
                    " take, and was not read"
                )
            data = parse_stored_json(raw)
            if not isinstance(data, dict):
                raise StoredJSONError("it is not a JSON object")
            return Token.from_dict(data)
        except StoredJSONError as exc:
            problem = f" ({exc})"
        except ValueError:
            problem = ""  # Token's message may quote a field
        raise TokenStoreError(
            f"the Redis key {self.token_key} on {self.server} does not hold a token saved by"
            f" requests-refresh{problem}: clear it (`requests-refresh token clear --redis"
            f" URL --key {self.key}`) and sign in again, or choose another key or prefix"
        )

    def save(self, token: Token) -> None:
        """Store ``token``; durable as far as the server's persistence makes it.

        Under :meth:`lock` after a :meth:`load`, a compare-and-set on the version that
        load read.

        Raises:
            TokenStoreConflictError: a newer token was stored since that load; nothing
                was written.
            TokenStoreError: Redis cannot be reached or refused the command.
        """
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        text = json.dumps(token.to_dict(), separators=(",", ":"))
        if len(text) > MAX_TOKEN_SIZE:  # ASCII: as many bytes as characters
            raise TokenStoreError(
                f"the token is {len(text):,} bytes as JSON, over the {MAX_TOKEN_SIZE:,} bytes"
                f" a load accepts: nothing was written to {self.token_key} on {self.server}"
                " (the stored token stays); check what makes the token (or its extra"
                " fields) that large"
            )
        holding = self._holder == threading.get_ident()
        expected = self._fence if holding and self._fence is not None else ""
        try:
            written, version = self._save(keys=[self.token_key], args=[text, expected])
        except self._errors.RedisError as exc:
            raise self._store_error(exc, "write") from exc
        version = as_text(version)
        if not written:
            if holding:
                self._lost_save = True
            raise TokenStoreConflictError(
                f"a newer token (version {version}) was stored in {self.token_key} on"
                f" {self.server} while this one (refreshed from version {expected}) was in"
                " flight: this process's lock lease ran out, or someone signed in meanwhile."
                " The stored token wins and this one was not written; raise lease= if"
                " this process is paused for that long"
            )
        if holding:
            self._fence = version
        self._notice_version(version, has_token=True)

    def clear(self) -> None:
        """Remove the stored token. Clearing an empty store is not an error.

        Raises:
            TokenStoreError: Redis cannot be reached or refused the command.
        """
        try:
            version = self._clear(keys=[self.token_key])
        except self._errors.RedisError as exc:
            raise self._store_error(exc, "clear") from exc
        if version:  # 0: there was nothing to clear
            self._notice_version(as_text(version), has_token=False)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the login's Redis lock for the block; re-entrant within a thread.

        Raises:
            TokenStoreError: the lock was not free within ``lock_timeout`` seconds, or
                Redis cannot be reached. The message names the server and the lock.
        """
        with self._lock.hold():
            yield

    @contextlib.contextmanager
    def _hold_lease(self) -> Iterator[None]:
        """Hold the Redis lock for the block: the shared part of :meth:`lock`."""
        self._acquire()
        try:
            yield
        finally:
            self._release_lock()

    # -- the lease ----------------------------------------------------------------------

    def _acquire(self) -> None:
        """Take the Redis lock (SET NX PX), polling until ``lock_timeout``."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.002
        while True:
            try:
                taken = self._client.set(
                    self.lock_key, token, nx=True, px=milliseconds(self.lease)
                )
            except self._errors.RedisError as exc:
                raise self._store_error(exc, "lock") from exc
            if taken:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TokenStoreError(
                    f"could not lock {self.lock_key} on Redis at {self.server} within"
                    f" {self.lock_timeout:g} s: another process is holding it (a refresh in"
                    " progress, or one that stopped: its lease runs out within"
                    f" {self.lease:g} s); try again, or raise lock_timeout"
                )
            time.sleep(min(remaining, pause * self._random.uniform(0.5, 1.0)))
            pause = min(pause * 1.5, _LONGEST_POLL)
        self._lock_token = token
        self._fence = None
        self._lost_save = False
        self._holder = threading.get_ident()
        self._keeper = LeaseKeeper(self, token)
        self._keeper.start()

    def _release_lock(self) -> None:
        """Stop renewing and release the lock if it is still ours; never raises."""
        keeper, token = self._keeper, self._lock_token
        self._holder = None
        self._keeper = None
        self._fence = None
        self._lock_token = ""
        if keeper is not None:
            keeper.stop()
        if not token:  # a hold forked from the parent's: the lease is not ours to release
            return
        try:
            released = self._release(keys=[self.lock_key], args=[token])
        except self._errors.RedisError as exc:
            logger.warning(
                "could not release the lock %s on Redis at %s (%s): it frees itself when"
                " its lease runs out, within %g s",
                self.lock_key,
                self.server,
                type(exc).__name__,
                self.lease,
            )
            return
        if not released:
            logger.warning(
                "the lock %s on Redis at %s had run out before it was released: its lease"
                " (%g s) ran out while this process was paused or cut off",
                self.lock_key,
                self.server,
                self.lease,
            )

    def _after_fork_in_child(self) -> None:
        """Hold no lease of the parent's in a forked child.

        The lease is the parent's: its keeper thread is not in the child, and its token
        must not renew or release it from here. A hold by another thread is forgotten
        (a thread of the child may get that thread's id); the forking thread's hold, if
        it was inside :meth:`lock`, is now one whose lease is lost: a load under it is
        refused, a save is checked against the version read before the fork, and
        leaving the block sends nothing to Redis. redis-py's pool opens the child's own
        connections (it checks the process id).
        """
        self._keeper = None
        self._lock_token = ""  # never the lock's value in Redis
        if self._holder != threading.get_ident():  # the forking thread keeps its id
            self._holder = None
            self._fence = None
            self._lost_save = False
        self._random.seed()  # the parent's jitter sequence is not the child's

    def _renew_lease(self, token: str) -> bool:
        """Extend the lease if the lock is still ours; False when it is not."""
        return bool(self._renew(keys=[self.lock_key], args=[token, milliseconds(self.lease)]))

    # -- helpers ------------------------------------------------------------------------

    def _notice_version(self, version: str | None, *, has_token: bool) -> None:
        """Warn when the server went back in time: it lost its data, or some of it."""
        number = int(version) if version and version.isdigit() else 0
        if number < self._seen_version:
            logger.warning(
                "Redis at %s %s: the login %r was at version %d and is now %s. It lost its"
                " data (restarted without persistence, or keys evicted under maxmemory?):"
                " sign in again if the token is gone, and run Redis with appendonly yes and"
                " maxmemory-policy noeviction",
                self.server,
                "holds no token" if not has_token and number == 0 else "went back in time",
                self.key,
                self._seen_version,
                f"version {number}" if number else "missing",
            )
        self._seen_version = number

    def _store_error(self, exc: Exception, action: str) -> TokenStoreError:
        """A TokenStoreError naming the server and what to do about ``exc``."""
        errors = self._errors
        where = f"Redis at {self.server}"
        if isinstance(exc, errors.AuthenticationError):
            message = (
                f"{where} refused the credentials given to {action} the token: check the"
                " user name and password (in the URL or the client) and the server's ACL"
            )
        elif isinstance(exc, errors.TimeoutError):
            message = (
                f"{where} did not answer in time to {action} the token: check that it is"
                " up and not overloaded; requests go on with the token in memory while it"
                " is valid"
            )
        elif isinstance(exc, errors.ConnectionError):
            message = (
                f"cannot reach {where} to {action} the token ({type(exc).__name__}): check"
                " that it is running and reachable; requests go on with the token in memory"
                " while it is valid, and the store is tried again after a cool-off"
            )
        elif isinstance(exc, errors.NoPermissionError):
            message = (
                f"{where} does not let this user {action} the token: grant its ACL user the"
                " commands GET SET PEXPIRE DEL HGET HSET HSTRLEN HDEL HEXISTS HINCRBY EVAL"
                f" EVALSHA SCRIPT on the keys {{{self.prefix}:*"
            )
        elif isinstance(exc, errors.ReadOnlyError):
            message = (
                f"{where} is a read-only replica and cannot {action} the token: point the"
                " store at the primary"
            )
        else:
            message = (
                f"{where} failed to {action} the token ({type(exc).__name__}:"
                f" {clean_server_text(str(exc))}); check the server's log"
            )
        return TokenStoreError(message)
