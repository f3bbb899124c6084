"""Process-wide state the handlers share: the per-image pose cache and the running runs' cancel flags."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Generic, TypeVar

Value = TypeVar("Value")


class LruCache(Generic[Value]):
    """A thread-safe LRU map bounded by the total `size_of` its values (bytes, for the pose cache). Detection
    runs once per image however many times the mode changes or the same image is generated from; the bound
    keeps a long-running Space from growing without limit, however large each upload is. The newest value is
    always kept, even alone over the bound.

    Single-flight: a caller asking for a key whose value is being created waits for it, so a draw-mode change
    made while the upload's detection runs draws that detection instead of starting a second one."""

    def __init__(self, capacity: int, size_of: Callable[[Value], int] = lambda value: 1) -> None:
        self.capacity = capacity
        self.size_of = size_of
        self._items: OrderedDict[str, Value] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._pending: dict[str, Future[Value]] = {}
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The total size of the values held."""
        with self._lock:
            return sum(self._sizes.values())

    def peek(self, key: str) -> Value | None:
        """The value of `key` if it is cached or being created (then waited for), else None; creates nothing.
        A creation that fails counts as a miss here: its own caller reports the error."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.get(key)
        if pending is None or pending.exception() is not None:
            return None
        return pending.result()

    def get_or_create(self, key: str, create: Callable[[], Value]) -> Value:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.get(key)
            creating = pending is None
            if creating:
                pending = self._pending[key] = Future()
        if not creating:
            return pending.result()  # the creator's value, or its error raised again
        try:
            value = create()  # outside the lock: creating may take seconds (a detection)
        except BaseException as error:
            with self._lock:
                del self._pending[key]
            pending.set_exception(error)
            raise
        size = self.size_of(value)
        with self._lock:
            del self._pending[key]
            self._items[key], self._sizes[key] = value, size
            self._items.move_to_end(key)
            total = sum(self._sizes.values())
            while total > self.capacity and len(self._items) > 1:
                oldest, _ = self._items.popitem(last=False)
                total -= self._sizes.pop(oldest)
        pending.set_result(value)
        return value

    def __len__(self) -> int:
        return len(self._items)


class CancelFlags:
    """One threading.Event per (session, kind of run): Cancel sets it, the engine polls it between steps.
    Keyed by kind too, so a session's Cancel ("generation") and Cancel sweep ("sweep") each stop only their
    own run.

    A run may be armed when it is requested, before it waits in the queue: Cancel then reaches it while it
    waits too, and the run finds its flag already set when it starts. Gradio's `cancels=` also stops an event
    on the server's side, but the denoising thread only stops when the engine sees its flag, which is what
    frees the GPU for the next person in the queue."""

    def __init__(self) -> None:
        self._armed: dict[tuple[str, str], threading.Event] = {}
        self._running: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def arm(self, session: str | None, kind: str) -> None:
        """A fresh flag for the next run of `kind` in `session`: Cancel can set it before the run starts."""
        if session:
            with self._lock:
                self._armed[(session, kind)] = threading.Event()

    @contextmanager
    def run(self, session: str | None, kind: str) -> Iterator[threading.Event]:
        """The run's flag (the armed one, maybe set already, else a fresh one), which Cancel of `kind` in
        `session` sets; it is set when the run ends however it ends (done, failed, or closed by Gradio),
        which stops its worker thread. Runs without a session (API calls) get a private flag."""
        flag = threading.Event()
        if session:
            key = (session, kind)
            with self._lock:
                flag = self._armed.pop(key, None) or flag
                self._running[key] = flag
        try:
            yield flag
        finally:
            flag.set()
            if session:
                with self._lock:
                    if self._running.get(key) is flag:
                        del self._running[key]

    def cancel(self, session: str, kind: str) -> bool:
        """Set the flags of the session's running and waiting run of `kind` (the waiting one's stays armed,
        so the run finds it set when it starts); False when there is neither."""
        key = (session, kind)
        with self._lock:
            flags = [flag for flag in (self._armed.get(key), self._running.pop(key, None)) if flag]
        for flag in flags:
            flag.set()
        return bool(flags)
