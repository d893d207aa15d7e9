"""What miredo's own configuration says about the Teredo server, and why it matters here.

miredo resolves ``ServerAddress`` in its worker on every (re)start, so on a node that has just moved
a host name costs a DNS lookup over a network that may not work yet, and a failed lookup costs a
100 s wait: the chicken-and-egg the daemon exists to remove.  The server's IPv4 literal avoids it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

DEFAULT_PATH = Path("/etc/miredo/miredo.conf")


def server_address(path: Path) -> str | None:
    """The ``ServerAddress`` value (miredo uses a directive's first occurrence), or None."""
    for line in path.read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0].lower() == "serveraddress":
            return words[1]
    return None


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
