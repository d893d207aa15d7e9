"""The soak's faults: each one a real thing that happens to a node with two uplinks, with the time
it is given to heal (its deadline) and the tunnels whose miredo it must not make anyone kick.

Why a table of kinds: the run draws kinds at random (:mod:`soak`) and the report groups heal times
by kind; a kind is its name, its deadline, its quiet tunnels and one ``inject`` function that does
the fault and returns once it is done (a move once the new lease and default route exist, a restart
once the new process runs), with a few words on what it did.  ``inject`` raises
:class:`FaultRefused` when the system answered the fault wrongly at once (a broken file accepted);
any exception is recorded as a violation of the step and the run goes on.

Deadlines are counted from ``inject``'s return: a move, a new lease or a DHCP release (the lease is
taken again within the fault) 5 s (a SIGHUP once the lease and route exist re-qualifies in ~50-100
ms, FIELD-NOTES); a carrier blip carrier_grace_ms + 2 s after the carrier is back (the issue's
example); a daemon restart 3 s after it answers; a miredo restart 5 s; a reload, a deleted route or
rule 3 s; a renewal 2 s (nothing is to change); the 40 k-message storm 5 s after the daemon is idle
again (the soak's daemon runs with the smallest netlink buffer, :data:`soak.SOAK_DAEMON`, so the
storm usually overruns it); a misbehaving plugin (:mod:`soak_plugin`: one that raises, hangs in a
worker thread, or reports from one, on the standby uplinks' change a short wlan0 blip brings) the
soak's plugin timeout on top of a blip's, since a hung call holds the uplink lane that long.

Not soaked: deleting the standby instance's IPv4 source rule (the daemon does not re-assert it; a
known gap of the hot standby, README).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .soak_checks import TUNNELS
from .soak_plugin import mode_file
from .standby_lab import STANDBY_TUNNEL_IF
from .standby_rig import StandbyRig, standby_config
from .teredo_lab import NATS, TEREDO_IF

BOTH = frozenset({TEREDO_IF, STANDBY_TUNNEL_IF})
PLUGIN_TIMEOUT_S = 2.0  # the soak's daemon.plugin_timeout_s: how long a hung plugin holds its lane
MAIN_ONLY = frozenset({TEREDO_IF})
STANDBY_ONLY = frozenset({STANDBY_TUNNEL_IF})
#: mipv6's handover_timeout_s the rig starts with; a valid reload flips it to the other value
HANDOVER_TIMEOUTS = (5, 6)

Inject = Callable[[StandbyRig, random.Random], str]


class FaultRefused(Exception):
    """The system answered the fault itself wrongly (e.g. it accepted a broken configuration)."""


@dataclass(frozen=True)
class FaultKind:
    """``quiet``: the tunnels whose miredo must get no SIGHUP; ``kicks``: how many the others' must
    get, exactly (each re-qualification the fault needs, once); None: the fault concerns none."""

    name: str
    deadline_s: float
    quiet: frozenset[str]
    inject: Inject
    kicks: int | None = None


# -- eth0 -------------------------------------------------------------------------------------------
def move_eth0(rig: StandbyRig, rng: random.Random) -> str:
    """eth0 to a router on another subnet (na and nc share one): a new lease, no link event."""
    here = NATS[str(rig.lab.attached)].gateway
    target = rng.choice(sorted(r for r, spec in NATS.items() if spec.gateway != here))
    return f"to {target}: {rig.lab.move_to(target)}"


def release_eth0(rig: StandbyRig, rng: random.Random) -> str:
    """eth0's lease released (DHCPRELEASE: the address and route go, as when a user disconnects),
    then a new one taken: away to the standby at once, and back."""
    rig.lab.dhcp.release()
    return f"released, then {rig.lab.dhcp.start()}"


def release_wlan0(rig: StandbyRig, rng: random.Random) -> str:
    """wlan0's lease released, then a new one taken: the standby purged and re-qualified."""
    rig.lab.standby_dhcp.release()
    return f"released, then {rig.lab.standby_dhcp.start()}"


def renew_eth0(rig: StandbyRig, rng: random.Random) -> str:
    """eth0's next genuine renewal (T1 is short in the soak's lab): the same address, new lifetimes."""
    return f"renewed {rig.lab.dhcp.renew()}"


