"""The TOML policy: the core's own sections, plugin sections, and one error per problem.

The key names are a contract with users and their tooling (see etc/orchestrator.toml): keys are
added, never renamed.  Loading never half-succeeds: either every section is valid and a ``Config``
comes back, or ``ConfigError`` lists every problem, each naming the file and the key path.
"""

from __future__ import annotations

import fnmatch
import grp
import ipaddress
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .schema import REQUIRED, Key, Section, describe_value, validate, validate_section

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_PATH = Path("/etc/orchestrator/orchestrator.toml")
ROLES = ("uplink", "tunnel", "lan")
MAX_GID = 2**32 - 2  # (gid_t)-1 means "no change" to chown and friends
#: ``[daemon]`` keys a reload reports as changed but applies only after a restart.
RESTART_ONLY_KEYS = ("control_socket", "control_group", "netlink_rcvbuf_mib", "log_level")


def resolve_group(value: str | int) -> int:
    """The gid ``daemon.control_group`` names: a group name, or a gid as an integer or digits.

    Both are looked up in the group database (``LookupError`` when absent), so a typo is a
    configuration error instead of a socket no one can use.
    """
    if isinstance(value, int) or (value.isascii() and value.isdigit()):
        return grp.getgrgid(int(value)).gr_gid
    return grp.getgrnam(value).gr_gid


def _group_problem(value: str | int) -> str | None:
    try:
        resolve_group(value)
    except (LookupError, OverflowError):  # OverflowError: digits beyond any gid
        return f"no group {value!r} in the group database"
    return None


DAEMON = Section(
    {
        "log_level": Key("str", "messages shown", "info", choices=("debug", "info", "warning", "error")),
        "plugin_timeout_s": Key("float", "bound on one plugin call", 5.0, 0.01, 3600),
        "move_timeout_s": Key("float", "a move not finished by then ends as timeout", 10.0, 0.1, 3600),
        "control_socket": Key("str", "path of the control socket", "/run/orchestrator/control.sock"),
        "netlink_rcvbuf_mib": Key("float", "netlink receive buffer, MiB", 32, 0.0625, 1024),
        "control_group": Key(
            "str|int", "group whose members may ask read-only commands", None, 0, MAX_GID,
            check=_group_problem,
        ),
    }
)
PLUGINS = Section({"enable": Key("list[str]", "plugins to run, in call order", [])})
UPLINKS = Section(
    {
        "reference": Key("ipv4", "IPv4 address the uplink is judged towards"),
        "carrier_grace_ms": Key("int", "carrier blip shorter than this is no move", 2000, 0, 600000),
        "settle_ms": Key("int", "an uplink missing its address or route this long is lost", 300, 0, 60000),
    }
)
INTERFACE = Section(
    {
        "match": Key("str", "interface name or fnmatch pattern", REQUIRED),
        "role": Key("str", "what the interface is for", REQUIRED, choices=ROLES),
        "mip6_preference": Key("int", "MnIfPreference for Mobile IPv6", None, 1, 1000),
        "routing_profile": Key("str", "routing profile applied to this tunnel"),
        "ipv6_tunnel": Key("bool", "an uplink whose own IPv6 is handled like a tunnel's", False),
        "uplink": Key("str", "the uplink this tunnel's packets leave by (absent: the active uplink)"),
    }
)


def listen_address(value: str) -> tuple[str, int]:
    """``metrics.listen`` as (host, port): ``127.0.0.1:9477``, ``[::1]:9477``; ``ValueError``
    saying what is wrong otherwise.  An IP literal only: a name would need a lookup at start."""
    host, colon, port = value.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected ADDRESS:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9477")
    bracketed = host.startswith("[") and host.endswith("]")
    address = host[1:-1] if bracketed else host
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        version = None
    if version is None or (version == 6) != bracketed:
        example = "IPv6 in brackets: [::1]:9477"
        raise ValueError(f"{describe_value(host)} is not an IP address literal ({example})")
    return address, int(port)


def _listen_problem(value: str) -> str | None:
    try:
        listen_address(value)
    except ValueError as error:
        return str(error)
    return None


def _textfile_problem(value: str) -> str | None:
    path = Path(value)
    if not path.is_absolute() or not path.name.endswith(".prom"):
        wanted = "an absolute path ending in .prom (node_exporter reads only those)"
        return f"expected {wanted}, got {describe_value(value)}"
    if not path.parent.is_dir():
        return f"no directory {path.parent}"
    return None


