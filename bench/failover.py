"""Losing the preferred uplink's carrier: how long until the home agent accepts a Binding Update from a
care-of address that works, with the hot standby and without it, and the way back.

One StandbyLab (orchestrator_testkit.standby_lab: two uplinks behind two NATs, two real miredo
clients, a real Teredo relay at the home agent's site, the UMIP stand-ins over both tunnels).  Three
set-ups, one after the other in the same lab, each losing eth0's carrier ``--events`` times:

  hot standby        the daemon with teredo bound to eth0 and teredo2 a [[teredo.standby]] instance
                     bound to wlan0: the loss purges teredo's address, mip6d's BU leaves from teredo2's;
  two uplinks        the best a node with one tunnel and two uplinks can do: the loss makes wlan0 the
                     active uplink at once and miredo re-qualifies through it.  That needs the kernel
                     to stop routing through eth0 without carrier (``ignore_routes_with_linkdown`` =
                     1 on eth0, set for this set-up; with the default 0 miredo's packets keep going
                     out of the dead link and nothing works until the carrier is back);
  one uplink         one uplink, one tunnel (wlan0 without carrier): nothing works until the carrier
                     is back, ``OUTAGE_S`` later (longer than carrier_grace_ms), and miredo has
                     re-qualified.

The start of an event is eth0's NO-CARRIER as ``ip monitor`` in the node prints it; its end is the
home agent's log of the BU from the working care-of address, and the mobile node's log of the BA.
The way back starts at eth0's carrier (LOWER_UP) and ends at the BA for teredo's new address.  The
time without a valid care-of address is what the mobile node itself logs: from ``coa-lost`` to the
next ``coa-selected``.  The idle cost is the daemon's wake-ups and RSS over ``IDLE_S`` with the hot
standby's configuration and with the two-uplink one.  Benchmarks print, they assert nothing.
Run as root: `make bench` or `.venv/bin/python bench/failover.py [--events N]`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import duration_text, idle_cost, ratio_text, series_rows, summary, table
from orchestrator_testkit.ip_monitor import Monitor
from orchestrator_testkit.mip6_lab import mip6_requirements_problem
from orchestrator_testkit.mip6_standins import HomeAgentStandIn, MobileNodeStandIn
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook
from orchestrator_testkit.standby_lab import STANDBY_NAT, StandbyLab
from orchestrator_testkit.standby_rig import bind_through_teredo, standby_config
from orchestrator_testkit.teredo_lab import NATS, teredo_client_ipv4

EVENTS = 10
DWELL_S = 0.5     # on the standby before the carrier comes back
PACE_S = 1.2      # between events: above min_requalify_interval_s, so every return is kicked
OUTAGE_S = 2.5    # the single uplink's outage: longer than carrier_grace_ms (2 s)
IDLE_S = 30.0
CUTOFF_S = 15.0
GOAL_MEDIAN_MS = 20.0  # carrier lost -> BU from the standby care-of address at the home agent
HOT, TWO, ONE = "hot standby", "two uplinks, one tunnel", "one uplink"
ETH0_LINK = re.compile(r"\d+: eth0[@:]")  # "2: eth0@if7: <NO-CARRIER,..." as ip monitor prints a veth


@dataclass
class Figures:
    to_bu: list[float] = field(default_factory=list)  # carrier lost -> BU from a working CoA at the HA
    to_ba: list[float] = field(default_factory=list)  # carrier lost -> its BA at the mobile node
    back: list[float] = field(default_factory=list)  # carrier back -> BA for teredo's new address
    without_coa: list[float] = field(default_factory=list)  # longest coa-lost -> coa-selected, per event


@dataclass
class Node:
    lab: StandbyLab
    monitor: Monitor
    ha: HomeAgentStandIn
    mn: MobileNodeStandIn

    def carrier_event(self, mark: int, up: bool) -> float:
        """When ``ip monitor`` printed eth0's carrier change (NO-CARRIER, or LOWER_UP)."""
        def printed() -> float | None:
            for event in self.monitor.since(mark):
                line = event.first_line
                if ETH0_LINK.match(line) and ("NO-CARRIER" in line) != up:
                    return event.time
            return None

        found: float = wait_for(printed, 10, f"eth0 carrier {'up' if up else 'down'} in ip monitor")
        return found

    def accepted(self, since_mn: int, since_ha: int, nat: str) -> tuple[float, float] | None:
        """(the HA's BU from a CoA mapping ``nat``, the MN's BA for it), once both are logged."""
        bu = next((e for e in self.ha.events("bu-received", since=since_ha)
                   if teredo_client_ipv4(str(e["src"])) == nat), None)
        ba = next((e for e in self.mn.events("ba-received", since=since_mn)
                   if e.get("status") == 0 and teredo_client_ipv4(str(e.get("coa"))) == nat), None)
        return (float(bu["time"]), float(ba["time"])) if bu and ba else None

    def longest_without_coa(self, since: int) -> float:
        longest, lost_at = 0.0, None
        for event in self.mn.events(since=since):
            if event["event"] == "coa-lost" and lost_at is None:
                lost_at = float(event["time"])
            elif event["event"] == "coa-selected" and lost_at is not None:
                longest, lost_at = max(longest, float(event["time"]) - lost_at), None
        return math.inf if lost_at is not None else longest


