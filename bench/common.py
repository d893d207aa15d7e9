"""Shared bits of the benchmarks: a private namespace, percentiles, side-by-side tables.

Benchmarks print figures; they assert nothing.  Each runs its baseline in the same run, on the same
namespace, so a noisy machine shows up in both columns and the ratio stays meaningful.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from orchestrator_testkit.netns import rss_mib

T = TypeVar("T")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "mean": statistics.fmean(values),
    }


def switches(pid: int) -> int:
    """Context switches (voluntary and not) of all of a process's threads so far: its wake-ups."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def idle_cost(pid: int, seconds: float, settle_s: float = 3.0) -> tuple[float, float]:
    """(wake-ups per minute, RSS MiB) of process ``pid`` left idle for ``seconds``, after
    ``settle_s`` for the work just done to finish (then nothing happens)."""
    time.sleep(settle_s)
    before = switches(pid)
    time.sleep(seconds)
    return (switches(pid) - before) * 60 / seconds, rss_mib(pid)


def table(title: str, rows: list[tuple[str, ...]]) -> None:
    """Print ``(figure, ours, baseline, ...)`` rows in aligned columns."""
    print(f"\n{title}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def start_daemon(
    config: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`orchestrator run` in the current namespace; returns once its control socket answers."""
    from orchestrator_testkit.netns import wait_for
    from orchestrator_testkit.orchestrator_processes import answers

    stderr = log.open("wb") if log else subprocess.DEVNULL
    daemon = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "run", "--config", str(config)], env=env, stderr=stderr
    )

    def ready() -> bool:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {daemon.returncode}")
        return answers(config.parent / "control.sock")

    wait_for(ready, 30, "the daemon's control socket")
    return daemon


def main_in_namespace(script: str, short: str, inside: Callable[[Path], None]) -> int:
    """Run ``inside(tmpdir)`` in a private namespace: re-executes ``script`` there with --inside."""
    if len(sys.argv) > 2 and sys.argv[1] == "--inside":
        inside(Path(sys.argv[2]))
        return 0
    from orchestrator_testkit.lab import Lab

    with Lab() as lab:
        ns = lab.namespace(short)
        result = ns.run(sys.executable, script, "--inside", str(lab.tmp), timeout=600)
        print(result.stdout, end="")
    return 0


def series_arguments(doc: str, moves: int, cutoff_s: float) -> argparse.Namespace:
    """``--moves``, ``--cutoff`` and ``--seed`` of the benches that time a series of moves."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=moves, help=f"moves per set-up (default {moves})")
    parser.add_argument("--cutoff", type=float, default=cutoff_s,
                        help=f"seconds after the new default route a move is cut off (default {cutoff_s:g})")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random waits between moves")
    args = parser.parse_args()
    if args.moves < 1 or args.cutoff <= 0:
        parser.error("--moves must be >= 1 and --cutoff > 0")
    return args


def paced_series(moves: int, dwell: Callable[[], float], measure: Callable[[], T]) -> list[T]:
    """``measure()`` once per move, each after ``dwell()`` seconds on the previous network (the
    pacing is the benches' design, not a wait for a state), with a dot per move."""
    results = []
    for _ in range(moves):
        time.sleep(dwell())
        results.append(measure())
        print(".", end="", flush=True)
    print()
    return results


def duration_text(seconds: float, cutoff_s: float) -> str:
    """A time for a table; ``math.inf`` is a move cut off."""
    if math.isinf(seconds):
        return f"> {cutoff_s:g} s"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def series_rows(series: dict[str, list[float]], cutoff_s: float) -> list[tuple[str, ...]]:
    """Median, p95, moves and cut-offs (``math.inf``) of each set-up, side by side."""
    figures = {name: summary(values) for name, values in series.items()}
    rows: list[tuple[str, ...]] = [("figure", *series)]
    for key, label in (("p50", "median"), ("p95", "p95")):
        rows.append((label, *(duration_text(figures[name][key], cutoff_s) for name in series)))
    rows.append(("moves", *(str(len(values)) for values in series.values())))
    rows.append((f"cut off (> {cutoff_s:g} s)", *(str(sum(map(math.isinf, v))) for v in series.values())))
    return rows


def ratio_text(slow: float, fast: float, cutoff_s: float) -> str:
    """``slow / fast`` at the median, honest about cut-offs on either side."""
    if math.isinf(fast):
        return "n/a (the faster set-up's median is cut off)"
    if math.isinf(slow):
        return f"> {cutoff_s / fast:.0f}x (the slower set-up cut off)"
    return f"{slow / fast:.0f}x"
