"""Worker threads for plugin hooks written as plain functions, and their way back to the loop.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so
one plugin call that never returns would keep a stopping daemon alive forever.  These are daemon
threads: a call abandoned after its timeout keeps its thread, the pool grows by one, and the
process can still exit.  So that a plugin whose calls never return cannot grow the pool without
end, each call names the plugin it is for and the pool counts, per plugin, the threads of abandoned
calls that have not returned (``stuck``); the dispatcher starts no call of a plugin that holds
``STUCK_THREADS_PER_PLUGIN`` of them.

A plain function may call back into the daemon (``context.report``, ``context.ask``, its move),
whose state belongs to the event loop: ``handed_to`` schedules a call there for a thread,
``answer_from`` runs a function there for a thread and waits for its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How many threads one plugin may hold that never returned from a call abandoned at
#: ``daemon.plugin_timeout_s``.  A plugin holding that many gets no new one: its plain-function hooks
#: fail at once, without starting, until one of those threads returns.
STUCK_THREADS_PER_PLUGIN = 4

Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any], str]


@dataclass(frozen=True)
class _Running:
    """A call in progress on a thread: for which plugin, since when, and the future it answers
    (cancelled when the call was abandoned)."""

    owner: str
    began: float
    future: asyncio.Future[Any]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # abandoned after its timeout
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop`` (not on a worker thread, nor on another loop)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread
        return False


def handed_to(loop: asyncio.AbstractEventLoop, function: Callable[..., None], *arguments: Any) -> bool:
    """Called off ``loop`` (from a worker thread): schedule ``function(*arguments)`` there and say
    so; on the loop, do nothing and say so (the caller goes on itself)."""
    if on_loop(loop):
        return False
    loop.call_soon_threadsafe(function, *arguments)
    return True


def answer_from(loop: asyncio.AbstractEventLoop, function: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``function`` on ``loop`` for a thread and return its result (or raise its error).

    Waits at most ``timeout_s``: a loop that does not answer by then raises ``TimeoutError`` here,
    and the function is then not run at all, unless it has already started.
    """
    answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        if not answer.set_running_or_notify_cancel():
            return  # the thread gave up waiting
        try:
            answer.set_result(function())
        except BaseException as error:
            answer.set_exception(error)

    loop.call_soon_threadsafe(run)
    try:
        return answer.result(timeout_s)
    except concurrent.futures.TimeoutError:
        answer.cancel()
        raise TimeoutError(f"the event loop did not answer within {timeout_s:g} s") from None


class WorkerThreads:
    def __init__(self, name: str = "plugin") -> None:
        self.name = name
        self.started = 0
        self._idle = 0
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._running: dict[str, _Running] = {}  # thread name -> its current call

    def oldest_call_s(self, now: float) -> float:
        """How long the longest-running call has been running (0 when none runs): a call
        abandoned after its timeout keeps its thread, and one that never returns shows here."""
        with self._lock:
            return max((now - call.began for call in self._running.values()), default=0.0)

    def stuck(self, owner: str) -> int:
        """How many threads ``owner``'s abandoned calls hold: their functions have not returned."""
        with self._lock:
            calls = self._running.values()
            return sum(1 for call in calls if call.owner == owner and call.future.cancelled())

    def run(self, function: Callable[[], Any], owner: str) -> asyncio.Future[Any]:
        """Run ``function`` for plugin ``owner`` on a worker thread; the returned future resolves on
        the calling loop (cancel it to abandon the call)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self.started += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self.started}", daemon=True).start()
        self._jobs.put((loop, future, function, owner))
        return future

    def _work(self) -> None:
        while True:
            loop, future, function, owner = self._jobs.get()
            result: Any = None
            error: BaseException | None = None
            name = threading.current_thread().name
            with self._lock:
                self._running[name] = _Running(owner, time.monotonic(), future)
            try:
                result = function()
            except BaseException as caught:
                error = caught
            with self._lock:
                del self._running[name]
            # A closed loop (RuntimeError) means nobody waits for this answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, result, error)
            with self._lock:
                self._idle += 1