def one_event(node: Node, figures: Figures, away_nat: str, outage_s: float) -> None:
    """eth0 loses carrier, the binding moves to ``away_nat``'s CoA (or nowhere), eth0 comes back
    ``outage_s`` later and the binding moves to teredo's new address behind na."""
    lab, mn, ha = node.lab, node.mn, node.ha
    mark, since_mn, since_ha = node.monitor.mark(), mn.mark(), ha.mark()
    lab.carrier(False)
    lost = node.carrier_event(mark, up=False)
    if outage_s == 0:
        away = wait_for(lambda: node.accepted(since_mn, since_ha, away_nat), CUTOFF_S, "the handover away")
        figures.to_bu.append(away[0] - lost)
        figures.to_ba.append(away[1] - lost)
        time.sleep(DWELL_S)
    else:
        time.sleep(outage_s)  # the outage itself
    back_mark, back_mn, back_ha = node.monitor.mark(), mn.mark(), ha.mark()
    lab.carrier(True)
    returned = node.carrier_event(back_mark, up=True)
    home = NATS["na"].wan
    bu_at, ba_at = wait_for(lambda: node.accepted(back_mn, back_ha, home), CUTOFF_S, "the hand-back")
    if outage_s:
        figures.to_bu.append(bu_at - lost)
        figures.to_ba.append(ba_at - lost)
    figures.back.append(ba_at - returned)
    figures.without_coa.append(node.longest_without_coa(since_mn))
    time.sleep(PACE_S)


def series(node: Node, what: str, events: int, away_nat: str, outage_s: float = 0.0) -> Figures:
    print(f"{what}: {events} carrier losses ", end="", flush=True)
    figures = Figures()
    for _ in range(events):
        one_event(node, figures, away_nat, outage_s)
        print(".", end="", flush=True)
    print()
    return figures


@contextmanager
def running(lab: StandbyLab, config: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(lab.node, config, config.parent / "control.sock")
    try:
        yield daemon
    finally:
        daemon.stop()


def set_up(lab: StandbyLab, hook: Path) -> Node:
    """The stand-ins bound through teredo (:func:`bind_through_teredo`, after the daemon), then
    eth0's carrier watched from there on."""
    ha, mn = bind_through_teredo(lab, hook)
    return Node(lab, lab.monitor(objects=("link",)), ha, mn)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS, help=f"carrier losses per set-up ({EVENTS})")
    parser.add_argument("--idle-s", type=float, default=IDLE_S,
                        help=f"how long the idle daemon is watched (default {IDLE_S:g}; 0: not at all)")
    args = parser.parse_args()
    if args.events < 1 or args.idle_s < 0:
        parser.error("--events must be >= 1 and --idle-s >= 0")
    problem = mip6_requirements_problem()
    if problem:
        print(f"bench/failover.py: {problem}", file=sys.stderr)
        return 1
    started = time.monotonic()
    results: dict[str, Figures] = {}
    idle: dict[str, tuple[float, float]] = {}
    with StandbyLab() as lab:
        config = standby_config(lab, standby=True)
        hook = client_hook(lab.tmp, config)
        with running(lab, config) as daemon:
            node = set_up(lab, hook)
            results[HOT] = series(node, HOT, args.events, STANDBY_NAT.wan)
            if args.idle_s:
                idle[HOT] = idle_cost(daemon.proc.pid, args.idle_s)
        lab.stop_standby_miredo()
        unbound = standby_config(lab, standby=False)  # the same file, rewritten
        hook.write_text(client_hook(lab.tmp, unbound).read_text())  # in place: miredo's bind mount follows
        lab.node.sysctl(f"net.ipv4.conf.{lab.node_if}.ignore_routes_with_linkdown", 1)  # see TWO's docstring
        with running(lab, unbound) as daemon:
            results[TWO] = series(node, TWO, args.events, STANDBY_NAT.wan)
            if args.idle_s:
                idle[TWO] = idle_cost(daemon.proc.pid, args.idle_s)
        lab.node.sysctl(f"net.ipv4.conf.{lab.node_if}.ignore_routes_with_linkdown", 0)  # the default again
        lab.standby_carrier(False)
        with running(lab, unbound):
            results[ONE] = series(node, ONE, args.events, "", OUTAGE_S)
    report(results, idle, args.events, args.idle_s, time.monotonic() - started)
    return 0


def report(
    results: dict[str, Figures], idle: dict[str, tuple[float, float]], events: int, idle_s: float, took: float
) -> None:
    names = list(results)
    table(f"eth0's carrier lost -> BU from a working care-of address at the home agent, {events} each "
          f"({took:.0f} s in all)", series_rows({n: results[n].to_bu for n in names}, CUTOFF_S))
    table("eth0's carrier lost -> BA at the mobile node",
          series_rows({n: results[n].to_ba for n in names}, CUTOFF_S))
    table("eth0's carrier back -> BA for teredo's new address (the hand-back)",
          series_rows({n: results[n].back for n in names}, CUTOFF_S))
    longest = {n: max(results[n].without_coa) for n in names}
    table("Longest time without a valid care-of address (the mobile node's coa-lost -> coa-selected)",
          [("figure", *names), ("longest", *(duration_text(longest[n], CUTOFF_S) for n in names))])
    median = {n: summary(results[n].to_bu)["p50"] for n in names}
    table("At the median", [
        ("figure", "measured", "goal"),
        (f"{HOT}: loss -> BU", duration_text(median[HOT], CUTOFF_S), f"<= {GOAL_MEDIAN_MS:g} ms"),
        (f"{ONE} / {HOT}", ratio_text(median[ONE], median[HOT], CUTOFF_S), ""),
        (f"{TWO} / {HOT}", ratio_text(median[TWO], median[HOT], CUTOFF_S), ""),
    ])
    if not idle:
        return
    table(f"The daemon idle for {idle_s:g} s (after the events above)", [
        ("figure", *idle),
        ("wake-ups per minute", *(f"{wakeups:.1f}" for wakeups, _ in idle.values())),
        ("RSS MiB", *(f"{rss:.1f}" for _, rss in idle.values())),
    ])


if __name__ == "__main__":
    sys.exit(main())
