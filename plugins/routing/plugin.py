"""The ``routing`` plugin object: the ``[routing.profiles.<name>]`` schema and its cross-checks."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from orchestrator import (
    Command,
    Config,
    Key,
    LinkAliasChanged,
    LinkChanged,
    Move,
    PluginContext,
    RouteEvent,
    RuleEvent,
    Section,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
)

from . import shell_hook
from .commands import HOOK
from .follow import address_changed, apply_present
from .keeper import Keeper, watched_tables
from .profile import resolve_table, rt_tables


def _mtu_problem(value: object) -> str | None:
    if value == "tunnel" or (isinstance(value, int) and 1280 <= value <= 65535):
        return None
    return f'expected "tunnel" or an MTU from 1280 to 65535, got {value!r}'


RESERVED_TABLES = {253: "default", 254: "main", 255: "local"}
RESERVED_PRIORITIES = (0, 32766, 32767)  # the kernel's own local, main and default rules


def _priority_problem(value: int) -> str | None:
    if value in RESERVED_PRIORITIES:
        return f"{value} is the priority of one of the kernel's own rules (0, 32766, 32767)"
    return None


def _gateway_problem(value: str) -> str | None:
    address = ipaddress.IPv6Address(value)
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        return f"{value!r} cannot be a next hop (unspecified, loopback or multicast)"
    return None


def table_problem(value: int | str | None, names: dict[str, int]) -> str | None:
    """A profile's table is flushed: it must be one of its own, never main, local or default."""
    try:
        number = resolve_table(value, names)
    except KeyError:
        return f"{value!r} is neither a number nor a name in the iproute2 rt_tables files"
    if number is None:
        return None
    if not 1 <= number <= 0xFFFFFFFF:
        return f"expected a table from 1 to 4294967295, got {number}"
    if number in RESERVED_TABLES:
        return f"{value!r} is the kernel's {RESERVED_TABLES[number]} table, which a profile would flush"
    return None


PROFILE = Section(
    {
        "table": Key("str|int", "routing table number or rt_tables name; absent: no table operations"),
        "rule_priority": Key(
            "int", "priority of the 'from ADDRESS' rule", 32765, 1, 0xFFFFFFFF, check=_priority_problem
        ),
        # 0 would be stored by the kernel as 1024, so the route would never look applied.
        "metric": Key("int", "metric of the tunnel's default route", 1029, 1, 0xFFFFFFFF),
        "mtu": Key(
            "str|int", 'tunnel MTU, or "tunnel" to keep what the tunnel reports', 1400, check=_mtu_problem
        ),
        "address_prefixlen": Key("int", "prefix length of the tunnel address", 128, 1, 128),
        "source_rule": Key("bool", "add a default route in table and a 'from ADDRESS' rule", False),
        "gateway": Key(
            "ipv6",
            "next hop of the default routes, on-link through the tunnel; absent: straight into it",
            check=_gateway_problem,
        ),
        "follow_address": Key(
            "bool",
            "apply when the tunnel's address changes (no client hook): routes, rules and MTU; "
            "the addresses and link state stay the tunnel plugin's",
            False,
        ),
    }
)

SECTION = Section(
    {
        "client_hook": Key(
            "str",
            "where miredo runs the client hook (checked by check-config and at start: safe, not older "
            "than this file)",
            shell_hook.DEFAULT_PATH,
        ),
    },
    tables={"profiles": PROFILE},
    doc="routing profiles for tunnel interfaces",
)


class RoutingPlugin:
    """The plugin object (entry point ``orchestrator_routing.plugin:PLUGIN``)."""

    def __init__(self) -> None:
        self.keeper = Keeper()

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {"routing": SECTION}

    @hookimpl
    def orchestrator_commands(self) -> list[Command]:
        return [HOOK]

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        return check_config(config)

    @hookimpl
    def orchestrator_watched_tables(self, config: Config) -> list[int]:
        return watched_tables(config)

    @hookimpl
    def orchestrator_config_warnings(self, config: Config) -> list[str]:
        problems = shell_hook.installed_problems(config.section("routing")["client_hook"], config)
        return unfollowed_profiles(config) + [f"routing.client_hook: {problem}" for problem in problems]

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        self.keeper.start(context)
        apply_present(self.keeper)

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        self.keeper.stop()

    @hookimpl
    async def orchestrator_policy_removed(self, event: RouteEvent | RuleEvent) -> None:
        self.keeper.policy_removed(event)

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged) -> None:
        if event.new is None:  # no IPv4 path: the tunnel's state is dead, defend nothing
            self.keeper.mark_stale()

    @hookimpl
    async def orchestrator_tunnel_address_changed(
        self, event: TunnelAddressChanged, move: Move | None
    ) -> None:
        address_changed(self.keeper, event, move)

    @hookimpl
    async def orchestrator_link_changed(self, event: LinkChanged) -> None:
        self.keeper.link_changed(event)

    @hookimpl
    async def orchestrator_link_alias_changed(self, event: LinkAliasChanged) -> None:
        self.keeper.alias_changed(event.interface)


def check_config(config: Config) -> list[str]:
    """Every ``routing_profile`` an interface names must exist; every table must be a profile's own,
    and so must every default route's metric (the kernel keeps one default route per metric)."""
    profiles = config.section("routing").get("profiles", {})
    problems = [
        f"{spec.origin}.routing_profile: no [routing.profiles.{spec.routing_profile}] section"
        for spec in config.interfaces
        if spec.routing_profile and spec.routing_profile not in profiles
    ]
    names = rt_tables()
    for name, profile in profiles.items():
        problem = table_problem(profile.get("table"), names)
        if problem:
            problems.append(f"routing.profiles.{name}.table: {problem}")
    problems += shared_by_profiles(profiles, names)
    return problems


def shared_by_profiles(profiles: Mapping[str, Mapping[str, Any]], names: dict[str, int]) -> list[str]:
    """Two profiles may not share a table (each flushes its own, rules at its priority included)
    nor a metric (the second tunnel's default route would be refused, or replace the first's)."""
    problems: list[str] = []
    owners: dict[tuple[str, object], str] = {}
    for name, profile in sorted(profiles.items()):
        try:
            table = resolve_table(profile.get("table"), names)
        except KeyError:
            table = None  # reported above
        for key, value in (("table", table), ("metric", profile["metric"])):
            if value is None:
                continue
            owner = owners.setdefault((key, value), name)
            if owner != name:
                problem = f"{value} is already routing.profiles.{owner}'s"
                problems.append(f"routing.profiles.{name}.{key}: {problem}")
    return problems


PLUGIN = RoutingPlugin()


def unfollowed_profiles(config: Config) -> list[str]:
    """A profile without ``follow_address`` is applied only when a client hook runs for its tunnel;
    a tunnel a plugin declares (6to4, a PPP link's IPv6 side) usually has none."""
    profiles = config.section("routing").get("profiles", {})
    return [
        f"{spec.origin}.routing_profile: [routing.profiles.{spec.routing_profile}] is applied only when "
        "a client hook runs for the tunnel: set follow_address = true unless one does"
        for spec in config.interfaces
        if spec.declared_by_plugin
        and spec.routing_profile in profiles
        and not profiles[spec.routing_profile].get("follow_address")
    ]
