"""When to SIGHUP miredo: exactly when it helps, never when it hurts.

miredo does not watch the network.  After a DHCP move it keeps its dead Teredo address until its
next 30 s refresh (and 100 s more when the move broke its qualification).  A SIGHUP sent once the
new IPv4 address and default route exist gives a new address in tens of milliseconds; one sent
without a route costs 4 to 108 s; and every SIGHUP changes the Teredo address, which costs a Mobile
IPv6 binding update.  Hence the rules this class keeps:

* a complete new uplink -> one kick; kicks closer than ``min_requalify_interval_s`` coalesce into
  one sent as soon as the interval allows (for the newest uplink);
* uplink lost -> no kick, pending kicks cancelled, the tunnel is ``stale``;
* the ``teredo`` link vanishing and returning after a kick is miredo's own restart: never a
  reason to kick again (this class never kicks on a link event);
* start-up: kick only on a complete uplink with no usable Teredo address;
* after a kick, a timer (never a blocking wait) for the new address; none within
  ``qualification_timeout_s`` -> ``failed``, kick again after a doubling back-off;
* no live miredo behind the pid file -> ``failed``, said plainly and counted, not retried until
  the next move.

Everything runs on the daemon's event loop (the plugin's hooks are coroutines), so no locking.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from orchestrator import Move, Part

from .supervisor import NotStarted, SupervisorMissing

MAX_BACKOFF_S = 300.0  # the longest wait between two kicks that got no address

# Counters shown by `orchestrator status`.
KICKS = "teredo_kicks"
COALESCED = "teredo_kicks_coalesced"
TIMEOUTS = "teredo_qualification_timeouts"
MIREDO_ABSENT = "teredo_miredo_absent"
COUNTERS = (KICKS, COALESCED, TIMEOUTS, MIREDO_ABSENT)


class Handle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of the event loop used here (a test passes a clock it advances by hand)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Handle: ...


class Signaller(Protocol):
    """miredo's supervisor (see ``supervisor.Supervisor``)."""

    def reload(self) -> int: ...

    def pid(self) -> int: ...


