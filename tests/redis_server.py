"""A real ``redis-server`` for the tests: 127.0.0.1, a free port, its own directory, AOF on.

Started with :class:`subprocess.Popen` and stopped by its PID. Tests that need one take
the ``redis_server`` fixture (tests/conftest.py), which skips, saying why, where Debian's
``redis-server`` is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

#: The server program; None where it is not installed.
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` and :meth:`start` keep its data (AOF).

    Args:
        directory: its working directory, where the append-only file lives.
        password: when set, clients must authenticate (``requirepass``).
    """

    def __init__(self, directory: Path, password: str | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, with the password when there is one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait (at most ``timeout`` s) until it answers PING."""
        assert REDIS_SERVER is not None
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                self.process = None
                raise RuntimeError(f"redis-server exited at start: {error[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {timeout:g} s")
            time.sleep(0.01)  # polling a condition with a deadline, not a guess

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL); the AOF keeps its data."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()

    def wipe(self) -> None:
        """Stop the server and delete its data: a restart without persistence."""
        self.stop()
        for path in self.directory.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def client(self, **options: Any) -> Any:
        """A ``redis.Redis`` client of this server, decoding replies to str."""
        import redis  # noqa: PLC0415 - only where redis-py is installed

        options.setdefault("decode_responses", True)
        options.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **options)

    def command_calls(self, client: Any) -> int:
        """Commands the server has run, from ``INFO commandstats`` through ``client``.

        INFO itself is left out; pass the same connected client each time, so that the
        commands a client sends when it connects are not counted either.
        """
        stats = client.info("commandstats")
        return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
        ):
            connection.sendall(b"PING\r\n")
            reply = connection.recv(64)
            return reply.startswith((b"+PONG", b"-NOAUTH"))
        return False
