"""The routing plugin's part in the daemon: hear the client hook, keep the end state in place.

The client hook tells the daemon "begin IFACE STATE" before it changes the interface and "end IFACE
STATE ADDRESS LLADDRESS MTU" after (one datagram each, never waited for).  A "begin up" during a
move holds the move open until its "end" (phase ``routes-applied``): a move is over when the tunnel
is routed, not when its address appears.  The daemon keeps the last step per tunnel, and when
someone removes one of the tunnel's IPv6 routes or its rule (systemd-networkd deletes foreign rules
when it restarts), it brings the tunnel back to that step's end state — by difference, so it
writes nothing when nothing of ours was touched.  It never re-asserts while a hook runs, and never
on a stale tunnel (down, gone, or its IPv4 uplink lost):
there is no state there to defend.  Nor after ``orchestrator_shutdown``: a stopped keeper has no
context, cancels the restore it had scheduled and ignores the calls still queued in other lanes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from orchestrator import RT_TABLE_MAIN, Config, Move, Part, PluginContext, RouteEvent, RuleEvent

from . import kernel
from .endstate import Step, end_state
from .hook import notify_path
from .profile import Profile, from_section, resolve_table, rt_tables

MAX_MESSAGE = 512
HOOK_BUSY_MAX_S = 10.0  # a hook that never said "end" (killed, datagram lost) stops blocking after this
COUNTER = "routing_reasserts"


class Keeper:
    """Per-daemon state of the routing plugin."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.busy: dict[str, float] = {}  # interface -> monotonic time of the hook's "begin"
        self.pending: set[str] = set()  # tunnels whose policy was removed, restored once per burst
        self.restore: asyncio.Handle | None = None  # the restore of ``pending``, once scheduled
        self.parts: dict[str, Part] = {}  # interface -> the move's hold while its hook brings it up
        self.stale: set[str] = set()
        self.profiles: dict[str, Profile] = {}  # by profile name
        self.sock: socket.socket | None = None
        self.context: PluginContext | None = None  # None: stopped (or not started), writes nothing

    # -- life -------------------------------------------------------------------------------------

    def start(self, context: PluginContext) -> None:
        self.context = context
        context.counters[COUNTER] += 0  # listed in status from the start
        names = rt_tables()
        sections = context.config.section("routing").get("profiles", {})
        self.profiles = {name: from_section(name, section, names) for name, section in sections.items()}
        path = notify_path(context.config)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self.read_notifications)

    def stop(self) -> None:
        """Defend nothing from now on: a restore already scheduled is cancelled, and a call queued
        before the shutdown finds no context (``profile_for`` answers None) and writes nothing."""
        if self.restore is not None:
            self.restore.cancel()
            self.restore = None
        self.pending.clear()
        for part in self.parts.values():  # a hook's "end" will not be heard: its move goes on
            part.done()
        self.parts.clear()
        self.busy.clear()
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.context is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(notify_path(self.context.config))
            self.context = None

    def profile_for(self, interface: str) -> Profile | None:
        """The profile ``interface`` is kept to; None when it has none or the keeper is stopped."""
        if self.context is None:
            return None
        spec = self.context.config.interface(interface)
        if spec is None or not spec.is_tunnel or not spec.routing_profile:
            return None
        return self.profiles.get(spec.routing_profile)

    # -- the hook's messages ------------------------------------------------------------------------

    def read_notifications(self) -> None:
        """Drain the hook's datagrams (also called before judging a removal: see ``policy_removed``)."""
        while self.sock is not None:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            self.heard(data.decode("ascii", "replace").split())

    def heard(self, words: list[str]) -> None:
        """One message; anything malformed is ignored (only root can write to the socket, but the
        daemon does not trust a datagram further than it can parse it)."""
        if len(words) < 3 or self.profile_for(words[1]) is None:
            return
        verb, interface, state = words[:3]
        move = self.context.current_move if self.context else None
        if verb == "begin":
            self.busy[interface] = time.monotonic()
            held = self.parts.get(interface)
            if state == "up" and move is not None and (held is None or held.move.finished):
                self.parts[interface] = move.hold()  # the move is not over before its routes are
            return
        self.busy.pop(interface, None)
        part = self.parts.pop(interface, None)
        step = _up_step(interface, words) if state == "up" else None
        if step is None:
            self.stale.add(interface)
        else:
            self.settled(interface, step, move)
        if part is not None:
            part.done()

    def settled(self, interface: str, step: Step, move: Move | None) -> None:
        """``interface`` reached ``step`` (its hook ended, or a followed address was applied): it is
        defended from now on, and the move in progress has its routes."""
        self.steps[interface] = step
        self.stale.discard(interface)
        if move is not None:
            move.phase("routes-applied")

    # -- re-asserting -------------------------------------------------------------------------------

    def policy_removed(self, event: RouteEvent | RuleEvent) -> None:
        """Note which tunnels the removal concerns; they are brought back once the burst it came
        in has been read (``call_soon``), so a flush of N routes costs one read of the kernel per
        tunnel, not N."""
        self.read_notifications()
        concerned = set()
        for interface in self.steps:
            profile = self.profile_for(interface)
            if profile is not None and self._concerns(event, interface, profile):
                concerned.add(interface)
        if concerned and self.restore is None:
            self.restore = asyncio.get_running_loop().call_soon(self._restore)
        self.pending |= concerned

    def _restore(self) -> None:
        self.restore = None
        if self.context is None:  # stopped since: nothing of ours is defended any more
            return
        self.read_notifications()
        pending, self.pending = self.pending, set()
        now = time.monotonic()
        for interface in sorted(pending):
            profile, started = self.profile_for(interface), self.busy.get(interface)
            if profile is None or interface in self.stale or (started and now - started < HOOK_BUSY_MAX_S):
                continue
            try:
                applied = kernel.converge(interface, profile, end_state(profile, self.steps[interface]))
            except (OSError, kernel.InterfaceMissing, kernel.ApplyError) as error:
                self.context.log.warning("cannot restore %s's routing: %s", interface, error)
                continue
            if applied:
                self.context.counters[COUNTER] += 1
                self.context.log.info("restored %s's routing: %s", interface, "; ".join(map(repr, applied)))

    def _concerns(self, event: RouteEvent | RuleEvent, interface: str, profile: Profile) -> bool:
        """Could the removal have touched this tunnel's end state?"""
        assert self.context is not None
        if isinstance(event, RuleEvent):
            return event.priority == profile.rule_priority and event.table == profile.table
        if event.table == profile.table:
            return True
        link = self.context.state.view.link_named(interface)
        return event.table == RT_TABLE_MAIN and link is not None and event.oif == link.index

    def mark_stale(self, interfaces: list[str] | None = None) -> None:
        """Nothing to defend until the hook brings the tunnel up again."""
        self.stale.update(self.steps if interfaces is None else interfaces)


def _up_step(interface: str, words: list[str]) -> Step | None:
    """The step of an "end IFACE up ADDRESS LLADDRESS MTU" message, if it is well formed."""
    if len(words) != 6:
        return None
    try:
        address, lladdress = str(ipaddress.IPv6Address(words[3])), str(ipaddress.IPv6Address(words[4]))
    except ValueError:
        return None
    mtu = int(words[5]) if words[5].isascii() and words[5].isdigit() else None
    return Step("up", interface, address, lladdress, mtu)


def watched_tables(config: Config) -> list[int]:
    names = rt_tables()
    profiles: Mapping[str, Any] = config.section("routing").get("profiles", {})
    tables = (resolve_table(profile.get("table"), names) for profile in profiles.values())
    return [table for table in tables if table is not None]
