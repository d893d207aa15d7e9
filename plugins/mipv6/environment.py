"""Whether this node can run Mobile IPv6 at all, said before anyone waits for a handover.

Without Mobile IPv6 in the kernel the failure surfaces far from its cause: mip6d's route
optimisation states are refused ("Requested type not found", as ``ip xfrm state add … proto route2``
answers on such a kernel) and a Binding Ack's type 2 routing header is dropped with an ICMPv6
parameter problem.  The kernel's build configuration says it at once and plainly.

Every path is taken under ``root`` so tests can lay out a fake system.
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

# Options mip6d cannot do without, each with its module name and why it matters.
REQUIRED = (
    (
        "CONFIG_IPV6_MIP6",
        "mip6",
        "no Mobile IPv6 in the kernel (Home Address option, type 2 routing header): mip6d cannot work",
    ),
    (
        "CONFIG_IPV6_TUNNEL",
        "ip6_tunnel",
        "no IPv6-in-IPv6 tunnel (ip6tnl): mip6d carries the home address's traffic to the home agent in one",
    ),
)
_SETTING = re.compile(r"^(CONFIG_\w+)=(.*)$|^# (CONFIG_\w+) is not set$", re.MULTILINE)


def kernel_problems(release: str | None = None, *, root: Path = Path("/")) -> list[str]:
    """One line per kernel option that keeps Mobile IPv6 from working; [] when all are there.

    The configuration comes from /proc/config.gz, else /boot/config-RELEASE (RELEASE defaults to
    the running kernel's).  A module (``=m``) is a problem only when it is neither loaded nor
    installed under /lib/modules/RELEASE: the kernel loads an installed one on first use.
    """
    release = release or os.uname().release
    found = _kernel_config(root, release)
    if found is None:
        return [
            "kernel: cannot check for Mobile IPv6: no /proc/config.gz and no "
            f"/boot/config-{release} (modprobe configs, or install the kernel's config file)"
        ]
    source, settings = found
    problems = []
    for option, module, meaning in REQUIRED:
        value = settings.get(option)
        if value == "m" and not _module_available(root, release, module):
            problems.append(
                f"kernel: {option}=m ({source}) but module {module} is neither loaded nor installed "
                f"under /lib/modules/{release}: {meaning}"
            )
        elif value not in ("y", "m"):
            state = "is not set" if value is None else f"is {value!r}"
            problems.append(f"kernel: {option} {state} ({source}): {meaning}")
    return problems


def mip6d_pid(*, root: Path = Path("/")) -> int | None:
    """The lowest process id whose command is ``mip6d``, or None when none runs."""
    pids = []
    for entry in (root / "proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:  # the process ended while we looked
            continue
        if comm == "mip6d":
            pids.append(int(entry.name))
    return min(pids, default=None)


def _kernel_config(root: Path, release: str) -> tuple[str, dict[str, str | None]] | None:
    """(where it came from, option → value; None for "is not set"), or None if there is none."""
    proc = root / "proc/config.gz"
    boot = root / f"boot/config-{release}"
    try:
        text = gzip.decompress(proc.read_bytes()).decode(errors="replace")
        source = "/proc/config.gz"
    except (OSError, EOFError):  # absent, or not gzip (gzip.BadGzipFile is an OSError)
        try:
            text = boot.read_text(errors="replace")
        except OSError:
            return None
        source = f"/boot/config-{release}"
    settings: dict[str, str | None] = {}
    for match in _SETTING.finditer(text):
        if match.group(1):
            settings[match.group(1)] = match.group(2).strip('"')
        else:
            settings[match.group(3)] = None
    return source, settings


def _module_available(root: Path, release: str, module: str) -> bool:
    """Loaded (/sys/module/NAME) or installed where the kernel build puts it (any compression)."""
    if (root / "sys/module" / module).is_dir():
        return True
    return any((root / f"lib/modules/{release}/kernel/net/ipv6").glob(f"{module}.ko*"))