class Requalifier:
    """The Teredo tunnel's qualification state: ``qualifying``, ``up``, ``stale`` or ``failed``."""

    def __init__(
        self,
        supervisor: Signaller,
        clock: Clock,
        *,
        min_interval_s: float,
        timeout_s: float,
        uplink_present: Callable[[], bool],
        counters: Counter[str],
        status: dict[str, Any],
        log: logging.Logger,
    ) -> None:
        self.supervisor = supervisor
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s
        self.uplink_present = uplink_present
        self.counters = counters
        self.status = status
        self.log = log
        self.address: str | None = None
        self.last_kick: float | None = None
        self.failures = 0  # kicks in a row that brought no address
        self._kick_timer: Handle | None = None  # a coalesced kick, or the retry after a failure
        self._wait_timer: Handle | None = None  # waiting for the address after a kick
        self._move: Move | None = None  # the move the next or the last kick serves
        self._part: Part | None = None
        self._waiting = False  # started before miredo had: its tunnel appearing is expected
        for name in COUNTERS:
            counters[name] += 0  # listed in status from the start
        self._set("stale", "not started")

    # -- events --------------------------------------------------------------------------------------

    def start(self, address: str | None, stale: str | None = None) -> None:
        """Take the tunnel as it is; ``stale``: why its address, if any, is dead already.  A miredo
        that has not started yet (no pid file: a standby's unit starts after the daemon) is waited
        for, not a failure: its tunnel appearing is what comes next."""
        self.address = address
        try:
            self.supervisor.pid()
        except NotStarted as missing:
            self.log.info("%s; waiting for it", missing)
            self._waiting = True
            self._set("stale", f"{missing}; waiting for it")
            return
        except SupervisorMissing as missing:
            self._absent(str(missing))
            return
        if address is not None and stale is None:
            self._set("up", "")
        elif self.uplink_present():
            self.request(stale or "start-up: no Teredo address on a complete uplink", None)
        else:
            self._set("stale", "no IPv4 uplink")

    def stop(self) -> None:
        self._cancel_timers()
        self._release(None)

    def uplink_lost(self) -> None:
        self._cancel_timers()
        self._release(None)  # the loss is a move of its own: the one served is superseded
        self.failures = 0
        self._set("stale", "no IPv4 uplink")

    def request(self, why: str, move: Move | None) -> None:
        """A complete new uplink: kick now, or as soon as the minimum interval allows."""
        self._release(None)  # a newer move supersedes the one a pending kick served
        self._move, self._part = move, move.hold() if move is not None else None
        self.failures = 0
        if self._kick_timer is not None:  # a coalesced kick or a back-off retry: re-planned here
            self._kick_timer.cancel()
            self._kick_timer = None
        now = self.clock.time()
        due = max(now, self.last_kick + self.min_interval_s) if self.last_kick is not None else now
        if due > now:
            self.counters[COALESCED] += 1
            self._kick_timer = self.clock.call_at(due, self._kick, why)
            self._set("qualifying", f"SIGHUP due in {due - now:.3f} s (minimum interval)")
        else:
            self._kick(why)

    def address_changed(self, address: str | None) -> None:
        self.address = address
        if address is None:
            if self._wait_timer is None and self.state == "up":  # not our kick's churn
                self._set("stale", "miredo withdrew its address")
            return
        if self._wait_timer is not None:
            self._wait_timer.cancel()
            self._wait_timer = None
        self.failures = 0
        if self._move is not None and self._kick_timer is None:
            self._move.phase("tunnel-up")
        if self._kick_timer is None and self.uplink_present():
            self._release(None)
            self._set("up", "")
        elif self._kick_timer is None:  # qualified over the path just lost: dead already
            self._set("stale", "no IPv4 uplink")

    def link_vanished(self) -> None:
        """The tunnel link went away; unless a kick explains it, ask whether miredo still runs."""
        if self._wait_timer is not None:
            return  # our own kick: miredo re-creates the link with a new index
        try:
            pid = self.supervisor.pid()
        except SupervisorMissing as missing:
            self._absent(str(missing))
            return
        if self.uplink_present():
            self._set("qualifying", f"miredo (pid {pid}) restarted its tunnel on its own")

    def link_appeared(self) -> None:
        """The tunnel link appeared: a miredo found gone, or waited for, has started."""
        if (self.state != "failed" and not self._waiting) or self._kick_timer is not None:
            return
        try:
            pid = self.supervisor.pid()  # watched from now on
        except SupervisorMissing:
            return  # still failed, for the reason already shown
        self._waiting = False
        self._set("qualifying", f"miredo (pid {pid}) is back")

    def miredo_exited(self, reason: str) -> None:
        if self.state == "failed" and self._kick_timer is None:
            return  # already reported: the tunnel vanished with a miredo found gone
        self._absent(reason)

    # -- kicks ---------------------------------------------------------------------------------------

    def _kick(self, why: str) -> None:
        self._kick_timer = None
        if not self.uplink_present():
            self.uplink_lost()
            return
        try:
            pid = self.supervisor.reload()
        except SupervisorMissing as missing:
            self._absent(str(missing))
            return
        self.last_kick = self.clock.time()
        self.counters[KICKS] += 1
        move_text = f" for move {self._move.id}" if self._move is not None else ""
        self.log.info("SIGHUP to miredo (pid %d)%s: %s", pid, move_text, why)
        if self._move is not None:
            self._move.phase("requalify-sent")
        if self._wait_timer is not None:
            self._wait_timer.cancel()
        self._wait_timer = self.clock.call_at(self.last_kick + self.timeout_s, self._timed_out)
        self._set("qualifying", f"SIGHUP sent to pid {pid}")

    def _timed_out(self) -> None:
        self._wait_timer = None
        self.failures += 1
        self.counters[TIMEOUTS] += 1
        backoff = min(self.timeout_s * 2 ** (self.failures - 1), MAX_BACKOFF_S)
        reason = f"no Teredo address {self.timeout_s:g} s after the SIGHUP"
        self._release(reason)
        self.log.warning("%s (%d in a row); next SIGHUP in %g s", reason, self.failures, backoff)
        self._set("failed", f"{reason} ({self.failures} in a row); next SIGHUP in {backoff:g} s")
        self._kick_timer = self.clock.call_at(self.clock.time() + backoff, self._kick, "retry")

    def _absent(self, reason: str) -> None:
        self.counters[MIREDO_ABSENT] += 1
        self._cancel_timers()
        self._release(reason)
        self.log.error("%s", reason)
        self._set("failed", reason)

    # -- bookkeeping ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return str(self.status["state"])

    def _set(self, state: str, reason: str) -> None:
        self.status.update(state=state, reason=reason, address=self.address)

    def _release(self, problem: str | None) -> None:
        part, self._part, self._move = self._part, None, None
        if part is not None:
            part.failed(problem) if problem else part.done()

    def _cancel_timers(self) -> None:
        for timer in (self._kick_timer, self._wait_timer):
            if timer is not None:
                timer.cancel()
        self._kick_timer = self._wait_timer = None
