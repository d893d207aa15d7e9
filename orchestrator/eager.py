"""Start a coroutine at once, in the caller's stack, and make a Task of it only if it must wait.

Why: a hook call that goes through ``asyncio.create_task`` costs a trip round the event loop per
task before the plugin's first line runs (Python 3.12's eager task factory exists to avoid exactly
this; 3.10 and 3.11 lack it).  Most hooks finish without ever waiting, so running the first step
directly takes a netlink event to the plugin in the same callback that read it.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], pending: Any) -> Generator[Any, Any, T]:
    """Relay between a Task and a coroutine whose first step already ran and yielded ``pending``."""
    while True:
        try:
            sent = yield pending
        except BaseException as error:  # cancellation and errors thrown in by the Task
            try:
                pending = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                pending = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]


def start(coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run ``coroutine`` until it first waits; return a future of its result.

    A coroutine that finishes (or raises) in its first step gets an already-resolved future, and no
    Task is ever created for it.
    """
    loop = asyncio.get_running_loop()
    try:
        pending = coroutine.send(None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as error:
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(error)
        return failed
    return asyncio.ensure_future(_resume(coroutine, pending))
