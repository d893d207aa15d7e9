"""The ``ppp`` plugin object: PPP links declared as uplinks, followed and explained at run time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import (
    Config,
    LinkChanged,
    Move,
    PluginContext,
    Section,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
)

from .sessions import Sessions
from .settings import NAME, SECTION, declared_interfaces, problems, shadowed


class PppPlugin:
    """The plugin object (entry point ``orchestrator_ppp:PLUGIN``)."""

    def __init__(self) -> None:
        self.sessions: Sessions | None = None  # None while stopped: late calls are ignored

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {NAME: SECTION}

    @hookimpl
    def orchestrator_interfaces(self, config: Config) -> list[dict[str, Any]]:
        return declared_interfaces(config.section(NAME))

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        return problems(config)

    @hookimpl
    def orchestrator_config_warnings(self, config: Config) -> list[str]:
        return shadowed(config)

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        self.sessions = Sessions(context)

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        self.sessions = None

    @hookimpl
    async def orchestrator_link_changed(self, event: LinkChanged) -> None:
        if self.sessions is not None:
            self.sessions.link_changed(event.interface)

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        if self.sessions is not None:
            self.sessions.uplink_changed(event, move)

    @hookimpl
    async def orchestrator_tunnel_address_changed(self, event: TunnelAddressChanged) -> None:
        if self.sessions is not None:
            self.sessions.ipv6_changed(event)


PLUGIN = PppPlugin()
