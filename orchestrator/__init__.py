"""netlink-orchestrator: one netlink event engine for a mobile node's tunnels.

This module is the public API, and the only one: plugins (built-in, third-party, the guide's
examples) import every name they use from ``orchestrator`` itself and never from a submodule, which
the core may split, merge or rename in any release.  Everything listed in ``__all__`` is stable: a
name is added, never removed or renamed within a major version, and its documented meaning (a
dataclass's fields, a function's arguments, a constant's value) only grows.  See docs/plugins.md,
"The public API".

The names are resolved on first use, so that importing ``orchestrator`` costs nothing: miredo's
client hook starts a bare ``python -I -S`` on every tunnel change and must never pay for pluggy,
asyncio or dataclasses it does not use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .commands import Command
    from .config import Config, ConfigError, InterfaceSpec
    from .context import PluginContext
    from .dispatch import CONTROL_LANE, POLICY_LANE, UPLINK_LANE, interface_lane
    from .events import (
        AddressEvent,
        LinkAliasChanged,
        LinkChanged,
        LinkEvent,
        RouteEvent,
        RuleEvent,
        StandbyUplinksChanged,
        TunnelAddressChanged,
        Uplink,
        UplinkChanged,
    )
    from .files import replace_file
    from .hookspecs import hookimpl
    from .moves import Move, Part
    from .netlink import queries, wire, writes
    from .netlink.wire import RT_TABLE_MAIN
    from .plugins import load_config
    from .schema import REQUIRED, Key, Section
    from .state import NetworkState

__version__ = "0.1.0"

#: Public name -> the private module that defines it (``None``: the name is that module itself).
_PUBLIC: dict[str, tuple[str, str | None]] = {
    # writing a plugin
    "hookimpl": ("hookspecs", "hookimpl"),
    "PluginContext": ("context", "PluginContext"),
    "Move": ("moves", "Move"),
    "Part": ("moves", "Part"),
    "Command": ("commands", "Command"),
    # events
    "LinkEvent": ("events", "LinkEvent"),
    "AddressEvent": ("events", "AddressEvent"),
    "RouteEvent": ("events", "RouteEvent"),
    "RuleEvent": ("events", "RuleEvent"),
    "Uplink": ("events", "Uplink"),
    "UplinkChanged": ("events", "UplinkChanged"),
    "StandbyUplinksChanged": ("events", "StandbyUplinksChanged"),
    "TunnelAddressChanged": ("events", "TunnelAddressChanged"),
    "LinkAliasChanged": ("events", "LinkAliasChanged"),
    "LinkChanged": ("events", "LinkChanged"),
    # configuration
    "Config": ("config", "Config"),
    "InterfaceSpec": ("config", "InterfaceSpec"),
    "ConfigError": ("config", "ConfigError"),
    "Key": ("schema", "Key"),
    "Section": ("schema", "Section"),
    "REQUIRED": ("schema", "REQUIRED"),
    "load_config": ("plugins", "load_config"),
    # the network state and the lanes
    "NetworkState": ("state", "NetworkState"),
    "CONTROL_LANE": ("dispatch", "CONTROL_LANE"),
    "UPLINK_LANE": ("dispatch", "UPLINK_LANE"),
    "POLICY_LANE": ("dispatch", "POLICY_LANE"),
    "interface_lane": ("dispatch", "interface_lane"),
    # the rtnetlink codec plugins write the kernel with
    "wire": ("netlink.wire", None),
    "RT_TABLE_MAIN": ("netlink.wire", "RT_TABLE_MAIN"),
    # kernel changes as described writes, applied one by one
    "writes": ("netlink.writes", None),
    # asking the kernel: a table's routes, the policy rules, the route towards an address
    "queries": ("netlink.queries", None),
    # replacing a file in one step
    "replace_file": ("files", "replace_file"),
}

__all__ = [
    "CONTROL_LANE",
    "POLICY_LANE",
    "REQUIRED",
    "RT_TABLE_MAIN",
    "UPLINK_LANE",
    "AddressEvent",
    "Command",
    "Config",
    "ConfigError",
    "InterfaceSpec",
    "Key",
    "LinkAliasChanged",
    "LinkChanged",
    "LinkEvent",
    "Move",
    "NetworkState",
    "Part",
    "PluginContext",
    "RouteEvent",
    "RuleEvent",
    "Section",
    "StandbyUplinksChanged",
    "TunnelAddressChanged",
    "Uplink",
    "UplinkChanged",
    "__version__",
    "hookimpl",
    "interface_lane",
    "load_config",
    "queries",
    "replace_file",
    "wire",
    "writes",
]


def __getattr__(name: str) -> object:
    import importlib

    try:
        module_name, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
