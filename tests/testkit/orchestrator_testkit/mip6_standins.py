"""Start the Mobile IPv6 stand-ins in a lab and read what they logged.

Why: UMIP cannot run here (no ``CONFIG_IPV6_MIP6``), so a home agent and a mobile node are played
by :mod:`mip6_nodes` (run by its file path, ``python .../mip6_nodes.py ha|mn ...``: its docstring has the
rules each follows, the packets on the wire and the events it logs).  This module is the test-side
handle: each stand-in is a tracked process of the lab (own process group, killed by PID at the
lab's exit, stderr in a private log in ``lab.tmp``) and writes its events as JSON lines to a
private file that the test reads; a test waits for an event, never for a delay.

API
---
``STANDIN: Path`` (the script); ``DEFAULT_LIFETIME`` (MN's requested binding lifetime, s);
``DEFAULT_MAX_LIFETIME`` (HA's cap, s); ``INITIAL_BINDACK_TIMEOUT_FIRST_REG``, ``MAX_BINDACK_TIMEOUT``

``StandIn`` (base of both)
    ``.proc: TrackedProcess``; ``.log: Path`` (JSON lines); ``.ns: Namespace``
    ``.events(kind=None, since=0) -> list[dict]``   every event so far (of ``kind``), from index
        ``since`` of the full list; each has ``time`` (time.time() in the stand-in) and ``event``
    ``.mark() -> int``                              the index the next event will have
    ``.wait_for(predicate, timeout, what) -> T``    ``predicate(events)`` truthy, returned; fails at
        once if the process died
    ``.wait_event(kind, timeout=10, since=0, **fields) -> dict``  the first event of ``kind`` at or
        after ``since`` whose ``fields`` equal the given values
    ``.stop()``

``HomeAgentStandIn.start(lab, ns, address, status=0, max_lifetime=DEFAULT_MAX_LIFETIME, timeout=10)``
    ``status`` None: never answers.  ``.status``, ``.address``
``MobileNodeStandIn.start(lab, ns, interfaces, home_address, home_agent, lifetime=DEFAULT_LIFETIME,
    seq=None, timeout=10)``  ``interfaces``: ``"NAME:PREF[:tunnel]"``.  ``.coa() -> str | None`` (the
    last selected CoA, None after ``coa-lost``)

(:class:`mip6_lab.MipLab` wraps both: ``lab.start_home_agent(...)``, ``lab.start_mobile_node(...)``.)

Both return once the stand-in logged ``ready``: its packet socket is open and, for the mobile
node, rtnetlink is bound and dumped (so a CoA present at start is selected at once).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .lab import Lab
from .mip6_nodes import INITIAL_BINDACK_TIMEOUT_FIRST_REG, MAX_BINDACK_TIMEOUT
from .netns import Namespace, TrackedProcess, tail, wait_for

STANDIN = Path(__file__).with_name("mip6_nodes.py")
DEFAULT_LIFETIME = 60
DEFAULT_MAX_LIFETIME = 240

T = TypeVar("T")
S = TypeVar("S", bound="StandIn")
Event = dict[str, Any]


class StandIn:
    """One stand-in process and its JSON-lines log."""

    role: ClassVar[str] = ""

    def __init__(self, lab: Lab, ns: Namespace, proc: TrackedProcess, log: Path) -> None:
        self.lab = lab
        self.ns = ns
        self.proc = proc
        self.log = log

    @classmethod
    def _spawn(cls: type[S], lab: Lab, ns: Namespace, args: Sequence[str], timeout: float) -> S:
        """Start ``mip6_nodes ROLE --log FILE ARGS`` in ``ns`` and wait for ``ready``."""
        n = lab._next_id()
        log = lab.tmp / f"mip6-{cls.role}-{n}.jsonl"
        proc = ns.spawn([sys.executable, str(STANDIN), cls.role, "--log", str(log), *args],
                        log=lab.tmp / f"mip6-{cls.role}-{n}.stderr")
        standin = cls(lab, ns, proc, log)
        standin.wait_event("ready", timeout)
        return standin

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pid={self.proc.pid}, ns={self.ns.name!r}, log={str(self.log)!r})"

    def events(self, kind: str | None = None, since: int = 0) -> list[Event]:
        """Events logged so far (complete lines only), from index ``since``, of ``kind`` if given."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        lines = text[:text.rfind("\n") + 1].splitlines()
        found = [json.loads(line) for line in lines[since:]]
        return [e for e in found if kind is None or e["event"] == kind]

    def mark(self) -> int:
        """Index of the next event: ``since=`` for :meth:`events` / :meth:`wait_event`."""
        return len(self.events())

    def wait_for(self, predicate: Callable[[list[Event]], T | None], timeout: float, what: str) -> T:
        """Wait until ``predicate(events())`` is truthy and return it; fail at once (with the
        stand-in's stderr) if the process died."""
        def check() -> T | None:
            self.proc.check_alive(f"{type(self).__name__} in {self.ns.name}")
            return predicate(self.events())

        try:
            return wait_for(check, timeout, f"{what} ({self!r})", interval=0.005)
        except AssertionError as e:
            recent = "\n".join(json.dumps(ev) for ev in self.events()[-8:]) or "(none)"
            stderr = "" if self.proc.exited() else f"\nstderr:\n{tail(self.proc.log_path)}"
            raise AssertionError(f"{e}\nlast events:\n{recent}{stderr}") from None

    def wait_event(self, kind: str, timeout: float = 10.0, since: int = 0, **fields: Any) -> Event:
        """The first ``kind`` event at or after index ``since`` whose ``fields`` match."""
        def first(events: list[Event]) -> Event | None:
            return next((e for e in events[since:] if e["event"] == kind
                         and all(e.get(k) == v for k, v in fields.items())), None)

        return self.wait_for(first, timeout, f"event {kind} {fields or ''} from index {since}")

    def stop(self) -> None:
        self.lab.stop_process(self.proc)


