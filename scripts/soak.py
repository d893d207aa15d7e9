"""`make soak`: the fault-injection soak of the hot standby (orchestrator_testkit.soak).

A seeded random sequence of real faults (moves, renewals, carrier blips on either uplink, a new
lease on wlan0, the daemon killed and restarted, either miredo restarted, valid and broken reloads,
the routing profile's route deleted) on the two-uplink namespace lab, the invariants checked after
each.  Prints one line per fault, then the report: the seed, the faults by kind with their median
and worst heal time, the daemon's RSS at start and end, and every violation with the command that
replays it.  Exits 1 when there was a violation.  Needs root; everything runs in namespaces named
after this process and is removed at the end.

    make soak SEED=7 FAULTS=50        .venv/bin/python scripts/soak.py --seed 7 --faults 50
"""

from __future__ import annotations

import argparse
import random
import sys

from orchestrator_testkit.mip6_lab import mip6_requirements_problem
from orchestrator_testkit.soak import progress_line, soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="the sequence's seed (default: a random one, printed)")
    parser.add_argument("--faults", type=int, default=200, help="how many faults (default 200)")
    parser.add_argument("--skip", action="append", default=[], metavar="KIND",
                        help="leave a fault kind out of the sequence (repeatable)")
    args = parser.parse_args(argv)
    if args.faults < 1:
        parser.error("--faults must be at least 1")
    problem = mip6_requirements_problem()
    if problem:
        print(f"soak: cannot run here: {problem}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print(f"soak: seed {seed}, {args.faults} faults", flush=True)
    report = soak(seed, args.faults, progress=lambda step: print(progress_line(step), flush=True),
                  skip=frozenset(args.skip))
    print(report.text())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
