"""What makes a ``[teredo]`` section unusable, each problem naming its key (``check-config`` exit 2).

A standby instance is only useful bound to an uplink of its own, with a file the daemon can rewrite,
and alone on its pid file, file, table and rule priority: two instances sharing one of them would
signal, rewrite or route for each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator import Config

from . import miredo_conf

DAEMON_OWNER = (0, 0)  # root:root: the shipped unit runs the daemon as root
STANDBY_DIRECTORY = Path("/etc/miredo/standby")  # ReadWritePaths= of etc/systemd/orchestrator.service
FIRST_TABLE = FIRST_PRIORITY = 1000  # a standby's defaults: 1000 for the first entry, 1001 for the next...


def standby_table(position: int, entry: Mapping[str, Any]) -> int:
    return int(entry.get("table", FIRST_TABLE + position))


def standby_priority(position: int, entry: Mapping[str, Any]) -> int:
    return int(entry.get("priority", FIRST_PRIORITY + position))


def problems(config: Config) -> list[str]:
    section = config.section("teredo")
    main = section["interface"]
    if config.role(main) != "tunnel":
        return [f"teredo.interface: {main!r} needs an [[interfaces]] entry with role 'tunnel'"]
    found: list[str] = []
    owners: dict[tuple[str, object], str] = {("interface", main): "teredo.interface"}
    owners[("pidfile", _path(section["pidfile"]))] = "teredo.pidfile"
    profiles = {_profile(config, main): main}
    for position, entry in enumerate(section.get("standby", [])):
        where, name = f"teredo.standby[{position}]", entry["interface"]
        found += _tunnel_problems(config, where, name, main)
        claims = (
            ("interface", name),
            ("pidfile", _path(entry["pidfile"])),
            ("config", _path(entry["config"])),
            ("table", standby_table(position, entry)),
            ("priority", standby_priority(position, entry)),
        )
        for key, value in claims:
            owner = owners.setdefault((key, value), f"{where}.{key}")
            if owner != f"{where}.{key}":
                found.append(f"{where}.{key}: {value} is {owner}'s already")
        profile = _profile(config, name)
        sharing = profiles.setdefault(profile, name)
        if profile is not None and sharing != name:
            found.append(
                f"{where}.interface: {name!r} uses routing profile {profile!r} as {sharing!r} does: two "
                "tunnels up at once need profiles of their own (a metric and a table each)"
            )
        found += _file_problems(f"{where}.config", Path(entry["config"]), name)
    return found


def _profile(config: Config, tunnel: str) -> str | None:
    spec = config.interface(tunnel)
    return spec.routing_profile if spec is not None else None


def _tunnel_problems(config: Config, where: str, name: str, main: str) -> list[str]:
    if name == main:
        return []  # said once, as a shared interface
    if config.role(name) != "tunnel":
        return [f"{where}.interface: {name!r} needs an [[interfaces]] entry with role 'tunnel'"]
    if config.bound_uplink(name) is None:
        return [
            f"{where}.interface: {name!r} is bound to no uplink: set uplink = \"<interface>\" in its "
            "[[interfaces]] entry"
        ]
    return []


def _file_problems(where: str, path: Path, interface: str) -> list[str]:
    """The file must exist, name ``interface`` (miredo's InterfaceName) and be replaceable in place:
    writable, in a writable directory, and root's, the daemon's identity (keeping another owner on
    the new file would need CAP_CHOWN, which the shipped unit withholds).  Compared with root, not
    with whoever checks: the full client hook validates this file too, as miredo's privileged
    helper, whose group is not root's."""
    try:
        text = path.read_text(errors="replace")
        status = path.stat()
    except OSError as error:
        return [f"{where}: cannot read {path}: {error.strerror}"]
    named = miredo_conf.directive(text, "InterfaceName") or miredo_conf.DEFAULT_INTERFACE
    found = []
    if named != interface:
        found.append(f"{where}: {path} sets InterfaceName {named}, not {interface}")
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        found.append(f"{where}: {path} cannot be rewritten here (the daemon keeps its BindAddress)")
    elif (status.st_uid, status.st_gid) != DAEMON_OWNER:
        found.append(
            f"{where}: {path} belongs to {status.st_uid}:{status.st_gid}, not to root:root: the daemon "
            "replaces the file and cannot keep another owner (no CAP_CHOWN under the shipped unit)"
        )
    return found


def warnings(config: Config) -> list[str]:
    """A standby's file outside the one directory the shipped unit lets the daemon write."""
    return [
        f"teredo.standby[{position}].config: {entry['config']} is outside {STANDBY_DIRECTORY}, the one "
        f"directory the shipped unit may write: add ReadWritePaths={Path(entry['config']).parent} "
        "in a drop-in"
        for position, entry in enumerate(config.section("teredo").get("standby", []))
        if Path(_path(entry["config"])).parent != STANDBY_DIRECTORY
    ]


def _path(text: str) -> str:
    return os.path.normpath(os.path.abspath(text))
