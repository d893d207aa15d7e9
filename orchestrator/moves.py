"""Moves and their timelines: what happened after each uplink change, and how long it took.

A move begins at the kernel event that completed (or lost) the uplink and ends when every plugin
has reported its part, at ``daemon.move_timeout_s`` (``timeout``), or when a newer move begins
(``superseded``).  Phases are seconds since the beginning, so a status reader sees at once where
the time went.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import UplinkChanged

RECENT_MOVES = 32


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

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def phase(self, name: str) -> None:
        """Record that the move reached ``name`` now (the first time counts)."""
        if name not in self.phases and not self.finished:
            self.phases[name] = round(time.monotonic() - self.started_monotonic, 6)
            if self._on_change:
                self._on_change(self, name)

    def hold(self) -> Part:
        """Keep the move open until the returned part is released (``done`` or ``failed``)."""
        token = next(self._parts)
        self._open_parts.add(token)
        return Part(self, token)

    def release(self, token: int, problem: str | None) -> None:
        if problem:
            self.problems.append(problem)
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

    def done(self) -> None:
        self.move.release(self.token, None)

    def failed(self, reason: str) -> None:
        self.move.release(self.token, reason)


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
        loop = asyncio.get_running_loop()
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
        if not move.finished:
            move.problems.append(f"not finished within {self.timeout_s:g} s")
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
