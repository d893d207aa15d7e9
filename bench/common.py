"""Shared bits of the benchmarks: a private namespace, percentiles, side-by-side tables.

Benchmarks print figures; they assert nothing.  Each runs its baseline in the same run, on the same
namespace, so a noisy machine shows up in both columns and the ratio stays meaningful.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


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


def table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print ``(figure, ours, baseline)`` rows in aligned columns."""
    print(f"\n{title}")
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
