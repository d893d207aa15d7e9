"""The ``teredo`` plugin object: the ``[teredo]`` contract and the hooks that drive the kicks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator import (
    REQUIRED,
    Config,
    Key,
    LinkChanged,
    Move,
    PluginContext,
    Section,
    StandbyUplinksChanged,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
)

from . import checks, miredo_conf
from .instance import Instance, Standby
from .requalify import Requalifier
from .source_route import SourceRoute
from .supervisor import Supervisor

TEREDO_PREFIX = "2001::/32"
RESERVED_TABLES = (0, 253, 254, 255)  # unspec, default, main, local


def _not_reserved(table: int) -> str | None:
    return (
        f"table {table} is the kernel's own (0, 253, 254 and 255 are reserved)"
        if table in RESERVED_TABLES
        else None
    )


STANDBY = Section(
    {
        "interface": Key("str", "the standby tunnel: an [[interfaces]] tunnel bound to an uplink", REQUIRED),
        "pidfile": Key("str", "pid file of this miredo's supervisor, the SIGHUP target", REQUIRED),
        "config": Key("str", "this miredo's configuration file: the daemon keeps its BindAddress", REQUIRED),
        "table": Key(
            "int",
            "routing table of its source route (default 1000 + the entry's position)",
            None,
            1,
            2**32 - 1,
            check=_not_reserved,
        ),
        "priority": Key(
            "int",
            "priority of the rule from its uplink's address (default 1000 + the entry's position)",
            None,
            1,
            32765,
        ),
    },
    array=True,
)

SECTION = Section(
    {
        "interface": Key("str", "the miredo tunnel interface (an [[interfaces]] tunnel)", "teredo"),
        "pidfile": Key("str", "pid file of miredo's supervisor, the SIGHUP target", "/run/miredo.pid"),
        "server": Key("ipv4", "the Teredo server's IPv4 literal (also the uplink reference)"),
        "min_requalify_interval_s": Key("float", "minimum time between two kicks", 1.0, 0, 3600),
        "qualification_timeout_s": Key("float", "wait this long for an address after a kick", 8.0, 0.5, 600),
    },
    tables={"standby": STANDBY},
)


class TeredoPlugin:
    """The plugin object (entry point ``orchestrator_teredo.plugin:PLUGIN``)."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.supervisors: list[Supervisor] = []

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
        section = config.section("teredo")
        names = [section["interface"], *(entry["interface"] for entry in section.get("standby", []))]
        return {name: TEREDO_PREFIX for name in names}

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        return checks.problems(config)

    @hookimpl
    def orchestrator_config_warnings(self, config: Config) -> list[str]:
        """miredo's own configuration, as the running miredo was started with it (else the default),
        and each standby's."""
        section = config.section("teredo")
        server = section.get("server")
        paths = [Path(entry["config"]) for entry in section.get("standby", [])]
        path = Supervisor(Path(section["pidfile"])).config_path()
        if path is not None or miredo_conf.DEFAULT_PATH.exists():
            paths.insert(0, path or miredo_conf.DEFAULT_PATH)
        server_text = str(server) if server else None
        found = [line for path in paths for line in miredo_conf.warnings(path, server_text)]
        return found + checks.warnings(config)

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        section = context.section
        self._add(context, section["interface"], Path(section["pidfile"]), context.status, None)
        for position, entry in enumerate(section.get("standby", [])):  # shown under "standby" in status
            route = SourceRoute(
                checks.standby_table(position, entry), checks.standby_priority(position, entry)
            )
            standby = Standby(Path(entry["config"]), route)
            status = context.status.setdefault("standby", {}).setdefault(entry["interface"], {})
            self._add(context, entry["interface"], Path(entry["pidfile"]), status, standby)
        for instance in self.instances.values():
            instance.start()

    def _add(
        self,
        context: PluginContext,
        interface: str,
        pidfile: Path,
        status: dict[str, Any],
        standby: Standby | None,
    ) -> None:
        state = context.state

        def exited(reason: str) -> None:
            requalifier.miredo_exited(reason)

        supervisor = Supervisor(pidfile, on_exit=exited)
        requalifier = Requalifier(
            supervisor,
            asyncio.get_running_loop(),
            min_interval_s=context.section["min_requalify_interval_s"],
            timeout_s=context.section["qualification_timeout_s"],
            uplink_present=lambda: state.tunnel_uplink(interface) is not None,
            counters=context.counters,
            status=status,
            log=context.log,
        )
        self.supervisors.append(supervisor)
        bound = context.config.bound_uplink(interface)
        self.instances[interface] = Instance(interface, bound, requalifier, context, standby)

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        for instance in self.instances.values():
            instance.requalifier.stop()
        for supervisor in self.supervisors:
            supervisor.close()
        self.instances, self.supervisors = {}, []  # a late call finds a stopped plugin

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        for instance in self.instances.values():
            instance.uplink_changed(event, move)

    @hookimpl
    async def orchestrator_standby_uplinks_changed(self, event: StandbyUplinksChanged) -> None:
        for instance in self.instances.values():
            instance.standby_changed()

    @hookimpl
    def orchestrator_requalify_tunnel(self, interface: str, reason: str) -> bool | None:
        """Another plugin's request (a handover over the Teredo address got no answer): one kick,
        under the same rules as a move's (minimum interval, never without an uplink)."""
        instance = self.instances.get(interface)
        if instance is None:
            return None
        instance.requalifier.request(f"asked: {reason}", None)
        return True

    @hookimpl
    async def orchestrator_tunnel_address_changed(self, event: TunnelAddressChanged) -> None:
        instance = self.instances.get(event.interface)
        if instance is not None:
            instance.requalifier.address_changed(event.new)

    @hookimpl
    async def orchestrator_link_changed(self, event: LinkChanged) -> None:
        instance = self.instances.get(event.interface)
        if instance is None:
            return
        if event.present:
            instance.requalifier.link_appeared()
        else:
            instance.requalifier.link_vanished()


PLUGIN = TeredoPlugin()
