"""The demo's picture: a bar per move on a log-scale axis, a cut-off move drawn to the end."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator_testkit import timeline_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_bars_grow_with_the_log_of_their_time_and_a_cut_off_one_reaches_the_end(tmp_path: Path) -> None:
    """The axis starts at the shortest time's decade (10 ms): 0.1 s is one decade along it, 10 s
    three."""
    series = {"with daemon": [("move 1", 0.01), ("move 2", 0.1)],
              "miredo alone": [("move 1", 10.0), ("move 2", None)]}
    root = ET.parse(timeline_svg.write(tmp_path / "t.svg", "title", series)).getroot()
    widths = [float(rect.get("width", "0")) for rect in root.iter(f"{SVG}rect")]
    assert len(widths) == 4
    assert widths[0] < widths[1] and widths[2] == 3 * widths[1]
    assert widths[3] == timeline_svg.WIDTH
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "cut off" in texts and "with daemon: move 1" in texts and "10 ms" in texts
