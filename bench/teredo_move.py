"""After a DHCP move: new IPv4 default route -> routed Teredo address, for four set-ups.

One TeredoLab (real miredo-server, NAT routers with dnsmasq, the node's dhclient, real miredo), the
node moved back and forth between ``na`` and ``nb`` (``TeredoLab.move_to``: another router,
another subnet, a new lease).  The clock is ``ip monitor`` in the node, which belongs to none of
the set-ups (orchestrator_testkit.teredo_watch): from the new default route via the new gateway
to the moment ``teredo`` has a new global Teredo address AND an IPv6 default route.

  miredo alone        no kick, miredo with the project's client hook: miredo notices at its next
                      30 s refresh.  Each move waits a random time (seeded) first, so it falls at
                      a random point of that cycle as a real move does; right after a
                      qualification every move would wait the full 30 s.
  floor               the least anything can do: miredo with a minimal hook (on ``up``: link up,
                      the address /128, a default route; nothing else) and a few lines of shell
                      in the node, ``ip -4 monitor route`` and ``kill -HUP $(cat PIDFILE)`` on
                      every new default route (no policy, no safety: a renewal that re-adds the
                      route, or a flapping link, kicks too).
  seed hook + kicker  the user's set-up before this project: miredo with a hook doing the seed
                      document's ``ip`` operations in its order (orchestrator_testkit.baseline_hooks),
                      kicked by the same shell loop.
  daemon              ``orchestrator run`` in the node, plugins routing + teredo, ``[teredo]``
                      naming the lab's pid file and server, ``min_requalify_interval_s`` at its
                      default; miredo with the project's generated client hook.

miredo is started anew with each set-up's hook (the hook is bind-mounted when miredo starts) and
re-qualified behind the current router before its moves.  Moves of the kicked set-ups are paced
``PACE_S`` apart, above the default ``min_requalify_interval_s`` (1 s), so no kick is held back by
it.  A move without a routed new address ``--cutoff`` seconds after its default route counts as
cut off (a median or p95 that falls on one prints as "> cutoff").

SIGHUPs are counted where they land, miredo's "Reloading configuration" lines, for each set-up's
moves; with the daemon also for one DHCP renewal after its moves (dnsmasq gives a short T1,
``RENEW_S``, so dhclient renews in place: one NEWADDR, no new route; it is not a move).
Benchmarks print, they assert nothing.

Run as root: `make bench` or `.venv/bin/python bench/teredo_move.py [--moves N] [--cutoff S]`.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from common import paced_series, ratio_text, series_arguments, series_rows, summary, table
from orchestrator_testkit.baseline_hooks import minimal_hook, seed_hook
from orchestrator_testkit.configs import write_teredo
from orchestrator_testkit.ip_monitor import MONITOR_MARK_DST, await_route_listener
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook
from orchestrator_testkit.teredo_lab import NATS, SERVER_ADDRESS, TeredoLab, teredo_requirements_problem
from orchestrator_testkit.teredo_rig import Rig, miredo_reloads
from orchestrator_testkit.teredo_watch import MoveTiming, TeredoWatch, ensure_qualified

MOVES = 10
CUTOFF_S = 40.0
PACE_S = 1.5               # between two kicked moves: above min_requalify_interval_s (1 s)
REFRESH_S = 30.0           # miredo's compiled-in refresh interval: the phase a move falls on
RENEW_S = 10               # dnsmasq's T1: longer than a kicked move takes, so none renews mid-series
GOAL_FLOOR_MS = 10.0       # daemon - floor at the median
GOAL_SEED_MS = 0.0         # daemon - seed hook + kicker at the median: below it
GOAL_RATIO = 100.0         # miredo alone / daemon at the median

ALONE, FLOOR_ARM, SEED, DAEMON = "miredo alone", "floor", "seed hook + kicker", "daemon"
PRINTED = (ALONE, FLOOR_ARM, SEED, DAEMON)

# The kicker: every new IPv4 default route kicks miredo.  Each line is echoed after the kick,
# so the bench can see the listener is subscribed (the sync marker route) before the first move.
KICKER = """ip -4 monitor route | while read -r line; do
  case "$line" in "default "*) kill -HUP "$(cat "$1")" ;; esac
  printf '%s\\n' "$line"
done"""


@dataclass(frozen=True)
class Arm:
    """One set-up: the hook miredo runs, what runs beside it (a Rig when that is the daemon, so
    its kicks can be asked and its work awaited), and the wait before each move."""

    name: str
    hook: Path
    beside: Callable[[], AbstractContextManager[Rig | None]]
    dwell: Callable[[], float]


@dataclass(frozen=True)
class Outcome:
    """What one set-up's series gave: each move's timing, the SIGHUPs miredo got during the
    series, and with the daemon its own count of kicks and what one renewal cost."""

    timings: list[MoveTiming]
    sighups: int
    kicks: int | None = None
    renewal: tuple[int, int] | None = None  # SIGHUPs, daemon's kicks


@contextmanager
def kicker(lab: TeredoLab) -> Iterator[None]:
    """The shell kicker running in the node, subscribed.  Each run logs to a file of its own: the
    marker an earlier run printed must not pass for this one's."""
    log = lab.tmp / f"kicker-{len(list(lab.tmp.glob('kicker-*.log')))}.log"
    proc = lab.node.spawn(["sh", "-c", KICKER, "sh", str(lab.miredo_pidfile)], log=log)

    def seen() -> bool:
        proc.check_alive("the kicker's shell loop")
        return MONITOR_MARK_DST in log.read_text()

    await_route_listener(lab.node, seen, "the kicker's ip monitor")
    try:
        yield None
    finally:
        lab.stop_process(proc)


