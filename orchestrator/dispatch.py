"""Dispatcher: lanes, ordering, superseding, and isolation of every plugin call.

pluggy aborts a hook call when one implementation raises and knows nothing of asyncio, so the
dispatcher calls each implementation itself, in pluggy's order (``reversed(get_hookimpls())``),
bounded by ``daemon.plugin_timeout_s``.  Calls in one lane run strictly one after another; lanes
run in parallel, so a slow tunnel plugin never delays an uplink move.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import pluggy

from . import eager, workers
from .context import PluginContext
from .hookspecs import CARRIES_STATE
from .moves import Move, running_plugin
from .plugins import call_each

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTROL_LANE = "control"
UPLINK_LANE = "uplink"
POLICY_LANE = "policy"
REPORT = "report"  # the hook orchestrator_on_error names for a failure a plugin reported itself


def interface_lane(name: str) -> str:
    return f"interface:{name}"


def _as_plugin(context: PluginContext, start: Callable[[], T]) -> T:
    """Start a plugin's code as that plugin's (``running_plugin``), in a copy of the current
    context: what it starts (its task, the callbacks it schedules) inherits the copy, and the
    caller's own context stays as it was."""

    def run() -> T:
        running_plugin.set(context)
        return start()

    return contextvars.copy_context().run(run)


@dataclass
class Call:
    hook: str
    kwargs: dict[str, Any]
    move: Move | None = None
    on_done: Callable[[], None] | None = None
    # The implementations to call and their contexts, fixed when the call is queued: a reload that
    # swaps plugins meanwhile does not change who a queued call is for.
    impls: list[tuple[pluggy.HookImpl, PluginContext]] = field(default_factory=list)


@dataclass
class Lane:
    """Calls of one lane, run strictly in order by one drain at a time."""

    name: str
    queue: deque[Call] = field(default_factory=deque)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    draining: bool = False
    drain: asyncio.Future[None] | None = None  # the drain, while it waits for a call
    busy_since: float | None = None  # monotonic start of the call in progress


