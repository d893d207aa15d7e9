"""Test configurations written as TOML files, the way a user writes them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from orchestrator import config, plugins

INTERFACES = """\
[[interfaces]]
match = "eth*"
role = "uplink"
mip6_preference = 1

[[interfaces]]
match = "teredo"
role = "tunnel"
mip6_preference = 3
{tunnel}

[[interfaces]]
match = "lan*"
role = "lan"
"""

# Two uplinks, each with a Teredo tunnel bound to it (the hot standby): ``{tunnel}`` is the main
# tunnel's profile line, ``teredo2`` has a profile of its own (``STANDBY_PROFILE``).
STANDBY_INTERFACES = """\
[[interfaces]]
match = "eth0"
role = "uplink"
mip6_preference = 1

[[interfaces]]
match = "wlan0"
role = "uplink"
mip6_preference = 2

[[interfaces]]
match = "teredo"
role = "tunnel"
mip6_preference = 3
uplink = "eth0"
{tunnel}

[[interfaces]]
match = "teredo2"
role = "tunnel"
mip6_preference = 4
uplink = "wlan0"
routing_profile = "teredo2"

[[interfaces]]
match = "lan*"
role = "lan"
"""
# For recorded-netlink tests: eth* uplinks, teredo bound to eth0, teredo2 to eth1, teredo3 unbound.
BOUND_INTERFACES = """\
[[interfaces]]
match = "eth*"
role = "uplink"

[[interfaces]]
match = "teredo"
role = "tunnel"
uplink = "eth0"

[[interfaces]]
match = "teredo2"
role = "tunnel"
uplink = "eth1"

[[interfaces]]
match = "teredo3"
role = "tunnel"
"""
# The metric of a profile's IPv6 default route by default (the routing plugin's): the main tunnel's.
DEFAULT_PROFILE_METRIC = 1029
# The standby tunnel's profile: the main one's defaults, its own metric, and its own table with a
# "from ADDRESS" rule, so that what leaves from its address leaves by it (the main tunnel's
# default route has the better metric).
STANDBY_PROFILE_METRIC = 1030
STANDBY_PROFILE_TABLE = 102
STANDBY_PROFILE = (f"[routing.profiles.teredo2]\nmetric = {STANDBY_PROFILE_METRIC}\n"
                   f"table = {STANDBY_PROFILE_TABLE}\nsource_rule = true\n")

BASE = """\
[daemon]
{control}{daemon}
[plugins]
enable = {enable}

[uplinks]
carrier_grace_ms = {grace}
settle_ms = {settle}
{uplinks}
{interfaces}"""


def write(directory: Path, *, enable: list[str] | None = None, grace: int = 2000, settle: int = 300,
          daemon: str = "", uplinks: str = "", extra: str = "", tunnel_profile: str | None = None,
          name: str = "orchestrator.toml", interfaces: str = INTERFACES, shipped_paths: bool = False) -> Path:
    """``interfaces``: the ``[[interfaces]]`` policy, with ``{tunnel}`` where the tunnel's
    ``routing_profile`` line goes (default: eth* uplinks, the teredo tunnel, lan* LANs).  The control
    socket is ``directory/control.sock``, or with ``shipped_paths`` the default (the installed
    service's)."""
    path = directory / name
    path.write_text(
        BASE.format(
            control="" if shipped_paths else f'control_socket = "{directory / "control.sock"}"\n',
            enable=repr(enable or []).replace("'", '"'),
            grace=grace,
            settle=settle,
            daemon=daemon,
            uplinks=uplinks,
            interfaces=interfaces.format(
                tunnel=f'routing_profile = "{tunnel_profile}"' if tunnel_profile else ""
            ),
        )
        + extra
    )
    return path


def write_teredo(directory: Path, pidfile: Path | str, server: str, *, grace: int = 2000,
                 enable: tuple[str, ...] = ("routing", "teredo"), extra: str = "",
                 interfaces: str = INTERFACES, daemon: str = "", shipped_paths: bool = False) -> Path:
    """Plugins routing + teredo for a lab node: the user's routing profile (the defaults: address
    /128, default route metric 1029, MTU 1400, no rules) and ``[teredo]`` naming the lab's miredo pid
    file and server.  The same file feeds the client hook and the daemon.  ``daemon``: lines of
    ``[daemon]``; ``shipped_paths``: see :func:`write`."""
    teredo = f'[teredo]\npidfile = "{pidfile}"\nserver = "{server}"\n'
    return write(directory, enable=list(enable), grace=grace, tunnel_profile="teredo", daemon=daemon,
                 extra="[routing.profiles.teredo]\n" + teredo + extra, interfaces=interfaces,
                 shipped_paths=shipped_paths)


def load(path: Path) -> config.Config:
    infos = plugins.discover()
    return config.load(path, plugins.sections(infos), {i.name for i in infos if i.loaded})


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`orchestrator check-config --config PATH`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "check-config", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=env,
    )


def exec_entry(command: list[str | Path], events: list[str], **keys: Any) -> str:
    """One ``[[exec]]`` table of the exec plugin, as a user writes it."""
    lines = ["[[exec]]", f"events = {events!r}".replace("'", '"'),
             "command = [" + ", ".join(f'"{part}"' for part in command) + "]"]
    lines += [f"{key} = {value!r}".replace("'", '"').replace("True", "true") for key, value in keys.items()]
    return "\n".join(lines) + "\n\n"


def standby_entry(interface: str, pidfile: Path | str, config: Path | str, **keys: int) -> str:
    """One ``[[teredo.standby]]`` table, as a user writes it."""
    lines = ["[[teredo.standby]]", f'interface = "{interface}"', f'pidfile = "{pidfile}"',
             f'config = "{config}"']
    return "\n".join([*lines, *(f"{key} = {value}" for key, value in keys.items())]) + "\n\n"


def shell_script(directory: Path, name: str, body: str) -> Path:
    """An executable ``/bin/sh`` script ``directory/name`` running ``body`` (dedented)."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def metrics_section(listen: str, textfile: Path | str | None = None) -> str:
    """The ``[metrics]`` table: the listener's ``host:port`` and, if given, the textfile."""
    text = f'[metrics]\nlisten = "{listen}"\n'
    return text + (f'textfile = "{textfile}"\n' if textfile is not None else "")
