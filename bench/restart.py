"""A daemon restarted after a move it did not see: how soon the tunnel is routed again.

One TeredoLab (real miredo behind NAT, miredo-server, dnsmasq, dhclient, the project's client hook).
Three set-ups, in one run:

  restart after an unseen move   the daemon runs, is killed with SIGKILL, the node moves (na <-> nb,
                                 a new lease), a new daemon starts: from its start (the bench's
                                 clock just before it is spawned) to a routed new Teredo address
                                 (``ip -ts monitor`` in the node; same wall clock)
  healthy restart                SIGKILL and start again without a move: the SIGHUPs miredo got
                                 (its "Reloading configuration" lines) until the daemon is idle
  miredo alone                   the same unseen move with no daemon started again: from the new
                                 default route to a routed new Teredo address (miredo's own refresh),
                                 cut off after ``--cutoff`` seconds

Benchmarks print, they assert nothing.  Run as root: `make bench` or `.venv/bin/python
bench/restart.py [--runs N] [--cutoff S]`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from common import duration_text, ratio_text, table
from orchestrator_testkit.teredo_lab import NATS, TeredoLab, teredo_requirements_problem
from orchestrator_testkit.teredo_rig import teredo_rig
from orchestrator_testkit.teredo_watch import TeredoWatch, ensure_qualified

RUNS = 5
BASELINE_RUNS = 2
CUTOFF_S = 35.0  # miredo refreshes every 30 s
GOAL_S = 1.0


def other(lab: TeredoLab) -> str:
    return "nb" if lab.attached == "na" else "na"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of each daemon set-up (default {RUNS})")
    parser.add_argument("--cutoff", type=float, default=CUTOFF_S, help="seconds before a wait is cut off")
    args = parser.parse_args()
    problem = teredo_requirements_problem()
    if problem:
        print(f"bench/restart.py: {problem}", file=sys.stderr)
        return 1
    healed: list[float] = []
    kicks_after_move: list[int] = []
    kicks_healthy: list[int] = []
    alone: list[float] = []
    started = time.monotonic()
    with teredo_rig() as rig:
        lab = rig.lab
        watch = TeredoWatch(lab)
        print(f"restarts: {args.runs} after an unseen move, {args.runs} healthy ", end="", flush=True)
        for _ in range(args.runs):
            rig.sync()
            reloads = rig.reloads()
            rig.daemon.kill()
            target = other(lab)
            mark = watch.mark()
            lab.move_to(target)
            start = time.time()
            rig.restart()
            timing = watch.wait(mark, NATS[target].gateway, args.cutoff)
            healed.append(timing.routed_at - start if timing.routed_at is not None else math.inf)
            rig.wait_state("up", "after the unseen move")
            rig.sync()
            kicks_after_move.append(rig.reloads() - reloads)

            reloads = rig.reloads()
            rig.daemon.kill()
            rig.restart()
            rig.wait_state("up", "after a healthy restart")
            rig.sync()
            kicks_healthy.append(rig.reloads() - reloads)
            print(".", end="", flush=True)
        rig.daemon.stop()
        print(f"\nmiredo alone: {BASELINE_RUNS} unseen moves ", end="", flush=True)
        for _ in range(BASELINE_RUNS):
            ensure_qualified(lab)
            target = other(lab)
            mark = watch.mark()
            lab.move_to(target)
            seconds = watch.wait(mark, NATS[target].gateway, args.cutoff).seconds
            alone.append(seconds if seconds is not None else math.inf)
            print(".", end="", flush=True)
        print()

    def cell(values: list[float], pick: str) -> str:
        value = statistics.median(values) if pick == "median" else max(values)
        return duration_text(value, args.cutoff)

    elapsed = time.monotonic() - started
    table(f"Routed new Teredo address after a move no daemon saw ({elapsed:.0f} s in all)", [
        ("figure", "daemon restarted (from its start)", "miredo alone (from the new route)"),
        ("runs", str(len(healed)), str(len(alone))),
        ("median", cell(healed, "median"), cell(alone, "median")),
        ("worst", cell(healed, "max"), cell(alone, "max")),
        ("miredo alone / daemon, median", ratio_text(statistics.median(alone), statistics.median(healed),
                                                     args.cutoff), ""),
        ("SIGHUPs per run", " ".join(map(str, kicks_after_move)), "-"),
        ("goal", f"<= {GOAL_S:g} s", ""),
    ])
    table("Healthy restarts (SIGKILL, no move, start again)", [
        ("figure", "daemon"),
        ("runs", str(len(kicks_healthy))),
        ("SIGHUPs per run", " ".join(map(str, kicks_healthy))),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
