"""Ingest without loss: how fast the engine drains a netlink storm, beside a pyroute2 get() loop.

The mix is the overrun test's: route changes in a table nobody watches, ten for every relevant
address change.  Both readers get a buffer big enough to hold the whole storm (so nothing is lost
and both see the same messages); the storm is written while the reader is not reading, then the
reader is timed draining it up to a sentinel change.  That is each reader's sustained rate.

Run as root: `make bench` or `.venv/bin/python bench/ingest.py`.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import main_in_namespace, table

ROUTE_CHANGES = 40_000
ADDRESS_CHANGES = ROUTE_CHANGES // 10
SENTINEL = "192.0.2.200"
ROUNDS = 3
BUFFER = 1 << 30


def storm_file(directory: Path) -> Path:
    lines = []
    for i in range(ROUTE_CHANGES // 2):
        prefix = f"203.0.113.{i % 250}/32 via 10.1.0.1 table {100 + i // 250}"
        lines.append(f"route add {prefix}")
        if i % 5 == 4:  # one address change per ten route changes
            lines.append(f"address add 10.9.{i // 250}.{i % 250}/32 dev eth0")
    for i in range(ROUTE_CHANGES // 2):
        prefix = f"203.0.113.{i % 250}/32 via 10.1.0.1 table {100 + i // 250}"
        lines.append(f"route del {prefix}")
        if i % 5 == 4:
            lines.append(f"address del 10.9.{i // 250}.{i % 250}/32 dev eth0")
    path = directory / "storm.batch"
    path.write_text("\n".join(lines) + "\n")
    return path


def storm(batch: Path) -> None:
    subprocess.run(["ip", "-batch", str(batch)], check=True)
    subprocess.run(["ip", "addr", "add", f"{SENTINEL}/32", "dev", "lo"], check=True)


def sentinel_gone() -> None:
    subprocess.run(["ip", "addr", "del", f"{SENTINEL}/32", "dev", "lo"], check=True)


def ours(batch: Path, config_path: Path) -> tuple[int, float, int]:
    from orchestrator_testkit.configs import load

    from orchestrator.engine import Engine
    from orchestrator.events import AddressEvent

    config = load(config_path)

    async def run() -> tuple[int, float, int]:
        done = asyncio.get_running_loop().create_future()

        def sink(event: object, _when: float) -> None:
            if isinstance(event, AddressEvent) and event.address == SENTINEL and not done.done():
                done.set_result(time.perf_counter())

        engine = Engine(config, sink, None)
        engine.load()
        engine.stream()
        before = engine.source.messages_seen
        storm(batch)  # the loop is not running: everything waits in the socket buffer
        started = time.perf_counter()
        finished = await done
        count = engine.source.messages_seen - before
        resyncs = engine.counters["resyncs"]
        await engine.close()
        return count, finished - started, resyncs

    return asyncio.run(run())


def pyroute2_loop(batch: Path) -> tuple[int, float]:
    from pyroute2 import IPRoute

    from orchestrator import wire

    ipr = IPRoute()
    ipr.setsockopt(socket.SOL_SOCKET, wire.SO_RCVBUFFORCE, BUFFER)
    ipr.bind(groups=wire.WATCHED_GROUPS)
    storm(batch)
    started = time.perf_counter()
    count = 0
    while True:
        messages = ipr.get()
        count += len(messages)
        if any(m.get("IFA_LOCAL") == SENTINEL for m in messages if m["header"]["type"] == wire.RTM_NEWADDR):
            finished = time.perf_counter()
            break
    ipr.close()
    return count, finished - started


def inside(directory: Path) -> None:
    from orchestrator_testkit.configs import write

    subprocess.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"], check=True)
    for name in ("eth0", "peer0", "lo"):
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
    subprocess.run(["ip", "addr", "add", "10.1.0.100/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "route", "add", "default", "via", "10.1.0.1"], check=True)
    batch = storm_file(directory)
    config = write(directory, daemon=f"netlink_rcvbuf_mib = {BUFFER >> 20}")
    rates_ours, rates_base, counts, resyncs = [], [], set(), 0
    for _ in range(ROUNDS):
        count, seconds, lost = ours(batch, config)
        sentinel_gone()
        rates_ours.append(count / seconds)
        counts.add(count)
        resyncs += lost
        count_b, seconds_b = pyroute2_loop(batch)
        sentinel_gone()
        rates_base.append(count_b / seconds_b)
        counts.add(count_b)
    best_ours, best_base = sorted(rates_ours)[ROUNDS // 2], sorted(rates_base)[ROUNDS // 2]
    table(
        f"Ingest: {ROUTE_CHANGES} irrelevant route changes + {ADDRESS_CHANGES} address changes, "
        f"median of {ROUNDS} rounds",
        [
            ("figure", "engine (header-first)", "pyroute2 IPRoute.get() loop"),
            ("messages drained per round", str(sorted(counts)), ""),
            ("events/s", f"{best_ours:,.0f}", f"{best_base:,.0f}"),
            ("ratio", f"{best_ours / best_base:.1f}x", "1.0x"),
            ("overruns (resyncs)", str(resyncs), "-"),
        ],
    )


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "ingest", inside))
