"""The ``teredo`` plugin object: the ``[teredo]`` contract and the hooks that drive the kicks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from orchestrator import (
    Config,
    Key,
    LinkChanged,
    Move,
    PluginContext,
    Section,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
)

from . import miredo_conf
from .requalify import Requalifier
from .supervisor import Supervisor

TEREDO_PREFIX = "2001::/32"

SECTION = Section(
    {
        "interface": Key("str", "the miredo tunnel interface (an [[interfaces]] tunnel)", "teredo"),
        "pidfile": Key("str", "pid file of miredo's supervisor, the SIGHUP target", "/run/miredo.pid"),
        "server": Key("ipv4", "the Teredo server's IPv4 literal (also the uplink reference)"),
        "min_requalify_interval_s": Key("float", "minimum time between two kicks", 1.0, 0, 3600),
        "qualification_timeout_s": Key("float", "wait this long for an address after a kick", 8.0, 0.5, 600),
    }
)


class TeredoPlugin:
    """The plugin object (entry point ``orchestrator_teredo.plugin:PLUGIN``)."""

    def __init__(self) -> None:
        self.requalifier: Requalifier | None = None
        self.supervisor: Supervisor | None = None
        self.interface = ""

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {"teredo": SECTION}

    @hookimpl
    def orchestrator_uplink_reference(self, config: Config) -> str | None:
        """The Teredo server: the uplink that matters is the one miredo's packets leave by."""
        server = config.section("teredo").get("server")
        return str(server) if server else None

    @hookimpl
    def orchestrator_address_prefixes(self, config: Config) -> Mapping[str, str]:
        """Teredo addresses are in 2001:0::/32 (RFC 4380): the client hook refuses any other."""
        return {config.section("teredo")["interface"]: TEREDO_PREFIX}

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        interface = config.section("teredo")["interface"]
        if config.role(interface) != "tunnel":
            return [f"teredo.interface: {interface!r} needs an [[interfaces]] entry with role 'tunnel'"]
        return []

    @hookimpl
    def orchestrator_config_warnings(self, config: Config) -> list[str]:
        """miredo's own configuration, as the running miredo was started with it (else the default)."""
        section = config.section("teredo")
        path = Supervisor(Path(section["pidfile"])).config_path()
        if path is None:
            if not miredo_conf.DEFAULT_PATH.exists():
                return []
            path = miredo_conf.DEFAULT_PATH
        server = section.get("server")
        return miredo_conf.warnings(path, str(server) if server else None)

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        section = context.section
        self.interface = section["interface"]
        self.supervisor = Supervisor(Path(section["pidfile"]), on_exit=self._miredo_exited)
        self.requalifier = Requalifier(
            self.supervisor,
            asyncio.get_running_loop(),
            min_interval_s=section["min_requalify_interval_s"],
            timeout_s=section["qualification_timeout_s"],
            uplink_present=lambda: context.state.tracker.current is not None,
            counters=context.counters,
            status=context.status,
            log=context.log,
        )
        self.requalifier.start(context.state.tunnel_address(self.interface))

    def _miredo_exited(self, reason: str) -> None:
        if self.requalifier is not None:
            self.requalifier.miredo_exited(reason)

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        if self.requalifier is not None:
            self.requalifier.stop()
        if self.supervisor is not None:
            self.supervisor.close()
        self.requalifier = self.supervisor = None  # a late call finds a stopped plugin

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        if self.requalifier is None:
            return
        if event.new is None:
            self.requalifier.uplink_lost()
        else:
            self.requalifier.request(f"new uplink {event.new.interface} {event.new.address}", move)

    @hookimpl
    def orchestrator_requalify_tunnel(self, interface: str, reason: str) -> bool | None:
        """Another plugin's request (a handover over the Teredo address got no answer): one kick,
        under the same rules as a move's (minimum interval, never without an uplink)."""
        if self.requalifier is None or interface != self.interface:
            return None
        self.requalifier.request(f"asked: {reason}", None)
        return True

    @hookimpl
    async def orchestrator_tunnel_address_changed(self, event: TunnelAddressChanged) -> None:
        if self.requalifier is not None and event.interface == self.interface:
            self.requalifier.address_changed(event.new)

    @hookimpl
    async def orchestrator_link_changed(self, event: LinkChanged) -> None:
        if self.requalifier is None or event.interface != self.interface:
            return
        if event.present:
            self.requalifier.link_appeared()
        else:
            self.requalifier.link_vanished()


PLUGIN = TeredoPlugin()
