"""The ``[ppp]`` section: its schema, the interface roles it declares, and what is wrong with it.

Only load-time work lives here (plain functions of the validated ``Config``): the core calls them
outside every lane, so they must be quick and must not touch the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import Config, InterfaceSpec, Key, Section

NAME = "ppp"  # the entry-point name, which is also the section's
IFNAMSIZ = 15


def _names_problem(names: list[str]) -> str | None:
    """pppd's units are named interfaces (ppp0, or pppd's ``ifname``): patterns would make
    entries mip6d cannot be told about, so each interface is listed by its name."""
    if not names:
        return "expected at least one interface name"
    bad = [n for n in names if not 0 < len(n) <= IFNAMSIZ or any(c in n for c in "*?[]/: ")]
    if bad:
        return f"expected names (1-{IFNAMSIZ} characters, no wildcard, '/', ':' or space), got {bad}"
    if len(set(names)) != len(names):
        return "an interface is listed twice"
    return None


SECTION = Section(
    {
        "interfaces": Key(
            "list[str]", "the PPP interfaces pppd creates, by name", ["ppp0"], check=_names_problem
        ),
        "ipv6": Key("bool", "the links also carry IPv6 (IPV6CP): their global address is a tunnel's", False),
        "mip6_preference": Key("int", "MnIfPreference of the links for mip6d (needs ipv6)", None, 1, 1000),
        "routing_profile": Key("str", "the [routing.profiles.<name>] of the links' IPv6 side (needs ipv6)"),
    },
    doc="PPP links as IPv4 uplinks",
)
IPV6_ONLY = ("mip6_preference", "routing_profile")


def declared_interfaces(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``role = "uplink"`` entry per PPP interface.  Without ``ipv6`` the IPv6-only keys are
    left out, so that ``orchestrator_check_config`` can say why rather than the core's generic line."""
    entry: dict[str, Any] = {"role": "uplink", "ipv6_tunnel": section["ipv6"]}
    if section["ipv6"]:
        entry.update({key: section[key] for key in IPV6_ONLY if key in section})
    return [{"match": name, **entry} for name in section["interfaces"]]


def problems(config: Config) -> list[str]:
    """What the schema cannot say: keys that need ``ipv6``, a profile nobody would apply (the
    ``routing`` plugin itself reports a profile that does not exist)."""
    section = config.section(NAME)
    found = [
        f"{NAME}.{key}: only a link's IPv6 side has one: set {NAME}.ipv6 = true, or remove it"
        for key in IPV6_ONLY
        if key in section and not section["ipv6"]
    ]
    name = section.get("routing_profile")
    if name is not None and section["ipv6"]:
        profile = config.section("routing").get("profiles", {}).get(name)
        if "routing" not in config.enable:
            found.append(f'{NAME}.routing_profile: the routing plugin applies it: enable "routing"')
        elif profile is not None and not profile.get("follow_address"):
            # No program runs the routing plugin's client hook for a PPP link (pppd's ipv6-up
            # comes before the global address): the routing plugin applies it on the address.
            found.append(
                f"{NAME}.routing_profile: [routing.profiles.{name}] needs follow_address = true "
                "(no client hook runs for a PPP link)"
            )
    return found


def shadowed(config: Config) -> list[str]:
    """PPP interfaces that an entry coming first (the file's, or another plugin's) gives another
    role: valid, but then this plugin's declaration does not apply to them."""
    section = config.section(NAME)
    lines = []
    for name in section["interfaces"]:
        spec = config.interface(name)
        if spec is None or _ours(spec):
            continue
        if spec.role != "uplink":
            differs = f"role {spec.role!r}"
        elif spec.ipv6_tunnel != section["ipv6"]:
            differs = f"role 'uplink' {'with' if spec.ipv6_tunnel else 'without'} ipv6_tunnel"
        else:
            continue
        where = f"{spec.origin} of {config.path.name}" if not spec.declared_by_plugin else spec.origin
        lines.append(
            f"{NAME}.interfaces: {name!r} gets {differs} from {where} (match {spec.match!r}), "
            f"which comes first: the {NAME} plugin's declaration does not apply to it"
        )
    return lines


def _ours(spec: InterfaceSpec) -> bool:
    return spec.plugin == NAME
