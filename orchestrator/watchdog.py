"""The watchdog pings only while the engine makes progress.

A ping proves nothing if it comes from a timer that keeps firing while the engine is stuck.  So
each tick first asks: was the event loop late by more than ``lag_bound_s`` (something blocked it),
and is any lane call, abandoned plugin thread or abandoned plugin task older than the wedge bound
(``dispatch.Dispatcher.wedged``)?  If so the ping is withheld, said once in the log and in
``STATUS=``, and the init system restarts the daemon when its ``WatchdogSec`` runs out: a plugin
that wedges forever ends in a restart, not a zombie daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from .notify import Notifier

log = logging.getLogger("orchestrator")

LAG_BOUND_S = 1.0


class Watchdog:
    def __init__(
        self,
        notifier: Notifier,
        interval_s: float,
        health: Callable[[], str | None],
        counters: Counter[str],
        on_change: Callable[[str | None], None],
        lag_bound_s: float = LAG_BOUND_S,
    ) -> None:
        self.notifier = notifier
        self.interval_s = interval_s
        self.health = health
        self.counters = counters
        self.on_change = on_change  # called with the reason when pings stop, None when they resume
        self.lag_bound_s = lag_bound_s
        self.problem: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.counters["watchdog_pings"] += 0
        self.counters["watchdog_withheld"] += 0
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        self._timer = loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        lag = asyncio.get_running_loop().time() - due
        problem = f"the event loop ran {lag:.1f} s late" if lag > self.lag_bound_s else self.health()
        if problem is None:
            try:
                self.notifier.watchdog()
                self.counters["watchdog_pings"] += 1
            except OSError as error:
                log.error("cannot ping the watchdog: %s", error)
        else:
            self.counters["watchdog_withheld"] += 1
        changed = bool(problem) != bool(self.problem)
        self.problem = problem
        if changed:
            if problem:
                log.error("watchdog pings withheld: %s", problem)
            else:
                log.warning("watchdog pings resumed")
            self.on_change(problem)
        self._schedule()
