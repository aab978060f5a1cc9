"""Run a worker program as a real process and talk to it line by line, with bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: The root of the checkout these tests belong to: the children import from it.
REPO_ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """``python -m tests.workers.file_store_worker MODE ARGS...`` in a child process.

    Lines the child prints are queued by a reader thread, so that every wait for one
    can be bounded.
    """

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.workers.file_store_worker", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=REPO_ROOT,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._pumps = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return "".join(self._stderr)

    def readline(self, timeout: float) -> str:
        """The next line the child prints; fails the test after ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"worker {self.pid} printed nothing for {timeout:g} s; stderr:\n{self.stderr()}"
            ) from None
        if line is None:
            self.process.wait(timeout=10)
            raise AssertionError(
                f"worker {self.pid} exited ({self.process.returncode}); stderr:\n{self.stderr()}"
            )
        return line

    def expect(self, expected: str, timeout: float = 30.0) -> None:
        """Wait for the child to print ``expected`` as a line."""
        line = self.readline(timeout)
        assert line == expected, f"worker {self.pid} printed {line!r}, not {expected!r}"

    def result(self, timeout: float = 30.0) -> dict[str, Any]:
        """The JSON object the child prints as its last line."""
        data: dict[str, Any] = json.loads(self.readline(timeout))
        return data

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        """End the child however it is doing; safe to call twice."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for pump in self._pumps:  # they stop at the end of the child's output
            pump.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