def carrier_blip(uplink: str, long: bool, grace_ms: int) -> Inject:
    """The uplink's carrier lost and back after 40 % of carrier_grace_ms, or 150 %."""
    outage_s = grace_ms / 1000 * (1.5 if long else 0.4)

    def inject(rig: StandbyRig, rng: random.Random) -> str:
        set_carrier = rig.lab.carrier if uplink == "eth0" else rig.lab.standby_carrier
        set_carrier(False)
        time.sleep(outage_s)  # the outage itself is the fault, not a wait for something
        set_carrier(True)
        return f"{uplink} without carrier for {outage_s:g} s"

    return inject


# -- wlan0 ------------------------------------------------------------------------------------------
def new_lease_wlan0(rig: StandbyRig, rng: random.Random) -> str:
    return f"wlan0 now {rig.lab.standby_new_lease()}"


# -- processes --------------------------------------------------------------------------------------
def kill_daemon(rig: StandbyRig, rng: random.Random) -> str:
    """SIGKILL (nothing of its shutdown runs), then a new daemon on the same files."""
    old = rig.daemon.proc.pid
    rig.daemon.kill()
    return f"PID {old} killed, {rig.restart_daemon().proc.pid} started"


def restart_main_miredo(rig: StandbyRig, rng: random.Random) -> str:
    rig.lab.stop_miredo()
    return f"teredo's miredo now PID {rig.lab.start_miredo(rig.hook).pid}"


def restart_standby_miredo(rig: StandbyRig, rng: random.Random) -> str:
    rig.lab.stop_standby_miredo()
    return f"teredo2's miredo now PID {rig.lab.launch_standby_miredo(rig.hook).pid}"


# -- configuration ----------------------------------------------------------------------------------
def reload_changed(grace_ms: int) -> Inject:
    """The same file with mipv6's handover_timeout_s changed (the mipv6 plugin is restarted), then
    ``reload``: it must be taken."""
    def inject(rig: StandbyRig, rng: random.Random) -> str:
        now = next(t for t in HANDOVER_TIMEOUTS if f"handover_timeout_s = {t}\n" in rig.config.read_text())
        new = next(t for t in HANDOVER_TIMEOUTS if t != now)
        standby_config(rig.lab, grace=grace_ms, handover_timeout_s=new, keep_miredo_conf=True,
                       daemon=rig.daemon_settings, plugins=rig.plugins)
        answer = rig.daemon.request("reload")
        if not answer.get("ok"):
            raise FaultRefused(f"a valid file was refused: {answer}")
        return f"handover_timeout_s {now} -> {new}: {'; '.join(answer.get('changes', []))}"

    return inject


BROKEN = {
    "toml-syntax": lambda text: text + "\n[uplinks\n",
    "unknown-plugin": lambda text: text.replace('enable = ["', 'enable = ["no-such-plugin", "', 1),
}


def reload_broken(rig: StandbyRig, rng: random.Random) -> str:
    """A broken file and ``reload``: it must be refused and the daemon keep its policy; the good
    file is put back at once with its times (the client hook reads the same file, and one newer
    than the hook is a change of its own: see ``reload-valid``), as a backup restored with
    ``cp -p``."""
    good, times = rig.config.read_text(), rig.config.stat()
    variant = rng.choice(sorted(BROKEN))
    broken = BROKEN[variant](good)
    assert broken != good, f"the {variant} breakage changed nothing"
    try:
        rig.config.write_text(broken)
        answer = rig.daemon.request("reload")
    finally:
        rig.config.write_text(good)
        os.utime(rig.config, ns=(times.st_atime_ns, times.st_mtime_ns))
    if answer.get("ok"):
        raise FaultRefused(f"a broken file ({variant}) was accepted: {answer}")
    return f"{variant} refused: {answer.get('problems', [''])[0][:80]}"


# -- a plugin ---------------------------------------------------------------------------------------
def misbehaving(mode: str, grace_ms: int) -> Inject:
    """The soak's plugin (:mod:`soak_plugin`) told to ``mode`` on the standby uplinks' next change,
    which a short wlan0 blip then brings: it raises, hangs in a worker thread, or reports from one."""
    blip = carrier_blip("wlan0", False, grace_ms)

    def inject(rig: StandbyRig, rng: random.Random) -> str:
        mode_file(rig.lab.tmp).write_text(mode)
        return f"the plugin told to {mode}; {blip(rig, rng)}"

    return inject


