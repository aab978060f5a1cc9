"""Starting and stopping the child processes the benchmark servers run in."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
from collections.abc import Callable


def start_child(
    target: Callable[..., None], args: tuple[object, ...], name: str
) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection, object]:
    """Start ``target(control, *args)`` in a fresh interpreter; wait for its first message.

    The child sends one message when it is ready (its address); it must do so within
    30 s. Returns the process, the control connection, and that message.
    """
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=target, args=(child_end, *args), name=name, daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(30):
        process.kill()
        raise RuntimeError(f"{name} did not start within 30 s")
    return process, parent_end, parent_end.recv()


def stop_child(
    process: multiprocessing.process.BaseProcess | None,
    control: multiprocessing.connection.Connection | None,
    message: object,
    grace: float,
) -> None:
    """Ask the child to stop through ``control``; kill it if it is still alive after ``grace``."""
    if control is not None:
        with contextlib.suppress(OSError):
            control.send(message)
        control.close()
    if process is not None:
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join(5)
