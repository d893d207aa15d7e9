"""Moves and their timelines: what happened after each uplink change, and how long it took.

A move begins at the kernel event that completed (or lost) the uplink and ends when every plugin
has reported its part, at ``daemon.move_timeout_s`` (``timeout``), or when a newer move begins
(``superseded``).  Phases are seconds since the beginning, so a status reader sees at once where
the time went.

An ended move is a record: a problem that comes after it ended (a hook call that failed late, a
late ``context.report`` or ``part.failed``) never changes its outcome or its problems
(``Move.record`` says so to every path), and is reported on its own: logged, counted and passed to
``orchestrator_on_error``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import workers
from .events import UplinkChanged

if TYPE_CHECKING:
    from .context import PluginContext

log = logging.getLogger(__name__)

RECENT_MOVES = 32

#: The plugin whose code is running: the dispatcher sets it for each coroutine hook call and each
#: answer to a question, and the tasks and callbacks that code schedules inherit it.  A part
#: remembers it, so that its failure after the move ended is reported as that plugin's.
running_plugin: ContextVar[PluginContext | None] = ContextVar("running_plugin", default=None)


@dataclass
class Move:
    """One move's timeline.  Plugins call ``phase`` and ``hold``; the core does the rest."""

    id: int
    event: UplinkChanged
    started: float  # unix time
    started_monotonic: float
    phases: dict[str, float] = field(default_factory=dict)
    outcome: str | None = None
    problems: list[str] = field(default_factory=list)
    _open_parts: set[int] = field(default_factory=set)
    _parts: Any = field(default_factory=itertools.count)
    _on_change: Callable[[Move, str | None], None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None  # the daemon's: where the move's state changes

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def phase(self, name: str) -> None:
        """Record that the move reached ``name`` now (the first time counts).  From a worker thread
        (a plain-function hook) the time is taken now and the record handed to the event loop."""
        elapsed = round(time.monotonic() - self.started_monotonic, 6)
        if not self.handed_to_loop(self._reached, name, elapsed):
            self._reached(name, elapsed)

    def _reached(self, name: str, elapsed: float) -> None:
        if name not in self.phases and not self.finished:
            self.phases[name] = elapsed
            if self._on_change:
                self._on_change(self, name)

    def handed_to_loop(self, method: Callable[..., None], *arguments: Any) -> bool:
        """Called from a worker thread: schedule ``method`` on the move's loop and say so; the
        move's state, its timers and the lanes it feeds belong to that loop."""
        return self._loop is not None and workers.handed_to(self._loop, method, *arguments)

    def record(self, problem: str) -> bool:
        """Add ``problem`` (once) while the move is open; False when it has ended.

        The one rule for a problem from any path (a failed hook call, ``context.report``,
        ``part.failed``, the move timeout): an ended move keeps its outcome and problems, and the
        caller reports the problem on its own instead.
        """
        if self.finished:
            return False
        if problem not in self.problems:
            self.problems.append(problem)
        return True

    def hold(self) -> Part:
        """Keep the move open until the returned part is released (``done`` or ``failed``)."""
        token = next(self._parts)
        self._open_parts.add(token)
        return Part(self, token, running_plugin.get())

    def release(self, token: int) -> None:
        self._open_parts.discard(token)
        if self._on_change:
            self._on_change(self, None)

    @property
    def parts_open(self) -> bool:
        return bool(self._open_parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started,
            "old": self.event.old.to_json() if self.event.old else None,
            "new": self.event.new.to_json() if self.event.new else None,
            "phases": dict(self.phases),
            "outcome": self.outcome,
            "problems": list(self.problems),
        }


@dataclass
class Part:
    """A plugin's open share of a move."""

    move: Move
    token: int
    holder: PluginContext | None = field(default=None, repr=False)  # who took it (``running_plugin``)

    def done(self) -> None:
        if not self.move.handed_to_loop(self.done):
            self.move.release(self.token)

    def failed(self, reason: str) -> None:
        """Release the part with a problem: the move's while it is open; after it ended, reported
        as the holder's ``context.report``, which leaves the ended move as it is."""
        if self.move.handed_to_loop(self.failed, reason):
            return
        if not self.move.record(reason):
            self._report_late(reason)
        self.move.release(self.token)

    def _report_late(self, reason: str) -> None:
        if self.holder is None:  # taken outside any plugin call (a test calling a hook itself)
            log.error("a part of move %d failed after the move ended: %s", self.move.id, reason)
        else:
            self.holder.report(reason, self.move)


class MoveLog:
    """The current move, the recent ones, and their end conditions."""

    def __init__(
        self,
        timeout_s: float,
        on_phase: Callable[[Move, str], None],
        on_finished: Callable[[Move], None],
    ) -> None:
        self.timeout_s = timeout_s
        self.recent: deque[Move] = deque(maxlen=RECENT_MOVES)
        self.current: Move | None = None
        self._on_phase = on_phase
        self._on_finished = on_finished
        self._timer: asyncio.TimerHandle | None = None
        self._dispatched: set[int] = set()

    def begin(self, event: UplinkChanged, started_monotonic: float) -> Move:
        if self.current is not None and not self.current.finished:
            self.finish(self.current, "superseded")
        offset = time.monotonic() - started_monotonic
        move = Move(event.move, event, time.time() - offset, started_monotonic)
        move._on_change = self._changed
        self.current = move
        self.recent.append(move)
        loop = move._loop = asyncio.get_running_loop()
        self._timer = loop.call_at(started_monotonic + self.timeout_s, self._expire, move)
        return move

    def dispatched(self, move: Move) -> None:
        """Every plugin's uplink hook has returned: the move may end once its holds are released."""
        if move.finished:
            return
        self._dispatched.add(move.id)
        self._maybe_finish(move)

    def _changed(self, move: Move, phase: str | None) -> None:
        if phase is not None:
            self._on_phase(move, phase)
        else:
            self._maybe_finish(move)

    def _maybe_finish(self, move: Move) -> None:
        if not move.finished and move.id in self._dispatched and not move.parts_open:
            self.finish(move, "failed" if move.problems else "ok")

    def _expire(self, move: Move) -> None:
        if move.record(f"not finished within {self.timeout_s:g} s"):
            self.finish(move, "timeout")

    def finish(self, move: Move, outcome: str) -> None:
        move.phases.setdefault("finished", round(time.monotonic() - move.started_monotonic, 6))
        move.outcome = outcome
        self._dispatched.discard(move.id)
        if move is self.current and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_finished(move)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
