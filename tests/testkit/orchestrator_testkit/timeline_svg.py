"""A picture of timed moves: one horizontal bar per move and set-up, on a log-scale time axis, as an
SVG file a browser shows.

Why a log scale: the daemon's moves take tens of milliseconds and miredo's alone tens of seconds;
on a linear axis one of the two would be invisible.  Plain SVG text, no plotting library: the
picture is a few rectangles and labels.

API: ``write(path, title, series)`` with ``series`` ``{set-up name: [(label, seconds or None), ...]}``
(None: cut off, drawn to the axis' end with "cut off").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

ROW, LEFT, WIDTH, TOP = 22, 190, 560, 48
COLOURS = ("#2b7bb9", "#d9822b", "#5a9e4b", "#9c4f96")
DECADES = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)


def _x(seconds: float, low: float, high: float) -> float:
    return LEFT + WIDTH * (math.log10(seconds) - math.log10(low)) / (math.log10(high) - math.log10(low))


def _label(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:g} s"


def write(path: Path, title: str, series: Mapping[str, Sequence[tuple[str, float | None]]]) -> Path:
    """Draw ``series`` into ``path``; returns it."""
    rows = [(name, label, seconds) for name, moves in series.items() for label, seconds in moves]
    measured = [seconds for _, _, seconds in rows if seconds]
    low = max(min(DECADES), 10 ** math.floor(math.log10(min(measured, default=0.01))))
    high = 10 ** math.ceil(math.log10(max(measured, default=10.0) * 1.01))
    height = TOP + ROW * len(rows) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + WIDTH + 90}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    bottom = TOP + ROW * len(rows)
    for tick in (t for t in DECADES if low <= t <= high):
        x = _x(tick, low, high)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom}" stroke="#ccc"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{_label(tick)}</text>')
    colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(series)}
    for row, (name, label, seconds) in enumerate(rows):
        y = TOP + ROW * row
        end = _x(seconds, low, high) if seconds else LEFT + WIDTH
        parts.append(f'<text x="10" y="{y + 14}">{escape(f"{name}: {label}")}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y + 3}" width="{max(end - LEFT, 1):.1f}" height="{ROW - 8}" '
                     f'fill="{colours[name]}"/>')
        text = _label(seconds) if seconds else "cut off"
        parts.append(f'<text x="{end + 4:.1f}" y="{y + 14}">{text}</text>')
    parts.append(f'<text x="{LEFT}" y="{bottom + 34}" fill="#555">time, log scale</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path
