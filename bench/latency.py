"""Netlink change -> plugin hook running: the daemon beside `ip -o monitor` feeding a forked /bin/sh.

The baseline is what dispatcher tools do (networkd-dispatcher, NetworkManager-dispatcher, ad hoc
scripts): read `ip monitor`, fork a shell hook per event.  Both sides are driven and timed the same
way: a global IPv6 address is added to / removed from a `tunnel` interface with one netlink request
(no DAD, so it is final at once), and the clock stops when the hook writes one byte into a FIFO the
benchmark reads.  The daemon's hook is an async `orchestrator_tunnel_address_changed` plugin
installed as a third-party distribution.  Changes are sequential: the next is sent once the
previous hook ran, so nothing is coalesced.

Run as root: `make bench` or `.venv/bin/python bench/latency.py`.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import main_in_namespace, start_daemon, summary, table

from orchestrator import wire

CHANGES = 1000
WARMUP = 50
PAUSE_S = 0.002
PLUGIN = """
import os, struct, time
from orchestrator import hookimpl

_fd = None

@hookimpl
async def orchestrator_tunnel_address_changed(event):
    entered = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the benchmark's clock
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["BENCH_FIFO"], os.O_WRONLY | os.O_NONBLOCK)
    os.write(_fd, struct.pack("=d", entered))
"""


def address_request(kind: int, index: int, address: str) -> bytes:
    body = struct.pack("=BBBBi", socket.AF_INET6, 128, 0x02, 0, index)  # IFA_F_NODAD
    body += wire.attr(wire.IFA_LOCAL, socket.inet_pton(socket.AF_INET6, address))
    body += wire.attr(wire.IFA_ADDRESS, socket.inet_pton(socket.AF_INET6, address))
    flags = 0x400 | 0x200 if kind == wire.RTM_NEWADDR else 0  # NLM_F_CREATE | NLM_F_EXCL
    return wire.build_request(kind, flags, body)[1]


def drive(fifo_fd: int, index: int) -> tuple[list[float], list[float]]:
    """Alternate add/remove; return milliseconds from each request to the hook's byte arriving,
    and (when the hook wrote its own clock) to the hook's first line."""

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    address = "2001:0:c633:6401::1"
    latencies: list[float] = []
    entries: list[float] = []
    for number in range(WARMUP + CHANGES):
        kind = wire.RTM_NEWADDR if number % 2 == 0 else wire.RTM_DELADDR
        request = address_request(kind, index, address)
        started = time.perf_counter()
        sock.send(request)
        ready, _, _ = select.select([fifo_fd], [], [], 5.0)
        finished = time.perf_counter()
        data = os.read(fifo_fd, 4096) if ready else b""
        if not data:
            raise RuntimeError(f"hook did not run for change {number}")
        if number >= WARMUP:
            latencies.append((finished - started) * 1000)
            if len(data) == 8:
                entries.append((struct.unpack("=d", data)[0] - started) * 1000)
        time.sleep(PAUSE_S)
    sock.close()
    return latencies, entries


def wait_hook(fifo_fd: int, index: int) -> None:
    """Poke until the hook answers once: the reader is subscribed and running."""

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    for attempt in range(200):
        kind = wire.RTM_NEWADDR if attempt % 2 == 0 else wire.RTM_DELADDR
        sock.send(address_request(kind, index, "2001:0:c633:6401::ff"))
        if select.select([fifo_fd], [], [], 0.1)[0]:
            os.read(fifo_fd, 4096)
            if attempt % 2 == 0:
                sock.send(address_request(wire.RTM_DELADDR, index, "2001:0:c633:6401::ff"))
                select.select([fifo_fd], [], [], 2.0)
            time.sleep(0.2)
            while select.select([fifo_fd], [], [], 0)[0] and os.read(fifo_fd, 4096):
                pass
            sock.close()
            return
    raise RuntimeError("the hook never ran")


