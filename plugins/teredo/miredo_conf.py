"""What miredo's own configuration says, and the one line of it the daemon writes.

miredo resolves ``ServerAddress`` in its worker on every (re)start, so on a node that has just moved
a host name costs a DNS lookup over a network that may not work yet, and a failed lookup costs a
100 s wait: the chicken-and-egg the daemon exists to remove.  The server's IPv4 literal avoids it.

A standby instance's ``BindAddress`` is the daemon's to keep: miredo re-reads its file on the SIGHUP
that re-qualifies it, so the address its uplink has now must be in the file before that signal.
Only that line is written; the rest of the file is the user's.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from orchestrator import replace_file

DEFAULT_PATH = Path("/etc/miredo/miredo.conf")
DEFAULT_INTERFACE = "teredo"  # miredo's InterfaceName when the file sets none
_VALUE = re.compile(r"\s*\S+\s+(\S+)")  # a directive's first argument


def directive(text: str, name: str) -> str | None:
    """The value of directive ``name`` (case-insensitive, as miredo reads it; the first occurrence
    counts), or None."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0].lower() == name.lower():
            return words[1]
    return None


def server_address(path: Path) -> str | None:
    """The ``ServerAddress`` value, or None."""
    return directive(path.read_text(errors="replace"), "ServerAddress")


def with_bind_address(text: str, address: str) -> str:
    """``text`` with ``BindAddress address``: the value of the first BindAddress line replaced (the
    line miredo uses; its spelling, indentation, comment and line ending kept), or the directive
    appended when there is none; every other line as it was."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        words = line.split("#", 1)[0].split()
        if not words or words[0].lower() != "bindaddress":
            continue
        value = _VALUE.match(line) if len(words) > 1 else None
        if value is not None:
            lines[index] = line[: value.start(1)] + address + line[value.end(1) :]
        else:  # a directive without a value: miredo would refuse the file
            ending = line[len(line.rstrip("\r\n")) :]
            lines[index] = f"BindAddress {address}{ending}"
        return "".join(lines)
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}BindAddress {address}\n"


def write_bind_address(path: Path, address: str) -> bool:
    """Keep ``BindAddress address`` in the file at ``path``; returns whether the file changed.

    Written atomically (a temporary file in the same directory, renamed over the file) with the
    file's mode and owner, so a miredo reloading at that moment reads the old file or the new one,
    never half of one.  A file owned by another user or group than the daemon's cannot keep its
    owner under the shipped unit (no CAP_CHOWN): ``PermissionError``, reported, the file untouched."""
    text = path.read_text()
    wanted = with_bind_address(text, address)
    if wanted == text:
        return False
    status = path.stat()
    replace_file(path, wanted.encode(), status.st_mode & 0o7777, (status.st_uid, status.st_gid))
    return True


def warnings(path: Path, configured: str | None) -> list[str]:
    """Lines for ``check-config``: a server named by host name, or one that differs from ours."""
    try:
        server = server_address(path)
    except OSError as error:
        return [f"teredo: cannot read miredo's configuration {path}: {error.strerror}"]
    if server is None:
        return []
    try:
        literal = str(ipaddress.IPv4Address(server))
    except ValueError:
        return [
            f"teredo: {path} names the Teredo server by host name ({server}); miredo resolves it on "
            "every restart and a failed lookup after a move costs 100 s: use its IPv4 address there "
            "and in teredo.server"
        ]
    if configured is None:
        return [
            f"teredo.server: not set, while {path} uses {literal}; set it so that the uplink is "
            "judged by the route towards the server"
        ]
    if configured != literal:
        return [f"teredo.server: {configured} differs from {literal}, the server {path} uses"]
    return []
