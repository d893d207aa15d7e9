"""Start a coroutine at once, in the caller's stack, as a task of its own.

Why: a hook call that goes through ``asyncio.create_task`` waits a trip round the event loop before
the plugin's first line runs.  Most hooks finish without ever waiting, so running the first step
directly takes a netlink event to the plugin in the very callback that read it.

Python 3.12 does this itself (``eager_start``).  On 3.10 and 3.11 the same is emulated: the task is
created first and made the loop's current task while the first step runs, so ``current_task()``,
``asyncio.timeout()`` and cancellation inside that step refer to the hook's own task, as they would
under 3.12; the task then carries on from where the first step stopped.
"""

from __future__ import annotations

import asyncio
import sys
import types
from asyncio import tasks
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

#: The table asyncio.current_task() reads (private, stable from 3.7 to 3.11, where it is needed).
_CURRENT: dict[asyncio.AbstractEventLoop, Any] = vars(tasks).get("_current_tasks", {})


class _FirstStep:
    """What the eager first step produced: a pending awaitable, or the end of the coroutine."""

    __slots__ = ("error", "finished", "pending", "result")

    def __init__(self) -> None:
        self.pending: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False


@types.coroutine
def _carry_on(coroutine: Coroutine[Any, Any, Any], first: _FirstStep) -> Generator[Any, Any, Any]:
    """The task's body: relay between the task and a coroutine whose first step already ran."""
    if first.finished:
        return first.result  # an error was delivered through the future start() returned
    pending = first.pending
    while True:
        try:
            sent = yield pending
        except BaseException as error:  # cancellation and errors thrown in by the task
            try:
                pending = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value


def start(coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coroutine`` until it first waits, then as a task; return a future of its result.

    A coroutine that finishes (or raises) in its first step comes back as a resolved future.
    """
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coroutine, loop=loop, eager_start=True)  # type: ignore[call-arg, unused-ignore]
    first = _FirstStep()
    task: asyncio.Future[T] = loop.create_task(_carry_on(coroutine, first))
    caller = _CURRENT.get(loop)
    _CURRENT[loop] = task
    try:
        first.pending = coroutine.send(None)
    except StopIteration as stop:
        first.finished, first.result = True, stop.value
    except BaseException as error:
        first.finished, first.error = True, error
    finally:
        if caller is None:
            _CURRENT.pop(loop, None)
        else:
            _CURRENT[loop] = caller
    if not first.finished:
        return task
    done: asyncio.Future[T] = loop.create_future()
    if first.error is not None:
        done.set_exception(first.error)
    else:
        done.set_result(first.result)
    return done
