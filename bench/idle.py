"""Idle cost: resident memory and wake-ups per minute with no network events.

The daemon (with the built-in plugins enabled) runs beside two baselines in the same namespace and
the same quiet window: `ip monitor` (C, iproute2) and a bare pyroute2 monitor (the Python floor the
product's dependency set implies).  Wake-ups are the voluntary and involuntary context switches of
all of a process's threads over the window, scaled to one minute.

Run as root: `make bench` or `.venv/bin/python bench/idle.py`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import main_in_namespace, start_daemon, switches, table
from orchestrator_testkit.netns import rss_mib

WARMUP_S = 3.0
WINDOW_S = 30.0
PYROUTE2_MONITOR = """
import asyncio
from pyroute2 import AsyncIPRoute

async def main():
    async with AsyncIPRoute() as ipr:
        await ipr.bind(groups=0x1 | 0x10 | 0x40 | 0x100 | 0x400)
        while True:  # get() ends after each burst of messages
            async for _ in ipr.get():
                pass

asyncio.run(main())
"""


def inside(directory: Path) -> None:
    from orchestrator_testkit.configs import write

    for command in (
        ["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
        ["link", "set", "eth0", "up"],
        ["link", "set", "peer0", "up"],
        ["addr", "add", "10.1.0.100/24", "dev", "eth0"],
        ["route", "add", "default", "via", "10.1.0.1"],
    ):
        subprocess.run(["ip", *command], check=True)
    config = write(directory, enable=["routing", "teredo", "mipv6"])
    processes = {
        "daemon": start_daemon(config, log=directory / "daemon.log"),
        "ip monitor": subprocess.Popen(
            ["ip", "monitor", "link", "address", "route"], stdout=subprocess.DEVNULL
        ),
        "pyroute2 monitor": subprocess.Popen([sys.executable, "-c", PYROUTE2_MONITOR]),
    }
    try:
        time.sleep(WARMUP_S)  # IPv6 DAD on the new links finishes; then nothing happens
        before = {name: switches(p.pid) for name, p in processes.items()}
        time.sleep(WINDOW_S)
        for name, process in processes.items():
            if process.poll() is not None:
                log = (directory / "daemon.log").read_text()[-1500:]
                raise RuntimeError(f"{name} exited with status {process.returncode}: {log}")
        wakeups = {name: (switches(p.pid) - before[name]) * 60 / WINDOW_S for name, p in processes.items()}
        rss = {name: rss_mib(p.pid) for name, p in processes.items()}
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)
    names = list(processes)
    table(
        f"Idle for {WINDOW_S:.0f} s after {WARMUP_S:.0f} s of warm-up (one run, same namespace)",
        [
            ("figure", *names),
            ("RSS MiB", *(f"{rss[n]:.1f}" for n in names)),
            ("wake-ups per minute", *(f"{wakeups[n]:.1f}" for n in names)),
        ],
    )


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "idle", inside))
