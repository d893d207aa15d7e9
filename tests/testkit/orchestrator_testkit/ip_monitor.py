"""``ip -ts monitor`` in a namespace: the kernel's own account of what changed, and when.

API: ``Monitor`` (started by ``Lab.monitor``)
    ``.events() -> list[Event]``; ``.mark() -> int``; ``.since(mark) -> list[Event]``;
    ``.wait_for(predicate, timeout, what)``; ``Event(ts, text)`` with ``.kind``
    ("link" / "address" / "route"), ``.deleted``, ``.time`` (Unix time ``ip`` printed it:
    ``monitor_time(ts)``; the monitor runs with TZ=UTC0)
``await_route_listener(ns, seen, what)``  a route listener in ``ns`` is provably subscribed
``wait_for_quiet(predicate, timeout, interval=0.01) -> bool``  True when ``predicate`` never held
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .netns import Namespace, wait_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lab import Lab

# Sync marker used by Monitor: a route in a private table, in a documentation range.
MONITOR_MARK_DST = "192.0.2.255"
MONITOR_MARK_TABLE = "4242"
MONITOR_MARK = ("unreachable", f"{MONITOR_MARK_DST}/32", "table", MONITOR_MARK_TABLE)


# --------------------------------------------------------------------------------------------------
# ip monitor
# --------------------------------------------------------------------------------------------------
# ``ip -ts`` (iproute2 6.1) starts each message with "[2026-11-28T01:22:26.642012] ": strftime
# "%Y-%m-%dT%H:%M:%S" of localtime() plus ".%06ld" microseconds of gettimeofday(), taken when ip
# prints the message (the kernel stamps nothing), with no time zone.  Monitor runs ip with
# TZ=UTC0, so a stamp is UTC whatever the host's zone and no DST change falls between two stamps.
# (``ip -t`` instead prints a "Timestamp: Sat Nov 28 01:22:26 2026 642006 usec" line of its own.)
_TS_RE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\]\s?(.*)$")
_TS_FIELDS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
MONITOR_TZ = "UTC0"
_ADDR_RE = re.compile(r"^(?:Deleted )?\d+: \S+\s+inet6? ")
_LINK_RE = re.compile(r"^(?:Deleted )?\d+: \S+: <")


def monitor_time(ts: str) -> float:
    """Unix time (seconds) of an ``ip -ts`` stamp printed under ``TZ=UTC0`` (as :class:`Monitor`
    runs it).  Any number of fraction digits, or none, is accepted."""
    m = _TS_FIELDS_RE.fullmatch(ts)
    if not m:
        raise ValueError(f"not an ip -ts time stamp: {ts!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = m.group(7) or ""
    whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass(frozen=True)
class Event:
    """One message as ``ip -ts monitor`` printed it (continuation lines included)."""

    ts: str
    text: str

    @property
    def time(self) -> float:
        """When ``ip`` printed it, as Unix time (see :func:`monitor_time`): compare stamps of one
        monitor with each other, not with this process's clocks."""
        return monitor_time(self.ts)

    @property
    def deleted(self) -> bool:
        return self.text.startswith("Deleted ")

    @property
    def kind(self) -> str:
        """'address', 'link' or 'route' (neigh etc. are reported as 'route' if monitored)."""
        if _ADDR_RE.match(self.text):
            return "address"
        if _LINK_RE.match(self.text):
            return "link"
        return "route"

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0]


class Monitor:
    """``ip -ts monitor OBJECTS`` in a namespace, logged to a private file.

    Why: an independent record of what the kernel announced, to compare with what the daemon
    concluded.  On start it adds and deletes an ``unreachable 192.0.2.255/32`` route in table
    4242 of that namespace and waits to see both, so nothing after the constructor returns can
    be missed; those marker events are filtered out.  ``route`` is always monitored (needed for
    the marker)."""

    def __init__(self, lab: Lab, ns: Namespace,
                 objects: Sequence[str] = ("link", "address", "route")) -> None:
        self.ns = ns
        objs = list(objects) if "route" in objects else [*objects, "route"]
        self.path = lab.tmp / f"monitor-{ns.short}-{lab._next_id()}.log"
        self.proc = ns.spawn(["ip", "-ts", "monitor", *objs], log=self.path,
                             env={**os.environ, "TZ": MONITOR_TZ})

        def seen(deleted: bool) -> bool:
            self.proc.check_alive(f"ip monitor in {ns.name}")
            return any(MONITOR_MARK_DST in e.text and e.deleted == deleted for e in self._all())

        await_route_listener(ns, lambda: seen(False), f"ip monitor in {ns.name}")
        wait_for(lambda: seen(True), 10, f"ip monitor in {ns.name} to report the marker's deletion")
        self._start = len(self._all())

    def _all(self) -> list[Event]:
        events: list[Event] = []
        text = self.path.read_text(errors="replace")
        # only complete lines: ip may be caught half-way through writing a message
        for line in text[:text.rfind("\n") + 1].splitlines():
            m = _TS_RE.match(line)
            if m:
                events.append(Event(m.group(1), m.group(2)))
            elif events and line[:1].isspace():
                last = events[-1]
                events[-1] = Event(last.ts, f"{last.text}\n{line}")
        return events

    def events(self) -> list[Event]:
        """Every event since the monitor was ready (the sync markers excluded)."""
        return [e for e in self._all()[self._start:] if MONITOR_MARK_DST not in e.text]

    def sync(self) -> None:
        """Make the kernel announce a marker and wait for it: whatever the kernel announced before
        is then in the log, so "nothing happened" can be asserted without waiting and hoping."""
        before = len(self._all())
        self.ns.ip("route", "add", *MONITOR_MARK)
        self.ns.ip("route", "del", *MONITOR_MARK)
        wait_for(lambda: any(MONITOR_MARK_DST in e.text and e.deleted for e in self._all()[before:]),
                 10, f"ip monitor in {self.ns.name} to report a sync marker")

    def mark(self) -> int:
        """A position for :meth:`since`."""
        return len(self.events())

    def since(self, mark: int) -> list[Event]:
        return self.events()[mark:]

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float, what: str) -> list[Event]:
        """Wait until ``predicate(events())`` holds; returns the events."""
        def check() -> list[Event] | None:
            evs = self.events()
            return evs if predicate(evs) else None

        return wait_for(check, timeout, what)


def await_route_listener(ns: Namespace, seen: Callable[[], bool], what: str) -> None:
    """Return once a route listener in ``ns`` (an ``ip monitor``, a user's script...) is provably
    subscribed: ``seen()`` must report the ``unreachable 192.0.2.255/32`` marker route of table
    4242, which is re-created until it does (a listener subscribes asynchronously, and replacing an
    identical route would announce nothing).  The marker is deleted again at the end."""
    def marker_seen() -> bool:
        ns.ip("route", "del", *MONITOR_MARK, check=False)
        ns.ip("route", "add", *MONITOR_MARK)
        return wait_for_quiet(seen, 0.2)

    wait_for(marker_seen, 10, f"{what} to report the sync marker route")
    ns.ip("route", "del", *MONITOR_MARK)


def wait_for_quiet(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> bool:
    """Like wait_for but returns False instead of raising (for retry loops)."""
    try:
        wait_for(predicate, timeout, "", interval)
    except AssertionError:
        return False
    return True