@dataclass
class HookRig:
    """A ``tunnel`` interface to change, the FIFO the hooks write to, the hook plugin's site."""

    index: int
    fifo: Path
    fifo_fd: int
    keep_open: int  # a writer of our own, never used: a FIFO whose last writer closed reads as EOF
    site: Path

    def close(self) -> None:
        os.close(self.keep_open)
        os.close(self.fifo_fd)


def hook_rig(directory: Path) -> HookRig:
    from orchestrator_testkit.plugin_site import distribution

    for command in (["link", "add", "teredo", "type", "veth", "peer", "name", "tpeer"],
                    ["link", "set", "teredo", "up"], ["link", "set", "tpeer", "up"]):
        subprocess.run(["ip", *command], check=True)
    fifo = directory / "hook.fifo"
    os.mkfifo(fifo)
    fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keep_open = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    site = directory / "site"
    site.mkdir()
    distribution(site, "bench-hook", {"benchhook": "bench_hook"})
    (site / "bench_hook.py").write_text(PLUGIN)
    return HookRig(socket.if_nametoindex("teredo"), fifo, fifo_fd, keep_open, site)


@contextmanager
def daemon_latency(
    rig: HookRig, directory: Path, extra: str = "", name: str = "orchestrator.toml"
) -> Iterator[tuple[dict[str, float], dict[str, float], subprocess.Popen[bytes]]]:
    """The daemon's change -> hook figures (to the hook's byte, to its first line), with ``extra``
    in its configuration, and the daemon, still running in the block; it is stopped (terminated and
    waited for) when the block ends, or when the figures could not be taken."""
    from orchestrator_testkit.configs import write
    from orchestrator_testkit.plugin_site import environment

    config = write(directory, enable=["benchhook"], extra=extra, name=name)
    daemon = start_daemon(config, environment(rig.site, BENCH_FIFO=str(rig.fifo)))
    try:
        wait_hook(rig.fifo_fd, rig.index)
        arrived, entered = drive(rig.fifo_fd, rig.index)
        yield summary(arrived), summary(entered), daemon
    finally:
        daemon.terminate()
        daemon.wait(30)


def inside(directory: Path) -> None:
    rig = hook_rig(directory)
    with daemon_latency(rig, directory) as (ours, ours_entry, _):
        pass  # the figures are all it is needed for: stopped before the baseline runs
    fifo, fifo_fd, index = rig.fifo, rig.fifo_fd, rig.index

    hook = directory / "hook.sh"
    hook.write_text(f"printf x > {fifo}\n")
    pipeline = f"ip -o monitor address | while read -r line; do /bin/sh {hook}; done"
    baseline_proc = subprocess.Popen(["/bin/sh", "-c", pipeline], start_new_session=True)
    try:
        wait_hook(fifo_fd, index)
        baseline = summary(drive(fifo_fd, index)[0])
    finally:
        os.killpg(baseline_proc.pid, 15)
        baseline_proc.wait(30)
        rig.close()

    rows = [("figure", "daemon (async hook)", "ip -o monitor | fork /bin/sh hook")]
    for key in ("p50", "p95", "p99", "mean"):
        rows.append((f"{key} ms", f"{ours[key]:.3f}", f"{baseline[key]:.3f}"))
    for key in ("p50", "p99"):
        rows.append((f"{key} ms to the hook's first line", f"{ours_entry[key]:.3f}", "(not measurable)"))
    rows.append(("ratio at p50", f"{baseline['p50'] / ours['p50']:.1f}x faster", "1.0x"))
    rows.append(("ratio at p99", f"{baseline['p99'] / ours['p99']:.1f}x faster", "1.0x"))
    table(
        f"Netlink change -> plugin hook running, {CHANGES} changes each (one run, same namespace); "
        "times to the hook's byte reaching the benchmark unless stated",
        rows,
    )


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "latency", inside))