@contextmanager
def daemon(lab: TeredoLab, config: Path, hook: Path) -> Iterator[Rig]:
    """``orchestrator run --config CONFIG`` in the node, ready (its control socket answers)."""
    process = DaemonProcess(lab.node, config, config.parent / "control.sock")
    try:
        yield Rig(lab, process, hook, config)
    finally:
        process.stop()


def restart_miredo(lab: TeredoLab, hook: Path) -> None:
    """miredo started anew with ``hook``, returning once it has a Teredo address.  Why a restart:
    the hook is bind-mounted on miredo's compiled-in path when miredo starts."""
    lab.stop_miredo()
    lab.start_miredo(hook)
    lab.wait_teredo_address()


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


def renewal(rig: Rig) -> tuple[int, int]:
    """SIGHUPs miredo got, and kicks the daemon counted, for one DHCP renewal of the current lease
    (the next one at T1), once the daemon has handled it."""
    sighups, kicks = rig.reloads(), rig.counter("teredo_kicks")
    before = rig.lab.dhcp.address()
    renewed = rig.lab.dhcp.renew(timeout=2 * RENEW_S + 10)
    if renewed != before:
        raise RuntimeError(f"the renewal changed the node's address ({before} -> {renewed})")
    rig.sync()
    return rig.reloads() - sighups, rig.counter("teredo_kicks") - kicks


def run_arm(lab: TeredoLab, watch: TeredoWatch, arm: Arm, moves: int, cutoff: float) -> Outcome:
    """One set-up's series, from a miredo running its hook and qualified behind this router."""
    restart_miredo(lab, arm.hook)
    ensure_qualified(lab)  # whatever the previous set-up left, start from an up-to-date tunnel
    print(f"{arm.name}: {moves} moves ", end="", flush=True)
    with arm.beside() as rig:
        before = miredo_reloads(lab)
        timings = run_moves(lab, watch, moves, cutoff, arm.dwell)
        if rig is None:
            return Outcome(timings, miredo_reloads(lab) - before)
        rig.sync()  # every kick the daemon sends for these moves is sent
        sighups, kicks = miredo_reloads(lab) - before, rig.counter("teredo_kicks")
        print(f"{arm.name}: one DHCP renewal (within {RENEW_S} s)", flush=True)
        return Outcome(timings, sighups, kicks, renewal(rig))


def difference_text(ours: float, other: float) -> str:
    """``ours - other`` at the median in ms; n/a when either is cut off."""
    return "n/a" if math.isinf(ours) or math.isinf(other) else f"{(ours - other) * 1000:+.1f} ms"


def sighup_rows(outcomes: dict[str, Outcome], moves: int) -> list[tuple[str, ...]]:
    """The SIGHUPs miredo got per move, for every set-up (the kickers send one per new default
    route, miredo alone none)."""
    return [("SIGHUPs per move", *(f"{outcomes[n].sighups / moves:.2f}" for n in PRINTED))]


def median_rows(series: dict[str, list[float]], ours: Outcome, moves: int,
                cutoff: float) -> list[tuple[str, ...]]:
    """The issue's figures at the median, and the daemon's SIGHUPs, beside their goals."""
    alone, floor, seed, daemon_ = (summary(series[n])["p50"] for n in PRINTED)
    rows: list[tuple[str, ...]] = [
        ("figure", "measured", "goal"),
        ("daemon - floor", difference_text(daemon_, floor), f"<= {GOAL_FLOOR_MS:g} ms"),
        ("daemon - seed hook + kicker", difference_text(daemon_, seed), f"< {GOAL_SEED_MS:g} ms"),
        ("miredo alone / daemon", ratio_text(alone, daemon_, cutoff), f">= {GOAL_RATIO:g}x"),
        ("daemon: SIGHUPs per move",
         f"{ours.sighups / moves:.2f} ({ours.sighups} in {moves} moves; daemon's teredo_kicks {ours.kicks})",
         "1"),
    ]
    if ours.renewal is not None:
        sighups, kicks = ours.renewal
        measured = f"{sighups} (daemon's teredo_kicks +{kicks})"
        rows.append(("daemon: SIGHUPs on one DHCP renewal", measured, "0"))
    return rows


def main() -> int:
    args = series_arguments(__doc__ or "", MOVES, CUTOFF_S)
    problem = teredo_requirements_problem()
    if problem:
        print(f"bench/teredo_move.py: {problem}", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    with TeredoLab(renew_after=RENEW_S) as lab:
        config = write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS)  # the hook's and the daemon's
        ours = client_hook(lab.tmp, config)
        watch = TeredoWatch(lab)
        arms = [  # the order they run in (miredo restarts with each arm's hook)
            Arm(FLOOR_ARM, minimal_hook(lab.tmp), lambda: kicker(lab), lambda: PACE_S),
            Arm(SEED, seed_hook(lab.tmp), lambda: kicker(lab), lambda: PACE_S),
            Arm(DAEMON, ours, lambda: daemon(lab, config, ours), lambda: PACE_S),
            Arm(ALONE, ours, lambda: nullcontext(None), lambda: rng.uniform(0, REFRESH_S)),
        ]
        for arm in arms:
            outcomes[arm.name] = run_arm(lab, watch, arm, args.moves, args.cutoff)

    series = {n: [t.seconds if t.seconds is not None else math.inf for t in outcomes[n].timings]
              for n in PRINTED}
    table(f"New default route -> routed Teredo address, {args.moves} moves na <-> nb each "
          f"(ip monitor in the node; {time.monotonic() - started:.0f} s in all)",
          series_rows(series, args.cutoff) + sighup_rows(outcomes, args.moves))
    table("At the median", median_rows(series, outcomes[DAEMON], args.moves, args.cutoff))
    return 0


if __name__ == "__main__":
    sys.exit(main())
