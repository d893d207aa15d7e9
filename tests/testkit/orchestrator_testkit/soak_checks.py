"""The soak's invariants: what must hold in the hot-standby lab once a fault has healed.

Why separate small functions: a violation names the one invariant that failed, with details that
say what the kernel, the daemon or the stand-ins showed, so a replayed step can be read without the
rest of the run.  Each check takes the :class:`Facts` of one poll and the :class:`Baseline` taken
just before the fault and returns None when it holds, else a one-line description of what is
wrong.  The checks only read (the kernel through ``ip -j``, the daemon through ``status``, the
stand-ins' logs, /proc); they are polled until they all hold or the fault's heal deadline passes
(:mod:`soak`).  A fact several checks read (the daemon's status, an uplink's completeness, the
miredo logs, the mobile node's log) is taken once per poll, so all of them judge the same moment.

API
---
``RSS_LIMIT_MIB`` (45); ``TUNNELS`` (each tunnel with its uplink and its profile's metric)
``Baseline(reloads, quiet)``; ``baseline(rig, quiet) -> Baseline``; ``reloads(rig) -> dict[str, int]``
``uplink_complete(lab, iface) -> bool``; ``daemon_rss_mib(rig) -> float``
``Facts(rig)`` (what one poll read); ``CHECKS: dict[str, Check]`` (name -> function),
``failing(rig, base) -> dict[str, str]``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from orchestrator.workers import STUCK_THREADS_PER_PLUGIN

from .configs import DEFAULT_PROFILE_METRIC, STANDBY_PROFILE_METRIC, STANDBY_PROFILE_TABLE
from .mip6_standins import coa_in
from .netns import alive, descendants, lab_namespaces, rss_mib
from .standby_lab import STANDBY_NAT, STANDBY_TUNNEL_IF, STANDBY_UPLINK_IF, StandbyLab
from .standby_rig import StandbyRig
from .teredo_lab import NATS, TEREDO_IF, teredo_client_ipv4
from .teredo_rig import miredo_reloads

RSS_LIMIT_MIB = 45.0
RSS_GROWTH_LIMIT_MIB = 5.0  # between the first fault and the last (the bound)


@dataclass(frozen=True)
class TunnelSpec:
    """A Teredo tunnel of the lab, the uplink it is bound to, and its routing profile's metric
    (configs.STANDBY_INTERFACES / STANDBY_PROFILE: teredo's default profile, teredo2's own metric and
    table)."""

    name: str
    uplink: str
    metric: int
    table: int | None = None  # with a "from ADDRESS lookup TABLE" rule per address


TUNNELS = (TunnelSpec(TEREDO_IF, "eth0", DEFAULT_PROFILE_METRIC),
           TunnelSpec(STANDBY_TUNNEL_IF, STANDBY_UPLINK_IF, STANDBY_PROFILE_METRIC, STANDBY_PROFILE_TABLE))


@dataclass(frozen=True)
class Baseline:
    """Taken just before a fault: SIGHUPs each tunnel's miredo had got, and the tunnels whose
    miredo must get none for this fault (renewals, the other uplink's blips, ...)."""

    reloads: dict[str, int]
    quiet: frozenset[str]
    kicks: int | None = None  # exactly this many for each tunnel not quiet (None: not judged)


def reloads(rig: StandbyRig) -> dict[str, int]:
    """SIGHUPs so far per tunnel, counted in each miredo's log (appended across its restarts)."""
    return {t.name: miredo_reloads(rig.lab, t.name) for t in TUNNELS}


def baseline(rig: StandbyRig, quiet: frozenset[str], kicks: int | None = None) -> Baseline:
    return Baseline(reloads(rig), quiet, kicks)


# -- what the kernel says ---------------------------------------------------------------------------
def uplink_complete(lab: StandbyLab, iface: str) -> bool:
    """Carrier, a global IPv4 address and an IPv4 default route through ``iface`` in the main table:
    the daemon's own definition (DESIGN "Several uplinks": the kernel keeps routes through a link
    without carrier, so the route alone says nothing)."""
    if not lab.node.has_carrier(iface) or not lab.node.addresses(iface):
        return False
    return bool(lab.node.ip_json("-4", "route", "show", "default", "dev", iface))


def expected_nat(lab: StandbyLab, tunnel: TunnelSpec) -> str:
    """The outside address of the NAT the tunnel's uplink sits behind now."""
    if tunnel.uplink == STANDBY_UPLINK_IF:
        return STANDBY_NAT.wan
    return NATS[str(lab.attached)].wan


PROFILE_MTU, PROFILE_PREFIXLEN = 1400, 128  # both tunnels' profiles: the defaults


def profile_differences(lab: StandbyLab, tunnel: TunnelSpec) -> str | None:
    """What the kernel holds that the tunnel's profile would not: its IPv6 default route at the
    profile's metric, its MTU, and every global address at the profile's prefix length."""
    routes = lab.node.ip_json("-6", "route", "show", "default", "dev", tunnel.name)
    if not any(r.get("metric") == tunnel.metric for r in routes):
        return f"{tunnel.name} has no IPv6 default route at metric {tunnel.metric}"
    (link,) = lab.node.ip_json("-6", "addr", "show", "dev", tunnel.name)
    if link.get("mtu") != PROFILE_MTU:
        return f"{tunnel.name}'s MTU is {link.get('mtu')}, its profile's {PROFILE_MTU}"
    addresses = [a for a in link.get("addr_info", []) if a.get("scope") == "global"]
    lengths = {a["prefixlen"] for a in addresses}
    if lengths - {PROFILE_PREFIXLEN}:
        return f"{tunnel.name}'s global addresses are /{sorted(lengths)}, its profile's /{PROFILE_PREFIXLEN}"
    if tunnel.table is not None:
        rules = {r.get("src") for r in lab.node.ip_json("-6", "rule", "show", "table", str(tunnel.table))}
        missing = sorted({a["local"] for a in addresses} - rules)
        if missing:
            return f"no rule from {missing} lookup {tunnel.table} (the profile of {tunnel.name})"
    return None


def daemon_rss_mib(rig: StandbyRig) -> float:
    """The running daemon's resident set (``ip netns exec`` execs the daemon, so the tracked PID is
    the daemon's)."""
    return rss_mib(rig.daemon.proc.pid)


def _status(rig: StandbyRig) -> dict[str, Any] | str:
    try:
        return rig.daemon.status()
    except Exception as e:  # a dead daemon, a refused or broken answer: all are the finding
        return f"{type(e).__name__}: {e}"


T = TypeVar("T")


class Facts:
    """What the checks of one poll read, each fact taken when a check first asks for it and then
    kept (a fact that cannot be read is not kept: each check that asks for it fails on it)."""

    def __init__(self, rig: StandbyRig) -> None:
        self.rig = rig
        self._taken: dict[str, Any] = {}

    def _once(self, key: str, read: Callable[[], T]) -> T:
        if key not in self._taken:
            self._taken[key] = read()
        return cast(T, self._taken[key])

    def status(self) -> dict[str, Any] | str:
        """The daemon's ``status``, or what went wrong asking it."""
        return self._once("status", lambda: _status(self.rig))

    def complete(self, uplink: str) -> bool:
        """:func:`uplink_complete`."""
        return self._once(f"complete {uplink}", lambda: uplink_complete(self.rig.lab, uplink))

    def reloads(self) -> dict[str, int]:
        """:func:`reloads`."""
        return self._once("reloads", lambda: reloads(self.rig))

    def teredo_addresses(self, tunnel: str) -> list[str]:
        """The tunnel's Teredo addresses (``TeredoLab.teredo_addresses``)."""
        return self._once(f"addresses {tunnel}", lambda: self.rig.lab.teredo_addresses(tunnel))

    def mn_events(self) -> list[dict[str, Any]]:
        """The mobile node's log."""
        return self._once("mn events", self.rig.mn.events)


# -- the invariants ---------------------------------------------------------------------------------
def binding_acknowledged(facts: Facts, base: Baseline) -> str | None:
    """While an uplink is complete, the mobile node has a care-of address that exists on a tunnel
    now, and the last Binding Ack it got is for that address, accepted, and later than the choice of
    that address (a CoA kept through the fault keeps its earlier BA)."""
    complete = [t.uplink for t in TUNNELS if facts.complete(t.uplink)]
    if not complete:
        return None
    events = facts.mn_events()
    coa = coa_in(events)
    on_tunnels = {a for t in TUNNELS for a in facts.teredo_addresses(t.name)}
    if coa is None:
        return f"no care-of address while {complete} complete"
    if coa not in on_tunnels:
        return f"care-of address {coa} is on no tunnel (tunnels hold {sorted(on_tunnels)})"
    chosen = max(i for i, e in enumerate(events) if e["event"] == "coa-selected")
    acks = [(i, e) for i, e in enumerate(events) if e["event"] == "ba-received"]
    if not acks or acks[-1][0] < chosen:
        return f"no Binding Ack since {coa} was selected"
    last = acks[-1][1]
    if last.get("status") != 0 or last.get("coa") != coa:
        return f"last Binding Ack: status {last.get('status')} for {last.get('coa')}, CoA {coa}"
    return None


def tunnels_map_their_nat(facts: Facts, base: Baseline) -> str | None:
    """Each tunnel whose uplink is complete holds its profile's end state (default route, MTU,
    address length) with addresses that all map its own uplink's NAT; a tunnel whose uplink is not
    complete is not judged."""
    problems = []
    for tunnel in TUNNELS:
        if not facts.complete(tunnel.uplink):
            continue
        nat = expected_nat(facts.rig.lab, tunnel)
        addresses = facts.teredo_addresses(tunnel.name)
        mapped = sorted({teredo_client_ipv4(a) for a in addresses})
        if not addresses or mapped != [nat]:
            problems.append(f"{tunnel.name} maps {mapped or 'nothing'}, {tunnel.uplink} is behind {nat}")
        elif difference := profile_differences(facts.rig.lab, tunnel):
            problems.append(difference)
    return "; ".join(problems) or None


def daemon_answers(facts: Facts, base: Baseline) -> str | None:
    """The daemon answers ``status`` on its control socket."""
    status = facts.status()
    return status if isinstance(status, str) else None


def daemon_settled(facts: Facts, base: Baseline) -> str | None:
    """Every lane of the daemon is idle: what the fault caused has been handled (so a SIGHUP or an
    address change still to come is not mistaken for a healed state)."""
    status = facts.status()
    if isinstance(status, str):
        return status
    busy = [lane for lane in status["lanes"] if lane["queued"] or lane["busy_s"] is not None]
    return f"busy lanes: {busy}" if busy else None


def daemon_rss_bounded(facts: Facts, base: Baseline) -> str | None:
    """The daemon's RSS is at most RSS_LIMIT_MIB."""
    try:
        rss = daemon_rss_mib(facts.rig)
    except (OSError, ValueError) as e:
        return f"RSS unreadable: {e}"
    return f"RSS {rss:.1f} MiB > {RSS_LIMIT_MIB:g} MiB" if rss > RSS_LIMIT_MIB else None


def no_leaked_processes(facts: Facts, base: Baseline) -> str | None:
    """Every process in the lab's namespaces is one the lab tracks and still runs, or a descendant
    of one (miredo's workers and privproc, dhclient-script, the daemon's own children).  A killed
    daemon's orphan or a stopped miredo's worker is a leak.  A process that ends while it is looked
    at is not."""
    lab = facts.rig.lab
    listed = {pid: ns.name for ns in lab.namespaces for pid in ns.pids()}
    running = [p.pid for p in lab.processes if not p.exited()]
    allowed = set(running) | {d for pid in running for d in descendants(pid)}
    leaked = {pid: where for pid, where in listed.items() if pid not in allowed and alive(pid)}
    if not leaked:
        return None
    return "untracked: " + ", ".join(f"{pid} {_comm(pid)} in {ns}" for pid, ns in sorted(leaked.items()))


def no_leaked_namespaces(facts: Facts, base: Baseline) -> str | None:
    """The lab's namespaces, and no other of its run (a namespace named after it that it does not
    hold was made by something under test)."""
    lab = facts.rig.lab
    extra = set(lab_namespaces(lab.prefix)) - {ns.name for ns in lab.namespaces}
    return f"namespaces nobody holds: {sorted(extra)}" if extra else None


def stale_while_lost(facts: Facts, base: Baseline) -> str | None:
    """A tunnel whose uplink is not complete is not said to be up (``stale``, or ``failed``)."""
    status = facts.status()
    if isinstance(status, str):
        return status
    teredo = next(p["status"] for p in status["plugins"] if p["name"] == "teredo")
    states = {TEREDO_IF: teredo.get("state")}
    states.update({name: each.get("state") for name, each in teredo.get("standby", {}).items()})
    up = [t.name for t in TUNNELS if states.get(t.name) == "up" and not facts.complete(t.uplink)]
    return ", ".join(f"{name} is up while its uplink is not complete" for name in up) or None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def no_needless_sighup(facts: Facts, base: Baseline) -> str | None:
    """No SIGHUP to the miredo of a tunnel this fault does not concern (renewals, the other uplink's
    blips and moves, restarts and reloads that change nothing of it): each one costs a
    re-qualification and a Binding Update (FIELD-NOTES "miredo")."""
    now = facts.reloads()
    extra = {t: now[t] - base.reloads[t] for t in sorted(base.quiet) if now[t] != base.reloads[t]}
    return ", ".join(f"{t}'s miredo got {n} SIGHUP(s)" for t, n in extra.items()) or None


FD_LIMIT = 64  # the daemon holds ~11 at rest (sockets, pidfds, epoll): a leak of one per fault shows


def fds_bounded(facts: Facts, base: Baseline) -> str | None:
    """The daemon's open file descriptors stay bounded: none leaks per fault."""
    count = len(list(Path(f"/proc/{facts.rig.daemon.proc.pid}/fd").iterdir()))
    return f"the daemon holds {count} file descriptors (limit {FD_LIMIT})" if count > FD_LIMIT else None


def stuck_threads_bounded(facts: Facts, base: Baseline) -> str | None:
    """No plugin holds more threads that never returned than the daemon's documented bound (a
    plugin at the bound gets no new thread: its calls fail at once)."""
    status = facts.status()
    if isinstance(status, str):
        return status
    held = {plugin["name"]: plugin["stuck_threads"] for plugin in status["plugins"]}
    over = {name: count for name, count in held.items() if count > STUCK_THREADS_PER_PLUGIN}
    return f"more stuck threads than {STUCK_THREADS_PER_PLUGIN}: {over}" if over else None


def one_sighup_per_requalification(facts: Facts, base: Baseline) -> str | None:
    """The tunnels the fault concerns got exactly the SIGHUPs it needs: one per re-qualification
    (a move, a lease, a blip that purged the tunnel), none for a miredo restarted by its own."""
    if base.kicks is None:
        return None
    now = facts.reloads()
    wrong = {t.name: now[t.name] - base.reloads[t.name] for t in TUNNELS
             if t.name not in base.quiet and now[t.name] - base.reloads[t.name] != base.kicks}
    return ", ".join(f"{t}'s miredo got {n} SIGHUP(s), not {base.kicks}" for t, n in wrong.items()) or None


Check = Callable[[Facts, Baseline], "str | None"]

CHECKS: dict[str, Check] = {
    "daemon-answers": daemon_answers,
    "daemon-settled": daemon_settled,
    "binding-acknowledged": binding_acknowledged,
    "tunnels-map-their-nat": tunnels_map_their_nat,
    "no-leaked-processes": no_leaked_processes,
    "rss-bounded": daemon_rss_bounded,
    "stuck-threads-bounded": stuck_threads_bounded,
    "fds-bounded": fds_bounded,
    "no-leaked-namespaces": no_leaked_namespaces,
    "stale-while-lost": stale_while_lost,
    "no-needless-sighup": no_needless_sighup,
    "one-sighup-per-requalification": one_sighup_per_requalification,
}


def failing(rig: StandbyRig, base: Baseline) -> dict[str, str]:
    """Every invariant that does not hold now, with what it saw."""
    facts = Facts(rig)
    found = {}
    for name, check in CHECKS.items():
        try:
            problem = check(facts, base)
        except Exception as e:  # a check that cannot read its facts fails, it does not stop the soak
            problem = f"check raised {type(e).__name__}: {e}"
        if problem:
            found[name] = problem
    return found
