"""The routing plugin's part in the daemon: see the client hook's runs, keep the end state in place.

Every run of the client hook that changes anything marks its begin and its end in the tunnel's alias
(``markers``), in the same netlink stream as its changes.  An "applying up" during a move holds the
move open until the run's end (phase ``routes-applied``): a move is over when the tunnel is routed,
not when its address appears.  The daemon keeps the last step per tunnel, and when
someone removes one of the tunnel's IPv6 routes or its rule (systemd-networkd deletes foreign rules
when it restarts), it brings the tunnel back to that step's end state — by difference, so it
writes nothing when nothing of ours was touched.  It never re-asserts while a hook runs, and never
on a stale tunnel (down, gone, or its IPv4 uplink lost):
there is no state there to defend.  Nor after ``orchestrator_shutdown``: a stopped keeper has no
context, cancels the restore it had scheduled and ignores the calls still queued in other lanes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from orchestrator import (
    RT_TABLE_MAIN,
    Config,
    LinkChanged,
    Move,
    Part,
    PluginContext,
    RouteEvent,
    RuleEvent,
    writes,
)

from . import kernel, markers
from .endstate import Step, end_state
from .profile import Profile, from_section, resolve_table, rt_tables

HOOK_BUSY_MAX_S = 10.0  # a run that never marked its end (killed mid-way) stops blocking after this
COUNTER = "routing_reasserts"


class Keeper:
    """Per-daemon state of the routing plugin."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.busy: dict[str, float] = {}  # interface -> monotonic time its hook run was seen begin
        self.aliases: dict[str, str | None] = {}  # interface -> the alias last taken
        self.pending: set[str] = set()  # tunnels whose policy was removed, restored once per burst
        self.restore: asyncio.Handle | None = None  # the restore of ``pending``, once scheduled
        self.parts: dict[str, Part] = {}  # interface -> the move's hold while its hook brings it up
        self.stale: set[str] = set()
        self.profiles: dict[str, Profile] = {}  # by profile name
        self.context: PluginContext | None = None  # None: stopped (or not started), writes nothing

    # -- life -------------------------------------------------------------------------------------

    def start(self, context: PluginContext) -> None:
        self.context = context
        context.counters[COUNTER] += 0  # listed in status from the start
        names = rt_tables()
        sections = context.config.section("routing").get("profiles", {})
        self.profiles = {name: from_section(name, section, names) for name, section in sections.items()}
        for link in list(context.state.view.links.values()):  # a hook run before the daemon started
            self.alias_changed(link.name)

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
        self.aliases.clear()
        self.context = None

    def profile_for(self, interface: str) -> Profile | None:
        """The profile ``interface`` is kept to; None when it has none or the keeper is stopped."""
        if self.context is None:
            return None
        spec = self.context.config.interface(interface)
        if spec is None or not spec.is_tunnel or not spec.routing_profile:
            return None
        return self.profiles.get(spec.routing_profile)

    # -- the hook's runs, from the tunnel's alias ------------------------------------------------------

    def link_changed(self, event: LinkChanged) -> None:
        """The link went away or down: a run on it is over (the kernel reports no alias of a link
        that is down), and there is nothing to defend."""
        if not event.present or not event.up:
            self._run_over(event.interface)
            self.mark_stale([event.interface])

    def alias_changed(self, interface: str) -> None:
        if self.profile_for(interface) is not None:
            self._catch_up(interface)

    def _catch_up(self, interface: str) -> None:
        """Take the tunnel's marker from the daemon's state, which has read netlink at least up to
        the event being handled: a call may wait in its lane while later ones are read, and a
        removal made by a run that has begun must not be undone.  Each alias is taken once, so
        this only ever moves forward.  A run that began during a move holds the move until it ends."""
        assert self.context is not None
        link = self.context.state.view.link_named(interface)
        alias = link.alias if link is not None else None
        if self.aliases.get(interface) == alias:
            return
        self.aliases[interface] = alias
        marker = markers.parse(interface, alias)
        move = self.context.current_move
        if marker is not None and marker.running:
            self.busy[interface] = time.monotonic()
            held = self.parts.get(interface)
            if marker.state == "up" and move is not None and (held is None or held.move.finished):
                self.parts[interface] = move.hold()  # the move is not over before its routes are
            return
        if marker is not None and marker.step is not None and link is not None and link.up:
            self.settled(interface, marker.step, move)
        elif marker is not None:  # flushed, failed, or down since: nothing of ours to defend
            self.stale.add(interface)
        failure = f"the client hook could not apply {interface}'s routing profile"
        self._run_over(interface, failure if marker is not None and marker.failed else None)

    def _run_over(self, interface: str, failure: str | None = None) -> None:
        """No run of the hook is in progress on ``interface`` any more: the move it held goes on
        (or fails, with ``failure``)."""
        self.busy.pop(interface, None)
        part = self.parts.pop(interface, None)
        if part is not None and failure is not None:
            part.failed(failure)
        elif part is not None:
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
        pending, self.pending = self.pending, set()
        now = time.monotonic()
        for interface in sorted(pending):
            profile = self.profile_for(interface)
            if profile is not None:
                self._catch_up(interface)
            if not self._address_in_place(interface):
                self.stale.add(interface)  # purged (the uplink was lost) or gone: nothing to defend
            started = self.busy.get(interface)
            if profile is None or interface in self.stale or (started and now - started < HOOK_BUSY_MAX_S):
                continue
            try:
                applied = kernel.converge(interface, profile, end_state(profile, self.steps[interface]))
            except (OSError, kernel.InterfaceMissing, writes.ApplyError) as error:
                self.context.log.warning("cannot restore %s's routing: %s", interface, error)
                continue
            if applied:
                self.context.counters[COUNTER] += 1
                self.context.log.info("restored %s's routing: %s", interface, "; ".join(map(repr, applied)))

    def _address_in_place(self, interface: str) -> bool:
        """Whether the tunnel still has its step's address.  Routes and rules are defended, not the
        address: one that was deleted (the mipv6 plugin's purge when the uplink is lost, miredo
        itself) makes the tunnel stale, whichever plugin heard of the loss first."""
        assert self.context is not None
        link = self.context.state.view.link_named(interface)
        step = self.steps.get(interface)
        if link is None or step is None:
            return False
        addresses = self.context.state.global_ipv6(link.index, usable=False)
        return any(address.address == step.address for address in addresses)

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


def watched_tables(config: Config) -> list[int]:
    names = rt_tables()
    profiles: Mapping[str, Any] = config.section("routing").get("profiles", {})
    tables = (resolve_table(profile.get("table"), names) for profile in profiles.values())
    return [table for table in tables if table is not None]
