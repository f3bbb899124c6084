"""A stand-in for Hugging Face's `spaces` package on ZeroGPU, for the emulation tests (tests/test_zerogpu.py
puts this folder on the app's PYTHONPATH). ZeroGPU itself cannot be reached from here.

What it keeps of the real one (spaces 0.51, `spaces/zero/wrappers.py`): `GPU(task)` and
`GPU(duration=seconds or callable)(task)`; a callable duration gets the task's arguments. Each call runs the
task in a child process forked from the server, with its arguments sent pickled; a generator's yields (and a
function's return value) come back pickled, one at a time. Closing the caller's generator sets a stop event
that the child checks after each yield, and the child then closes the task's generator, as ZeroGPU's worker
does. Unlike ZeroGPU, each call forks a fresh child, which exits when the call ends: a cancelled call's child
is gone (it is terminated if it does not end within STOP_GRACE_S), which the tests check.

Every call is appended to $FAKE_SPACES_LOG as JSON lines: {"event": "call", "function", "duration", "pid"},
then {"event": "end", "function", "outcome": "done" | "closed" | "error", "pid", "exitcode"}. The import
itself is logged too, with whether torch had been imported before it.
"""

from __future__ import annotations

import functools
import inspect
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

LOG_ENV = "FAKE_SPACES_LOG"
DEFAULT_DURATION = 60  # seconds, as ZeroGPU's
STOP_GRACE_S = 30  # how long a closed call's child may take to stop before it is terminated

_fork = multiprocessing.get_context("fork")


def _log(**record: Any) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a") as log:
            log.write(json.dumps(record) + "\n")


_log(event="import", torch_imported_before="torch" in sys.modules)


def GPU(task: Callable | None = None, *, duration: int | Callable[..., int] | None = None, **_: Any):
    """The decorator, used bare or with `duration=`."""
    if task is None:
        return functools.partial(GPU, duration=duration)
    if inspect.isgeneratorfunction(task):
        return _generator_wrapper(task, duration)
    return _function_wrapper(task, duration)


def _seconds(duration: int | Callable[..., int] | None, args: tuple, kwargs: dict) -> int:
    return duration(*args, **kwargs) if callable(duration) else (duration or DEFAULT_DURATION)


def _child(task: Callable, connection, stop) -> None:
    """The forked worker: receive the arguments, run the task, send back what it yields or returns."""
    args, kwargs = connection.recv()
    try:
        if inspect.isgeneratorfunction(task):
            generator = task(*args, **kwargs)
            for value in generator:
                if stop.is_set():
                    generator.close()
                    break
                connection.send(("yield", value))
            connection.send(("end", None))
        else:
            connection.send(("return", task(*args, **kwargs)))
    except Exception as error:  # sent to the caller, which raises it, as ZeroGPU does
        connection.send(("error", error))


class _Call:
    """One call: its forked child, the pipe to it and its stop event."""

    def __init__(self, task: Callable, duration, args: tuple, kwargs: dict) -> None:
        self.name = task.__name__
        self.connection, child_end = _fork.Pipe()
        self.stop = _fork.Event()
        self.process = _fork.Process(target=_child, args=(task, child_end, self.stop), daemon=True)
        self.process.start()
        child_end.close()
        _log(
            event="call", function=self.name, duration=_seconds(duration, args, kwargs), pid=self.process.pid
        )
        self.connection.send((args, kwargs))

    def receive(self) -> tuple[str, Any]:
        try:
            return self.connection.recv()
        except EOFError:
            return "error", RuntimeError("ZeroGPU worker error: GPU task aborted")

    def end(self, outcome: str) -> None:
        """Wait for the child to exit (draining what it still sends), terminate it if it does not."""
        deadline = time.monotonic() + STOP_GRACE_S
        while self.process.is_alive() and time.monotonic() < deadline:
            try:
                if self.connection.poll(0.05):
                    self.connection.recv()
            except EOFError:  # the child closed its end: it is exiting
                self.process.join(max(deadline - time.monotonic(), 0))
        if self.process.is_alive():
            self.process.terminate()
            outcome += "+terminated"
        self.process.join()
        self.connection.close()
        _log(
            event="end",
            function=self.name,
            outcome=outcome,
            pid=self.process.pid,
            exitcode=self.process.exitcode,
        )


def _generator_wrapper(task: Callable, duration) -> Callable:
    @functools.wraps(task)
    def gpu_generator(*args: Any, **kwargs: Any):
        call = _Call(task, duration, args, kwargs)
        outcome = "error"
        try:
            while True:
                kind, payload = call.receive()
                if kind == "error":
                    raise payload
                if kind == "end":
                    outcome = "done"
                    return
                try:
                    yield payload
                except GeneratorExit:
                    outcome = "closed"
                    call.stop.set()
                    raise
        finally:
            call.end(outcome)

    return gpu_generator


def _function_wrapper(task: Callable, duration) -> Callable:
    @functools.wraps(task)
    def gpu_function(*args: Any, **kwargs: Any):
        call = _Call(task, duration, args, kwargs)
        outcome = "error"
        try:
            kind, payload = call.receive()
            if kind == "error":
                raise payload
            outcome = "done"
            return payload
        finally:
            call.end(outcome)

    return gpu_function