# -- the kernel -------------------------------------------------------------------------------------
STORM_ROUTES = 20_000  # added, then deleted: 40 000 netlink messages
STORM_TABLE = 4244  # watched by nobody


def netlink_storm(rig: StandbyRig, rng: random.Random) -> str:
    """40 000 route messages at once (a routing daemon loading a full table, say), through the
    daemon's small receive buffer: it usually overruns, dumps the kernel again and carries on."""
    before = resyncs(rig)
    routes = [f"10.{200 + i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(STORM_ROUTES)]
    batch = rig.lab.tmp / "storm.batch"
    batch.write_text("".join(f"route {verb} blackhole {route} table {STORM_TABLE}\n"
                             for verb in ("add", "del") for route in routes))
    rig.lab.node.ip("-batch", str(batch))
    rig.daemon.wait_idle()  # whether the burst overran the buffer (a resync) is the kernel's timing
    return f"{2 * STORM_ROUTES} route messages; resyncs {before} -> {resyncs(rig)}"


def resyncs(rig: StandbyRig) -> int:
    return int(rig.daemon.status()["counters"]["resyncs"])



def delete_main_route(rig: StandbyRig, rng: random.Random) -> str:
    """The routing profile's IPv6 default route of teredo deleted by someone else."""
    metric = str(TUNNELS[0].metric)
    rig.lab.node.ip("-6", "route", "del", "default", "dev", TEREDO_IF, "metric", metric)
    return f"default dev {TEREDO_IF} metric {metric} deleted"


def delete_standby_rule(rig: StandbyRig, rng: random.Random) -> str:
    """The standby profile's "from ADDRESS lookup TABLE" rule deleted by someone else."""
    table = str(TUNNELS[1].table)
    (rule,) = [r for r in rig.lab.node.ip_json("-6", "rule", "show", "table", table) if r.get("src")]
    rig.lab.node.ip("-6", "rule", "del", "from", rule["src"], "table", table, "pref", str(rule["priority"]))
    return f"rule from {rule['src']} lookup {table} deleted"


def fault_kinds(grace_ms: int) -> tuple[FaultKind, ...]:
    """Every kind the soak draws from, for a daemon with ``carrier_grace_ms = grace_ms``."""
    blip_s = grace_ms / 1000 + 2
    return (
        FaultKind("move-eth0", 5, STANDBY_ONLY, move_eth0, kicks=1),
        FaultKind("release-eth0", 5, STANDBY_ONLY, release_eth0, kicks=1),
        FaultKind("release-wlan0", 5, MAIN_ONLY, release_wlan0, kicks=1),
        FaultKind("renew-eth0", 2, BOTH, renew_eth0),
        FaultKind("blip-eth0-short", blip_s, STANDBY_ONLY, carrier_blip("eth0", False, grace_ms), kicks=1),
        FaultKind("blip-eth0-long", blip_s, STANDBY_ONLY, carrier_blip("eth0", True, grace_ms), kicks=1),
        FaultKind("blip-wlan0-short", blip_s, MAIN_ONLY, carrier_blip("wlan0", False, grace_ms), kicks=1),
        FaultKind("blip-wlan0-long", blip_s, MAIN_ONLY, carrier_blip("wlan0", True, grace_ms), kicks=1),
        FaultKind("new-lease-wlan0", 5, MAIN_ONLY, new_lease_wlan0, kicks=1),
        FaultKind("kill-daemon", 3, BOTH, kill_daemon),
        FaultKind("restart-miredo-teredo", 5, STANDBY_ONLY, restart_main_miredo, kicks=0),
        FaultKind("restart-miredo-teredo2", 5, MAIN_ONLY, restart_standby_miredo, kicks=0),
        FaultKind("reload-valid", 3, BOTH, reload_changed(grace_ms)),
        FaultKind("reload-broken", 3, BOTH, reload_broken),
        FaultKind("route-deleted", 3, BOTH, delete_main_route),
        FaultKind("rule-deleted", 3, BOTH, delete_standby_rule),
        FaultKind("netlink-storm", 5, BOTH, netlink_storm),
        *(FaultKind(f"plugin-{mode}", PLUGIN_TIMEOUT_S + blip_s, MAIN_ONLY, misbehaving(mode, grace_ms),
                    kicks=1)
          for mode in ("raise", "hang", "report")),
    )
