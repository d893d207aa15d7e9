"""The uplink the daemon last reported, kept in its runtime directory for the next run.

Why: a daemon restarted after a crash, an OOM kill or ``systemctl restart`` finds miredo's Teredo
address from the network it last saw still on the tunnel; if the node moved meanwhile that address
is dead, and only the previous run knows which network it belonged to.  The record sits beside the
control socket (the unit keeps ``/run/orchestrator`` across restarts and removes it on a final
stop, so after a reboot or a stop the kernel's address creation times decide instead).

The file is replaced atomically.  It is ignored, with one log line, when it is not a regular file,
unreadable, not ours (owned by another user than root or this one), writable by group or others, in
a directory someone else could write, or not a valid record: a file someone else could write must
never make the daemon kick miredo.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from .events import Uplink
from .files import replace_file

log = logging.getLogger(__name__)

RECORD_NAME = "uplink.json"
FORMAT = 1


def record_path(control_socket: Path) -> Path:
    """Where the record lives: beside the control socket, in the runtime directory."""
    return control_socket.parent / RECORD_NAME


def _trusted(info: os.stat_result) -> bool:
    """Root's (or this user's) and writable by nobody else."""
    return info.st_uid in (0, os.geteuid()) and not info.st_mode & 0o022


def read(path: Path) -> Uplink | None:
    """The recorded uplink; None when there is none or the record cannot be trusted."""
    try:
        if not _trusted(os.stat(path.parent)):
            log.warning("ignoring %s: its directory is not root's, or writable by others", path)
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("ignoring %s: %s", path, error.strerror)
        return None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or not _trusted(info):
            log.warning("ignoring %s: not a regular file that is root's and writable by no one else", path)
            return None
        text = os.read(descriptor, 65536)
    except OSError as error:
        log.warning("ignoring %s: %s", path, error.strerror)
        return None
    finally:
        os.close(descriptor)
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
        return _uplink(data["uplink"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("ignoring %s: not a record of this version (%s)", path, error)
        return None


def _uplink(fields: Any) -> Uplink | None:
    if fields is None:
        return None
    interface, address = fields["interface"], fields["address"]
    gateway, lladdr = fields["gateway"], fields["gateway_lladdr"]
    if not all(isinstance(text, str) for text in (interface, address)):
        raise TypeError("interface and address must be text")
    if not all(value is None or isinstance(value, str) for value in (gateway, lladdr)):
        raise TypeError("gateway and gateway_lladdr must be text or null")
    ipaddress.IPv4Interface(address)  # ValueError when it is none
    if gateway is not None:
        ipaddress.IPv4Address(gateway)
    return Uplink(interface, address, gateway, lladdr)


def write(path: Path, uplink: Uplink | None) -> None:
    """Replace the record; a failure is logged, never raised (the record only helps a restart)."""
    text = json.dumps({"format": FORMAT, "uplink": uplink.to_json() if uplink else None})
    try:
        replace_file(path, text.encode(), 0o644)
    except OSError as error:
        log.warning("cannot record the uplink in %s: %s", path, error.strerror)
