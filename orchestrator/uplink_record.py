"""The uplink the daemon last reported, kept in its runtime directory for the next run.

Why: a daemon restarted after a crash, an OOM kill or ``systemctl restart`` finds miredo's Teredo
address from the network it last saw still on the tunnel; if the node moved meanwhile that address
is dead, and only the previous run knows which network it belonged to.  The record sits beside the
control socket (the unit keeps ``/run/orchestrator`` across restarts and removes it on a final
stop, so after a reboot or a stop the kernel's address creation times decide instead).

The file is replaced atomically.  It is ignored, with one log line, when it is unreadable, not ours
(owned by another user than root or this one) or writable by group or others: a file someone else
could write must never make the daemon kick miredo.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .events import Uplink

log = logging.getLogger(__name__)

RECORD_NAME = "uplink.json"
FORMAT = 1


def record_path(control_socket: Path) -> Path:
    """Where the record lives: beside the control socket, in the runtime directory."""
    return control_socket.parent / RECORD_NAME


def read(path: Path) -> Uplink | None:
    """The recorded uplink; None when there is none or the record cannot be trusted."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("ignoring %s: %s", path, error.strerror)
        return None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid not in (0, os.geteuid()) or info.st_mode & 0o022:
            log.warning("ignoring %s: not root's, or writable by others", path)
            return None
        try:
            data = json.loads(handle.read(65536))
            return _uplink(data["uplink"]) if data.get("format") == FORMAT else None
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
    return Uplink(interface, address, gateway, lladdr)


def write(path: Path, uplink: Uplink | None) -> None:
    """Replace the record; a failure is logged, never raised (the record only helps a restart)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    text = json.dumps({"format": FORMAT, "uplink": uplink.to_json() if uplink else None})
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot record the uplink in %s: %s", path, error.strerror)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
