"""A routing profile: the validated ``[routing.profiles.<name>]`` section as a value.

Light imports only (see the package docstring).  Table names resolve through iproute2's rt_tables
files, the same ones ``ip route ... table NAME`` reads, so a name means what it means to ``ip``.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False  # typing costs start-up time in the client hook; mypy reads this as true
if TYPE_CHECKING:
    from typing import Any

RT_TABLES_FILES = ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables")
RT_TABLES_DIRS = ("/etc/iproute2/rt_tables.d", "/usr/share/iproute2/rt_tables.d")


class Profile:
    """What the tunnel interface should look like; see etc/orchestrator.toml for each field."""

    __slots__ = (
        "address_prefixlen",
        "follow_address",
        "gateway",
        "metric",
        "mtu",
        "name",
        "rule_priority",
        "source_rule",
        "table",
    )

    def __init__(
        self,
        name: str,
        table: int | None,
        rule_priority: int,
        metric: int,
        mtu: int | str,
        address_prefixlen: int,
        source_rule: bool,
        gateway: str | None = None,
        follow_address: bool = False,
    ) -> None:
        self.name = name
        self.table = table
        self.rule_priority = rule_priority
        self.metric = metric
        self.mtu = mtu
        self.address_prefixlen = address_prefixlen
        self.source_rule = source_rule
        self.gateway = gateway  # the default routes' next hop (on-link), e.g. 6to4's ::192.88.99.1
        # applied by the daemon when the tunnel's address changes, to routes, rules and MTU only
        self.follow_address = follow_address

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Profile({fields})"

    def to_plain(self) -> tuple[Any, ...]:
        """A marshal-able form, for the client hook's cache."""
        return tuple(getattr(self, name) for name in self.__slots__)

    @classmethod
    def from_plain(cls, plain: tuple[Any, ...]) -> Profile:
        return cls(**dict(zip(cls.__slots__, plain, strict=True)))


def rt_tables(
    files: tuple[str, ...] = RT_TABLES_FILES, dirs: tuple[str, ...] = RT_TABLES_DIRS
) -> dict[str, int]:
    """Table names as iproute2 knows them: the first of ``files`` that exists (/etc before
    /usr/share), then every ``*.conf`` of ``dirs``; ``NUMBER NAME`` lines, numbers in any base."""
    import os

    paths = [path for path in files if os.path.exists(path)][:1]
    for directory in reversed(dirs):
        if os.path.isdir(directory):
            paths += sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".conf"))
    names: dict[str, int] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                try:
                    names[fields[1]] = int(fields[0], 0)
                except ValueError:
                    continue
    return names


def resolve_table(value: int | str | None, names: dict[str, int] | None = None) -> int | None:
    """A table number; a name is looked up in rt_tables (KeyError when unknown)."""
    if value is None or isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    return (names if names is not None else rt_tables())[value]


def canonical_ipv6(text: str) -> str:
    """The kernel's spelling of an IPv6 literal (``::c058:6301`` is ``::192.88.99.1``), so that a
    profile's value compares equal to what a route dump reports (OSError when it is none)."""
    return _socket.inet_ntop(_socket.AF_INET6, _socket.inet_pton(_socket.AF_INET6, text))


def is_link_local(raw: bytes) -> bool:
    """Whether the packed IPv6 address ``raw`` is in fe80::/10."""
    return raw[0] == 0xFE and raw[1] & 0xC0 == 0x80


def tunnel_mtu(text: str) -> int | None:
    """``text`` as an MTU a tunnel may have (ASCII digits, 1280 to 65535); None when it is not one."""
    return int(text) if text.isascii() and text.isdigit() and 1280 <= int(text) <= 65535 else None


def from_section(name: str, section: dict[str, Any], names: dict[str, int] | None = None) -> Profile:
    """A Profile from a validated section (defaults already filled in by the schema)."""
    return Profile(
        name=name,
        table=resolve_table(section.get("table"), names),
        rule_priority=int(section["rule_priority"]),
        metric=int(section["metric"]),
        mtu=section["mtu"],
        address_prefixlen=int(section["address_prefixlen"]),
        source_rule=bool(section["source_rule"]),
        gateway=canonical_ipv6(section["gateway"]) if section.get("gateway") else None,
        follow_address=bool(section.get("follow_address", False)),
    )
