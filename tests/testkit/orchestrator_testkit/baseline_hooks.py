"""miredo client hooks that are not the project's: the baselines its Teredo figures are judged by.

Why: a figure for the daemon means little alone.  ``bench/teredo_move.py`` runs the same moves
with miredo running one of these hooks instead of the project's, so the reader sees what the
least possible hook costs, and what the user's hook before this project cost, on the same lab in
the same run.

Each function writes an executable ``/bin/sh`` script into ``directory`` (root-owned, mode 0755,
as :meth:`teredo_lab.TeredoLab.start_miredo` requires of a hook) and returns its path.  miredo
runs its hook with an empty environment apart from its own variables (``STATE``, ``IFACE``,
``ADDRESS``, ``LLADDRESS``, ``OLD_ADDRESS``, ...), with no ``PATH`` and in ``/``: every command
is named by its absolute path.

API: ``minimal_hook(directory, ip=IP) -> Path``, ``seed_hook(directory, ip=IP) -> Path``; ``IP``
(iproute2's path; a test passes a recording stand-in)
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

#: iproute2, by the absolute path Debian's own hook uses (miredo gives the hook no PATH).
IP = "/sbin/ip"

_MINIMAL = """\
#!/bin/sh
# Benchmark baseline (floor): the least a miredo client hook can do for a routed Teredo address.
case "$STATE" in
up)
    {ip} link set dev "$IFACE" up
    {ip} -6 address add "$ADDRESS/128" dev "$IFACE"
    exec {ip} -6 route add default dev "$IFACE"
    ;;
esac
exit 0
"""

# The order of the seed document's hook, one line per ``ip`` run; the failures it ignores are
# ignored here too (no ``set -e``, the same stderr redirections).
_SEED = """\
#!/bin/sh
# Benchmark baseline: the ip operations of the user's hook before netlink-orchestrator, in order.
ip={ip}
table=teredo
if test -n "$OLD_ADDRESS"; then
    $ip -6 rule del from "$OLD_ADDRESS" prio 32765 table $table 2>/dev/null
fi
$ip -6 route flush table $table 2>/dev/null
$ip -6 route flush dev "$IFACE" 2>/dev/null
$ip -6 address flush dev "$IFACE" 2>/dev/null
$ip -6 link set dev "$IFACE" "$STATE"
if test "$STATE" = up; then
    $ip -6 route add default dev "$IFACE" metric 1029
    $ip -6 address add "$LLADDRESS/64" dev "$IFACE"
    $ip -6 address add "$ADDRESS/128" dev "$IFACE"
    $ip link set dev "$IFACE" up mtu 1400
fi
$ip -6 route flush cache 2>/dev/null
exit 0
"""


def _write(directory: Path, name: str, text: str) -> Path:
    """``directory/name`` holding ``text``, root-owned and 0755: miredo's privproc runs it as
    root, and the lab refuses a hook that someone else could change."""
    path = directory / name
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(0o755)
    return path


def minimal_hook(directory: Path, ip: str = IP) -> Path:
    """The floor: on ``up`` the link up, the new address as /128 and an IPv6 default route through
    the tunnel (three ``ip`` runs), nothing else, and nothing at all on ``down`` or ``destroy``.

    Why: it is the least a hook must do for a node to have a *routed* Teredo address (what
    ``teredo_watch.TeredoWatch`` waits for: a new global address on ``teredo`` and an IPv6
    default route through it), so the time of a move with it is the floor any hook can reach.
    The link must be set up by the hook: miredo creates the tun down, and the kernel refuses a
    route through a link that is down ("Nexthop device is not up"; measured).
    Nothing on ``down`` / ``destroy``: miredo deletes the interface after them anyway on a
    SIGHUP, and every millisecond they take comes before miredo starts to qualify again."""
    return _write(directory, "minimal-client-hook", _MINIMAL.format(ip=shlex.quote(ip)))


def seed_hook(directory: Path, ip: str = IP) -> Path:
    """The user's hook before this project (the seed document's, written for UMIP): the same
    ``ip`` operations in the same order, each its own exec.

    On every state: delete the ``from OLD_ADDRESS`` rule (prio 32765, table ``teredo``) when there
    is an old address, flush table ``teredo``, flush the interface's IPv6 routes and addresses,
    ``link set`` the state (which fails for ``destroy``: in effect ``destroy`` only flushes); on
    ``up``: a default route metric 1029, the link-local address /64, the address /128, the link up
    with MTU 1400; last, a route cache flush.  Where table ``teredo`` is not named in
    /etc/iproute2/rt_tables (as on a default Debian host) its two commands fail at once, as the
    seed's do there.

    Why: "daemon below the user's own hook" is the issue's goal; this is that hook's cost, measured
    beside the daemon in the same run."""
    return _write(directory, "seed-client-hook", _SEED.format(ip=shlex.quote(ip)))


__all__ = ["IP", "minimal_hook", "seed_hook"]
