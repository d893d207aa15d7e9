"""After a DHCP move: new IPv4 default route -> routed Teredo address, for three set-ups.

One TeredoLab (real miredo-server, NAT routers with dnsmasq, the node's dhclient, real miredo with
the project's own generated client hook and the user's routing profile), the node moved back and
forth between ``na`` and ``nb`` (``TeredoLab.move_to``: another router, another subnet, a new
lease).  The clock is ``ip monitor`` in the node, which belongs to none of the set-ups
(orchestrator_testkit.teredo_watch): from the new default route via the new gateway to the moment ``teredo``
has a new global Teredo address AND an IPv6 default route.

  miredo alone  no kick: miredo notices at its next 30 s refresh.  Each move waits a random time
                (seeded) first, so it falls at a random point of that cycle as a real move does;
                right after a qualification every move would wait the full 30 s.
  bare floor    the least anything can do: a few lines of shell in the node, ``ip -4 monitor
                route`` and ``kill -HUP $(cat PIDFILE)`` on every new default route (no policy,
                no safety: a renewal that re-adds the route, or a flapping link, kicks too).
  daemon        ``orchestrator run`` in the node, plugins routing + teredo, ``[teredo]`` naming
                the lab's pid file and server, ``min_requalify_interval_s`` at its default.

Moves of the kicked set-ups are paced ``PACE_S`` apart, above the default
``min_requalify_interval_s`` (1 s), so no kick is held back by it.  A move without a routed new
address ``--cutoff`` seconds after its default route counts as cut off (a median or p95 that falls
on one prints as "> cutoff").  Benchmarks print, they assert nothing.

Run as root: `make bench` or `.venv/bin/python bench/teredo_move.py [--moves N] [--cutoff S]`.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from common import paced_series, ratio_text, series_arguments, series_rows, summary, table
from orchestrator_testkit.configs import write_teredo
from orchestrator_testkit.ip_monitor import MONITOR_MARK_DST, await_route_listener
from orchestrator_testkit.netns import TrackedProcess
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook
from orchestrator_testkit.teredo_lab import NATS, SERVER_ADDRESS, TeredoLab, teredo_requirements_problem
from orchestrator_testkit.teredo_watch import MoveTiming, TeredoWatch, ensure_qualified

MOVES = 10
CUTOFF_S = 40.0
PACE_S = 1.5               # between two kicked moves: above min_requalify_interval_s (1 s)
REFRESH_S = 30.0           # miredo's compiled-in refresh interval: the phase a move falls on
GOAL_DIFF_MS = 20.0        # daemon - floor at the median
GOAL_RATIO = 100.0         # miredo alone / daemon at the median

# The bare floor: every new IPv4 default route kicks miredo.  Each line is echoed after the kick,
# so the bench can see the listener is subscribed (the sync marker route) before the first move.
FLOOR = """ip -4 monitor route | while read -r line; do
  case "$line" in "default "*) kill -HUP "$(cat "$1")" ;; esac
  printf '%s\\n' "$line"
done"""


@contextmanager
def floor(lab: TeredoLab) -> Iterator[TrackedProcess]:
    """The bare floor's shell loop running in the node, subscribed."""
    log = lab.tmp / "floor.log"
    proc = lab.node.spawn(["sh", "-c", FLOOR, "sh", str(lab.miredo_pidfile)], log=log)

    def seen() -> bool:
        proc.check_alive("the bare floor's shell loop")
        return MONITOR_MARK_DST in log.read_text()

    await_route_listener(lab.node, seen, "the bare floor's ip monitor")
    try:
        yield proc
    finally:
        lab.stop_process(proc)


@contextmanager
def daemon(lab: TeredoLab, config: Path) -> Iterator[DaemonProcess]:
    """``orchestrator run --config CONFIG`` in the node, ready (its control socket answers)."""
    process = DaemonProcess(lab.node, config, config.parent / "control.sock")
    try:
        yield process
    finally:
        process.stop()


def run_moves(lab: TeredoLab, watch: TeredoWatch, moves: int, cutoff: float,
              dwell: Callable[[], float]) -> list[MoveTiming]:
    """``moves`` moves alternating between na and nb, each after ``dwell()`` seconds on the
    previous network; returns what the watch saw for each."""

    def one_move() -> MoveTiming:
        target = "nb" if lab.attached == "na" else "na"
        mark = watch.mark()
        lab.move_to(target)
        return watch.wait(mark, NATS[target].gateway, cutoff)

    return paced_series(moves, dwell, one_move)


def main() -> int:
    args = series_arguments(__doc__ or "", MOVES, CUTOFF_S)
    problem = teredo_requirements_problem()
    if problem:
        print(f"bench/teredo_move.py: {problem}", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    results: dict[str, list[MoveTiming]] = {}
    started = time.monotonic()
    with TeredoLab() as lab:
        config = write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS)  # the hook's and the daemon's
        lab.start_miredo(client_hook(lab.tmp, config))
        lab.wait_teredo_address()
        watch = TeredoWatch(lab)
        setups: dict[str, tuple[Callable[[], AbstractContextManager[object]], Callable[[], float]]] = {
            "bare floor": (lambda: floor(lab), lambda: PACE_S),
            "daemon": (lambda: daemon(lab, config), lambda: PACE_S),
            "miredo alone": (nullcontext, lambda: rng.uniform(0, REFRESH_S)),
        }
        for name, (running, dwell) in setups.items():
            ensure_qualified(lab)  # whatever the previous set-up left, start from an up-to-date tunnel
            print(f"{name}: {args.moves} moves ", end="", flush=True)
            with running():
                results[name] = run_moves(lab, watch, args.moves, args.cutoff, dwell)

    names = ["miredo alone", "bare floor", "daemon"]
    series = {n: [t.seconds if t.seconds is not None else math.inf for t in results[n]] for n in names}
    table(f"New default route -> routed Teredo address, {args.moves} moves na <-> nb each "
          f"(ip monitor in the node; {time.monotonic() - started:.0f} s in all)",
          series_rows(series, args.cutoff))

    alone, bare, ours = (summary(series[n])["p50"] for n in names)
    difference = "n/a" if math.isinf(ours) or math.isinf(bare) else f"{(ours - bare) * 1000:+.1f} ms"
    ratio = ratio_text(alone, ours, args.cutoff)
    table("At the median", [
        ("figure", "measured", "goal"),
        ("daemon - bare floor", difference, f"<= {GOAL_DIFF_MS:g} ms"),
        ("miredo alone / daemon", ratio, f">= {GOAL_RATIO:g}x"),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