class HomeAgentStandIn(StandIn):
    """The home agent: logs each Binding Update for its address and answers with ``status``
    (None: never), the BU's sequence number, to the CoA with a type-2 routing header."""

    role = "ha"
    status: int | None = None
    address: str = ""

    @classmethod
    def start(cls, lab: Lab, ns: Namespace, address: str, status: int | None = 0,
              max_lifetime: int = DEFAULT_MAX_LIFETIME, timeout: float = 10.0) -> HomeAgentStandIn:
        args = ["--address", address, "--max-lifetime", str(max_lifetime)]
        args += ["--silent"] if status is None else ["--status", str(status)]
        ha = cls._spawn(lab, ns, args, timeout)
        ha.status, ha.address = status, address
        return ha


class MobileNodeStandIn(StandIn):
    """The mobile node: UMIP's CoA choice over ``interfaces``, a BU at once on every new CoA,
    RFC 6275 retransmissions, refreshes."""

    role = "mn"

    @classmethod
    def start(cls, lab: Lab, ns: Namespace, interfaces: Sequence[str], home_address: str, home_agent: str,
              lifetime: int = DEFAULT_LIFETIME, seq: int | None = None,
              timeout: float = 10.0) -> MobileNodeStandIn:
        args = ["--home-address", home_address, "--home-agent", home_agent, "--lifetime", str(lifetime)]
        for spec in interfaces:
            args += ["--interface", spec]
        if seq is not None:
            args += ["--seq", str(seq)]
        return cls._spawn(lab, ns, args, timeout)

    def coa(self) -> str | None:
        """The CoA in use as logged (see :func:`coa_in`)."""
        return coa_in(self.events())


def coa_in(events: list[Event]) -> str | None:
    """The mobile node's CoA after ``events`` (its log): the last ``coa-selected`` address, None
    after ``coa-lost``."""
    changes = [e for e in events if e["event"] in ("coa-selected", "coa-lost")]
    return changes[-1].get("address") if changes else None


__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_LIFETIME",
    "INITIAL_BINDACK_TIMEOUT_FIRST_REG",
    "MAX_BINDACK_TIMEOUT",
    "STANDIN",
    "HomeAgentStandIn",
    "MobileNodeStandIn",
    "StandIn",
    "coa_in",
]
