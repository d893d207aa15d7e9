"""The ``6to4`` plugin object (entry point ``orchestrator_6to4.plugin:PLUGIN``).

Every move converges the tunnel to what the new uplink allows (``prefix.target``); the netlink
work runs in a worker thread (``asyncio.to_thread``), while the phases, the status and the reports
are written back on the event loop, where ``Move`` and the context belong.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import Any

from orchestrator import Config, Move, PluginContext, Section, UplinkChanged, hookimpl

from . import device
from .prefix import Target, target
from .settings import SECTION, Settings

PHASES = {"up": "6to4-configured", "behind-nat": "6to4-behind-nat", "down": "6to4-down"}


class Tunnel:
    """One plugin run (start-up to shutdown): the settings, and one convergence at a time."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.settings = Settings.from_section(context.section)
        self.lock = asyncio.Lock()  # a shutdown waits for the convergence in progress
        for counter in ("6to4_configured", "6to4_behind_nat"):
            context.counters[counter] += 0

    async def follow(self, uplink: ipaddress.IPv4Address | None, move: Move | None) -> None:
        wanted = target(uplink, self.settings)
        async with self.lock:
            try:
                changes = await asyncio.to_thread(device.converge, self.settings, wanted, device.ticket())
            except device.DeviceError as error:
                self._failed(wanted, str(error), move)
                return
        self._reached(wanted, changes, move)

    def _reached(self, wanted: Target, changes: list[str], move: Move | None) -> None:
        context, name = self.context, self.settings.interface
        if changes:
            context.log.info("%s: %s", name, "; ".join(changes))
        if wanted.state == "up" and any(change.startswith("address add") for change in changes):
            context.counters["6to4_configured"] += 1
        if wanted.state == "behind-nat":
            context.counters["6to4_behind_nat"] += 1
            context.log.warning("%s kept down: %s", name, wanted.reason)
        self._status(wanted.state, wanted, wanted.reason, changes)
        if move is not None:
            move.phase(PHASES[wanted.state])

    def _failed(self, wanted: Target, problem: str, move: Move | None) -> None:
        self._status("failed", wanted, problem, [])
        self.context.report(problem, move)  # logged, counted, and the move fails

    def _status(self, state: str, wanted: Target, reason: str | None, changes: list[str]) -> None:
        status: dict[str, Any] = {
            "state": state,
            "interface": self.settings.interface,
            "uplink": wanted.uplink,
            "prefix": wanted.prefix if state == "up" else None,
            "address": str(wanted.address) if state == "up" else None,
            "reason": reason,
            "changed": changes,
        }
        self.context.status.clear()
        self.context.status.update(status)


class SixToFourPlugin:
    def __init__(self) -> None:
        self.tunnel: Tunnel | None = None

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {"6to4": SECTION}

    @hookimpl
    def orchestrator_interfaces(self, config: Config) -> list[dict[str, object]]:
        """The tunnel is configured here, in one place: role tunnel, and the optional profile and
        Mobile IPv6 preference of the section."""
        section = config.section("6to4")
        entry: dict[str, object] = {"match": section["interface"], "role": "tunnel"}
        for key in ("routing_profile", "mip6_preference"):
            if section.get(key) is not None:
                entry[key] = section[key]
        return [entry]

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        if config.section("6to4").get("routing_profile") and "routing" not in config.enable:
            return ['6to4.routing_profile: the "routing" plugin applies it: add it to plugins.enable']
        return []

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        """Converge to the uplink the daemon starts with (read here, on the loop)."""
        self.tunnel = Tunnel(context)
        current = context.state.tracker.current
        await self.tunnel.follow(current.ip if current else None, None)

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        """Let the convergence in progress finish, then leave the tunnel as it is: it matches the
        uplink, so IPv6 keeps working through a restart, and the next start writes nothing."""
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            async with tunnel.lock:
                pass

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        if self.tunnel is not None:  # None: stopped, a late call is ignored
            await self.tunnel.follow(event.new.ip if event.new else None, move)


PLUGIN = SixToFourPlugin()
