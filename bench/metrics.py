"""What the metrics cost: the daemon with ``[metrics]`` (listener and textfile) and without, side by
side in one namespace: netlink change -> plugin hook latency (``bench/latency.py``'s method, 1000
changes each), then idle wake-ups and RSS over ``IDLE_S``, and the duration of a scrape of
``/metrics`` as Prometheus makes it (a fresh connection per scrape, ``SCRAPES`` of them).

Run as root: `make bench` or `.venv/bin/python bench/metrics.py`.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

from common import idle_cost, main_in_namespace, summary, table
from latency import daemon_latency, hook_rig

IDLE_S = 30.0
SCRAPES = 200
PORT = 9477


def scrape_seconds() -> list[float]:
    took = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5) as answer:
            answer.read()
        took.append(time.perf_counter() - started)
    return took


def inside(directory: Path) -> None:
    rig = hook_rig(directory)
    textfile = directory / "textfile" / "orchestrator.prom"
    textfile.parent.mkdir()
    metrics = f'\n[metrics]\nlisten = "127.0.0.1:{PORT}"\ntextfile = "{textfile}"\n'
    arms = {"metrics off": "", "metrics on": metrics}
    figures: dict[str, dict[str, float]] = {}
    scrapes: dict[str, float] = {}
    try:
        for position, (arm, extra) in enumerate(arms.items()):
            with daemon_latency(rig, directory, extra,
                                name=f"arm{position}.toml") as (arrived, entered, daemon):
                wakeups, rss = idle_cost(daemon.pid, IDLE_S)  # after the changes' work is done
                figures[arm] = {"p50": arrived["p50"], "p99": arrived["p99"], "entered": entered["p50"],
                                "wakeups": wakeups, "rss": rss}
                if extra:
                    scrapes = summary(scrape_seconds())
    finally:
        rig.close()
    off, on = figures["metrics off"], figures["metrics on"]
    rows = [("figure", "metrics off", "metrics on", "on / off")]
    for key, label in (("p50", "change -> hook, p50 ms"), ("p99", "change -> hook, p99 ms"),
                       ("entered", "change -> hook's first line, p50 ms")):
        rows.append((label, f"{off[key]:.3f}", f"{on[key]:.3f}", f"{on[key] / off[key]:.2f}x"))
    idle = f"idle wake-ups per minute ({IDLE_S:g} s)"
    rows.append((idle, f"{off['wakeups']:.1f}", f"{on['wakeups']:.1f}", ""))
    rows.append(("RSS MiB", f"{off['rss']:.1f}", f"{on['rss']:.1f}", f"+{on['rss'] - off['rss']:.1f}"))
    rows.append((f"scrape of /metrics, p50 / p95 ms ({SCRAPES})", "",
                 f"{scrapes['p50'] * 1000:.2f} / {scrapes['p95'] * 1000:.2f}", ""))
    table("The daemon with [metrics] (listener + textfile) and without, one run, same namespace", rows)


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "metrics", inside))