class Dispatcher:
    """Runs hook calls for the enabled plugins registered in ``pm``; made on the loop it serves."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        contexts: Mapping[str, PluginContext],
        timeout_s: float,
        counters: Counter[str],
    ) -> None:
        self.pm = pm
        self.contexts = contexts
        self.timeout_s = timeout_s
        self.counters = counters
        self.failures: Counter[str] = Counter()  # by plugin, for orchestrator_plugin_failures_total
        self.lanes: dict[str, Lane] = {}
        self._loop = asyncio.get_running_loop()
        self._threads = workers.WorkerThreads()
        self._closing = False
        self._abandoned: dict[asyncio.Future[Any], float] = {}  # tasks that outlived their timeout

    def submit(
        self,
        lane_name: str,
        hook: str,
        kwargs: dict[str, Any],
        move: Move | None = None,
        on_done: Callable[[], None] | None = None,
        plugins: frozenset[str] | None = None,
    ) -> None:
        """Queue a hook call (for ``plugins`` only, when given: a reload starts and stops some).
        A state-carrying call supersedes queued calls of the same hook.

        An idle lane starts at once, in this call: a hook that does not wait has run before submit()
        returns.  The control lane (phases, completions, errors) starts on the next loop turn
        instead, so it never delays the event that caused it.
        """
        impls = [
            (impl, self.contexts[impl.plugin_name])
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls())
            if plugins is None or impl.plugin_name in plugins
        ]
        if not impls:  # nobody to call: no lane work (route churn without a routing plugin, say)
            if on_done:
                on_done()
            return
        lane = self.lanes.get(lane_name)
        if lane is None:
            lane = self.lanes[lane_name] = Lane(lane_name)
        if hook in CARRIES_STATE:
            merged = self._supersede(lane, hook, kwargs)
            if merged is None:  # the queued changes cancel out: plugins already have this state
                if on_done:
                    on_done()
                return
            kwargs = merged
        lane.queue.append(Call(hook, kwargs, move, on_done, impls))
        if not lane.draining:
            lane.draining = True
            lane.idle.clear()
            drain: asyncio.Future[None]
            if lane_name == CONTROL_LANE:
                drain = asyncio.get_running_loop().create_task(self._drain(lane))
            else:
                drain = eager.start(self._drain(lane))
            lane.drain = None if drain.done() else drain

    def _supersede(self, lane: Lane, hook: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """Drop queued calls of ``hook``; the new call's ``old`` becomes the oldest unseen one.

        None when old and new are then equal (A->B, B->A queued): there is nothing left to say.
        """
        older = [call for call in lane.queue if call.hook == hook]
        if not older:
            return kwargs
        for call in older:
            lane.queue.remove(call)
            self.counters["calls_superseded"] += 1
            if call.on_done:
                call.on_done()
        event = kwargs["event"]
        if not hasattr(event, "old"):
            return kwargs
        merged = replace(event, old=older[0].kwargs["event"].old)
        return None if merged.old == merged.new else {**kwargs, "event": merged}

    async def _drain(self, lane: Lane) -> None:
        """Run the lane's queue empty, one call after the other; calls queued meanwhile join in."""
        try:
            while lane.queue:
                call = lane.queue.popleft()
                try:
                    await self._call_all(call, lane)
                finally:
                    lane.busy_since = None
                    if call.on_done:
                        call.on_done()
        finally:
            lane.draining = False
            lane.drain = None
            lane.idle.set()

    async def _call_all(self, call: Call, lane: Lane) -> None:
        for impl, context in call.impls:
            lane.busy_since = time.monotonic()  # per implementation: each has its own bound
            error = await self._call_one(impl, context, call.kwargs)
            if error is not None:
                self._failure(impl.plugin_name, call.hook, error, call.move, "plugin_errors")

    def _failure(self, plugin: str, hook: str, error: str, move: Move | None, counter: str) -> None:
        """Every failure of a plugin, a failed call or a report (``REPORT``), goes this one way:
        logged, counted, recorded on its move (``Move.record``: a move that has ended keeps its
        outcome and problems) and passed to ``orchestrator_on_error`` (unless it failed there)."""
        problem = error if hook == REPORT else f"{plugin}: {hook}: {error}"
        ended = ""
        if move is not None and not move.record(problem):
            ended = f" (move {move.id} had ended: it stays {move.outcome})"
        what = "reported" if hook == REPORT else f"failed in {hook}"
        log.error("plugin %s %s: %s%s", plugin, what, error, ended)
        self.counters[counter] += 1
        self.failures[plugin] += 1
        if hook != "orchestrator_on_error":
            arguments = {"plugin": plugin, "hook": hook, "error": error, "move": move}
            self.submit(CONTROL_LANE, "orchestrator_on_error", arguments)

    # -- services offered to plugins through their context ------------------------------------------

    def ask(self, hook: str, kwargs: dict[str, Any]) -> Any:
        """A first-result question, answered at once on the loop (see ``PluginContext.ask``).

        Asked from a worker thread (a plain-function hook), it is handed to the loop and the thread
        waits for the answer, at most as long as its own call may take.
        """
        if not workers.on_loop(self._loop):
            return workers.answer_from(self._loop, partial(self.ask, hook, kwargs), self.timeout_s)
        # Each answer runs as its plugin's code: in a copy of the context, which the answers share.
        return contextvars.copy_context().run(self._first_answer, hook, kwargs)

    def _first_answer(self, hook: str, kwargs: dict[str, Any]) -> Any:
        def context(plugin: str) -> dict[str, Any]:
            running_plugin.set(self.contexts[plugin])  # just before the plugin answers
            return {"context": self.contexts[plugin]}

        for plugin, answer, error in call_each(getattr(self.pm.hook, hook), kwargs, context):
            if error is not None:
                log.error("plugin %s failed in %s: %s", plugin, hook, error)
                self.counters["plugin_errors"] += 1
            elif answer is not None:
                return answer
        return None

    def report(self, plugin: str, problem: str, move: Move | None) -> None:
        """A failure a plugin found itself (see ``PluginContext.report``); reported from a worker
        thread (a plain-function hook), it is handed to the loop and handled there the same way."""
        if not workers.handed_to(self._loop, self.report, plugin, problem, move):
            self._failure(plugin, REPORT, problem, move, "plugin_failures")

    async def _call_one(
        self, impl: pluggy.HookImpl, context: PluginContext, kwargs: Mapping[str, Any]
    ) -> str | None:
        """Run one implementation; return None on success, else what went wrong."""
        arguments = {**kwargs, "context": context}
        chosen = {name: arguments[name] for name in impl.argnames}
        function = impl.function
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            if asyncio.iscoroutinefunction(function):
                future: asyncio.Future[Any] = _as_plugin(context, lambda: eager.start(function(**chosen)))
            else:
                plugin = impl.plugin_name
                held = self._threads.stuck(plugin)
                if held >= workers.STUCK_THREADS_PER_PLUGIN:  # another thread would be one more left behind
                    self.counters["plugin_calls_refused"] += 1
                    return f"plugin {plugin} holds {held} threads that never returned: call not started"
                job = partial(_as_plugin, context, partial(function, **chosen))  # in the worker thread
                future = self._threads.run(job, plugin)
            if not await self._finished(future, self.timeout_s):
                return f"timeout after {self.timeout_s:g} s"
            result = future.result()
            if asyncio.iscoroutine(result):  # a plain function that returned a coroutine
                inner = _as_plugin(context, lambda: eager.start(result))
                if not await self._finished(inner, self.timeout_s - (loop.time() - started)):
                    return f"timeout after {self.timeout_s:g} s"
                inner.result()
        except asyncio.CancelledError:
            if self._closing:
                raise
            return "cancelled"  # the plugin's own doing: its lane goes on
        except BaseException as error:  # even SystemExit from a plugin must not stop the daemon
            return f"{type(error).__name__}: {error}"
        return None

    async def _finished(self, future: asyncio.Future[Any], timeout_s: float) -> bool:
        """Wait for ``future`` up to ``timeout_s``; on timeout abandon it and return False.

        Abandoning means: a coroutine is cancelled without waiting for it (it may swallow the
        cancellation), a thread cannot be stopped and runs on detached.
        """
        if not future.done():
            await asyncio.wait({future}, timeout=max(timeout_s, 0))
        if future.done():
            return True
        future.cancel()
        if isinstance(future, asyncio.Task):  # it may swallow the cancellation and run on
            self._abandoned[future] = time.monotonic()
            future.add_done_callback(lambda task: self._abandoned.pop(task, None))
        self.counters["plugin_timeouts"] += 1
        return False

    def stuck_threads(self, plugin: str) -> int:
        """Threads ``plugin``'s abandoned calls still hold (see ``workers.STUCK_THREADS_PER_PLUGIN``)."""
        return self._threads.stuck(plugin)

    @property
    def wedge_bound_s(self) -> float:
        """A call older than this is stuck: twice the plugin timeout, plus a second of slack."""
        return 2 * self.timeout_s + 1.0

    def wedged(self) -> str | None:
        """Why the engine is not making progress, or None (the watchdog's question)."""
        now, bound = time.monotonic(), self.wedge_bound_s
        for lane in self.lanes.values():
            if lane.busy_since is not None and now - lane.busy_since > bound:
                return f"lane {lane.name} has been running one call for more than {bound:g} s"
        if self._threads.oldest_call_s(now) > bound:
            return f"a plugin function has not returned for more than {bound:g} s"
        # Finished tasks leave ``_abandoned`` through their done-callback.
        oldest = min(self._abandoned.values(), default=None)
        if oldest is not None and now - oldest > bound - self.timeout_s:
            return f"a plugin coroutine has ignored its cancellation for {now - oldest:.0f} s"
        return None

    async def drain(self, lane_name: str, timeout_s: float) -> bool:
        """Wait until a lane has nothing queued or running; False when ``timeout_s`` ran out."""
        lane = self.lanes.get(lane_name)
        if lane is None:
            return True
        try:
            await asyncio.wait_for(lane.idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    def lanes_status(self) -> list[dict[str, Any]]:
        """Each lane's backlog and how long its current call has been running (for status)."""
        now = time.monotonic()
        return [
            {
                "lane": lane.name,
                "queued": len(lane.queue),
                "busy_s": None if lane.busy_since is None else round(now - lane.busy_since, 3),
            }
            for lane in self.lanes.values()
        ]

    async def close(self) -> None:
        self._closing = True
        drains = [lane.drain for lane in self.lanes.values() if lane.drain is not None]
        for drain in drains:
            drain.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