METRICS = Section(
    {
        "listen": Key("str", "ADDRESS:PORT of the /metrics listener; absent: none", check=_listen_problem),
        "textfile": Key(
            "str", "a .prom file for node_exporter's textfile collector", check=_textfile_problem
        ),
    }
)
CORE_SECTIONS: Mapping[str, Section] = {
    "daemon": DAEMON, "plugins": PLUGINS, "uplinks": UPLINKS, "metrics": METRICS
}


class ConfigError(Exception):
    """Every problem found in one configuration file, one line each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


@dataclass(frozen=True)
class DaemonSettings:
    log_level: str
    plugin_timeout_s: float
    move_timeout_s: float
    control_socket: Path
    netlink_rcvbuf_mib: float
    control_group: int | None  # the gid, resolved when the file is loaded

    @property
    def netlink_rcvbuf_bytes(self) -> int:
        return int(self.netlink_rcvbuf_mib * 1024 * 1024)


@dataclass(frozen=True)
class UplinkSettings:
    reference: str | None
    carrier_grace_ms: int
    settle_ms: int


@dataclass(frozen=True)
class MetricsSettings:
    listen: tuple[str, int] | None  # (host, port)
    textfile: Path | None


@dataclass(frozen=True)
class InterfaceSpec:
    match: str
    role: str
    mip6_preference: int | None
    routing_profile: str | None
    ipv6_tunnel: bool = False
    #: The uplink interface a tunnel is bound to; None: it follows the active uplink.
    uplink: str | None = None
    #: Where the entry comes from, as a user finds it: ``interfaces[2]`` (of the file) or
    #: ``plugin 'ppp' interfaces[0]`` (declared by a plugin).
    origin: str = field(default="", compare=False)
    #: The plugin that declared the entry; None for the file's own.
    plugin: str | None = field(default=None, compare=False)

    @property
    def declared_by_plugin(self) -> bool:
        return self.plugin is not None

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.match)

    @property
    def is_tunnel(self) -> bool:
        """Whether the interface's IPv6 side is a tunnel's: its global address is reported to the
        plugins, it may have a routing profile, and mip6d treats it as "Tunnel enabled".  True for
        role ``tunnel`` and for an uplink with ``ipv6_tunnel`` (PPP carrying IPv6 over IPV6CP)."""
        return self.role == "tunnel" or self.ipv6_tunnel


@dataclass(frozen=True)
class Config:
    """A validated configuration.  ``sections`` holds each plugin's validated section."""

    path: Path
    daemon: DaemonSettings
    enable: tuple[str, ...]
    uplinks: UplinkSettings
    interfaces: tuple[InterfaceSpec, ...]
    metrics: MetricsSettings
    sections: Mapping[str, Mapping[str, Any]]
    #: Interface name -> the IPv6 prefix its tunnel's addresses come from, as the tunnel's plugin
    #: declares it (``orchestrator_address_prefixes``): miredo's ``teredo`` -> ``2001::/32``.
    address_prefixes: Mapping[str, str] = field(default_factory=dict)
    _specs: dict[str, InterfaceSpec | None] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def interface(self, name: str) -> InterfaceSpec | None:
        """The first ``[[interfaces]]`` entry matching ``name`` (the file's entries in order, then
        those plugins declare); memoised, since it is asked for every netlink event."""
        try:
            return self._specs[name]
        except KeyError:
            if len(self._specs) > 4096:  # interface names come and go (ppp*, veth*): stay bounded
                self._specs.clear()
            spec = self._specs[name] = next((s for s in self.interfaces if s.matches(name)), None)
            return spec

    def role(self, name: str) -> str | None:
        """The role of interface ``name``, None when no entry matches it."""
        spec = self.interface(name)
        return spec.role if spec else None

    def is_tunnel(self, name: str) -> bool:
        """Whether interface ``name``'s IPv6 side is a tunnel's (see ``InterfaceSpec.is_tunnel``)."""
        spec = self.interface(name)
        return spec is not None and spec.is_tunnel

    def bound_uplink(self, name: str) -> str | None:
        """The uplink interface tunnel ``name`` is bound to (None: it follows the active uplink)."""
        spec = self.interface(name)
        return spec.uplink if spec is not None else None

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})

    def with_interfaces(self, declared: Iterable[InterfaceSpec]) -> Config:
        """This configuration with ``declared`` entries after the file's own (which therefore win)."""
        return replace(self, interfaces=(*self.interfaces, *declared))


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the file; syntax errors keep tomllib's "(at line L, column C)"."""
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except FileNotFoundError:
        raise ConfigError(path, ["cannot read: no such file"]) from None
    except OSError as error:
        raise ConfigError(path, [f"cannot read: {error.strerror}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, [f"syntax error: {error}"]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(path, [f"not UTF-8 text: {error.reason}"]) from None


def load(
    path: Path,
    plugin_sections: Mapping[str, Section],
    known_plugins: set[str],
    broken_plugins: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate ``path``.

    ``plugin_sections`` are the sections discovered plugins declare (enabled or not: a section for
    an installed but disabled plugin is still checked, so enabling it later cannot surprise);
    ``known_plugins`` are the names ``plugins.enable`` may use; ``broken_plugins`` maps the names
    of installed plugins that could not be loaded to the reason, so enabling one says why.
    """
    data = read_toml(path)
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for name, section in {**CORE_SECTIONS, **plugin_sections}.items():
        values[name] = validate_section(section, data.get(name), name, problems)
    interfaces = interface_specs(data.get("interfaces", []), "interfaces", problems)
    for name in data:
        if name not in values and name != "interfaces":
            known = ", ".join(sorted([*values, "interfaces"]))
            problems.append(f"{name}: unknown section (known: {known})")
    enable = values["plugins"].get("enable", [])
    broken = broken_plugins or {}
    for index, name in enumerate(enable):
        if name in broken:
            problems.append(f"plugins.enable[{index}]: plugin {name!r} cannot be loaded: {broken[name]}")
        elif name not in known_plugins:
            installed = ", ".join(sorted(known_plugins)) or "none"
            problems.append(f"plugins.enable[{index}]: unknown plugin {name!r} (installed: {installed})")
        elif enable.index(name) != index:
            problems.append(f"plugins.enable[{index}]: {name!r} listed twice")
    if problems:
        raise ConfigError(path, problems)
    daemon, uplinks, metrics = values["daemon"], values["uplinks"], values["metrics"]
    return Config(
        path=path,
        daemon=DaemonSettings(
            log_level=daemon["log_level"],
            plugin_timeout_s=float(daemon["plugin_timeout_s"]),
            move_timeout_s=float(daemon["move_timeout_s"]),
            control_socket=Path(daemon["control_socket"]),
            netlink_rcvbuf_mib=float(daemon["netlink_rcvbuf_mib"]),
            control_group=None if "control_group" not in daemon else resolve_group(daemon["control_group"]),
        ),
        enable=tuple(enable),
        uplinks=UplinkSettings(
            reference=uplinks.get("reference"),
            carrier_grace_ms=uplinks["carrier_grace_ms"],
            settle_ms=uplinks["settle_ms"],
        ),
        interfaces=interfaces,
        metrics=MetricsSettings(
            listen=listen_address(metrics["listen"]) if "listen" in metrics else None,
            textfile=Path(metrics["textfile"]) if "textfile" in metrics else None,
        ),
        sections={name: values[name] for name in plugin_sections},
    )


def interface_specs(
    entries: Any, path: str, problems: list[str], plugin: str | None = None
) -> tuple[InterfaceSpec, ...]:
    """Validate ``[[interfaces]]`` entries (the file's, or those ``plugin`` declares, at ``path``)."""
    if not isinstance(entries, list):
        problems.append(f"{path}: expected an array of tables ([[interfaces]])")
        return ()
    specs: list[InterfaceSpec] = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        before = len(problems)
        value = validate(INTERFACE, dict(entry) if isinstance(entry, Mapping) else entry, where, problems)
        if len(problems) != before:
            continue
        spec = InterfaceSpec(
            match=value["match"],
            role=value["role"],
            mip6_preference=value.get("mip6_preference"),
            routing_profile=value.get("routing_profile"),
            ipv6_tunnel=value["ipv6_tunnel"],
            uplink=value.get("uplink"),
            origin=where,
            plugin=plugin,
        )
        if spec.ipv6_tunnel and spec.role != "uplink":
            problems.append(f"{where}.ipv6_tunnel: only an interface with role 'uplink' has one")
        elif spec.routing_profile and not spec.is_tunnel:
            problems.append(
                f"{where}.routing_profile: only a tunnel (role tunnel, or an uplink with ipv6_tunnel) has one"
            )
        elif spec.uplink is not None and spec.role != "tunnel":
            problems.append(f"{where}.uplink: only an interface with role 'tunnel' is bound to an uplink")
        specs.append(spec)
    for origin, uplink in ((spec.origin, spec.uplink) for spec in specs if spec.uplink is not None):
        bound_to = next((s for s in specs if s.matches(uplink)), None)  # the first match, as ``interface``
        if bound_to is None or bound_to.role != "uplink":
            problems.append(f"{origin}.uplink: {uplink!r} is not an interface with role 'uplink' in {path}")
    return tuple(specs)
