"""The ``exec`` plugin: how soon an ``[[exec]]`` script starts after a move, and whether a slow one
delays the other plugins.

One Lab (orchestrator_testkit.lab): the node of ``orchestrator_testkit.scenarios.node_with_uplink``,
its eth0 moved back and forth between 10.1.0.0/24 and 10.2.0.0/24 with ``move_to_second_network`` /
``move_to_first_network`` (three ``ip`` commands; the last one, the new default route, is the
kernel change that makes the move: the daemon reports it at once).

The start of each move is that route as ``ip -ts monitor`` in the node prints it
(orchestrator_testkit.ip_monitor's Monitor, UTC microseconds of CLOCK_REALTIME). Not the bench's
clock before an ``ip`` command: the move is three commands in one imported function, so the bench
could only stamp the first of them, two ``ip`` process start-ups (milliseconds, more than the
figures) before the route; the monitor stamps the route itself. Its stamp is taken when ``ip``
printed the message, after its own wake-up, so every figure below is short by that wake-up (not
measured; the same reference for every column; on a 2-CPU machine the monitor, the daemon and the
reactor are woken by the same message and compete for the CPUs).

1. Hand-off: route -> an ``[[exec]]`` script for ``uplink-changed`` starts.  The script is a tiny
   static C program compiled here (``/bin/date`` in a shell script when there is no C compiler)
   whose first action is reading CLOCK_REALTIME; it appends that time to a file.
     daemon + exec  ``orchestrator run`` in the node, plugin ``exec``, the program as its script;
     bare floor     a minimal reactor in the node: a Python process on an rtnetlink socket
                    (RTMGRP_IPV4_ROUTE) that fork/execs the same program (subprocess.Popen, its
                    own session, as the exec plugin starts scripts) on a new default route with a
                    gateway.  No state, no debounce, no plugins: the floor for a Python listener.
2. Isolation: route -> another plugin's ``orchestrator_uplink_changed`` call (a bench plugin,
   installed as a third-party distribution, called after ``exec`` in ``plugins.enable`` order; it
   records CLOCK_REALTIME on entry: orchestrator_testkit.plugin_site's ``witness`` records no time).
     slow script      plugins exec + the bench plugin; the ``[[exec]]`` script takes 2 s;
     fast script      the same with the script ending at once (the cost of the exec plugin alone);
     no exec plugin   the bench plugin alone.
   Moves come every ``ISOLATION_PACE_S`` (jittered by --seed), much less than the 2 s script, so
   the exec lane always has scripts running and waiting (every move is held open by its script and
   superseded by the next): the claim checked is that the other plugin is not delayed even then
   (slow / fast ~1).

Both tables also split the daemon's time by its own account: route -> the move's ``started`` in
``orchestrator status`` (when the daemon began reading the burst) -> the stamp.

Set-ups alternate in blocks within the run (A B C, then C B A), each daemon started afresh per block, the
first ``WARMUP`` moves of each block not counted.  A move with nothing recorded ``--cutoff`` seconds
after its route counts as cut off.  Benchmarks print, they assert nothing.  Run as root:
``flock /tmp/netns-tests.lock .venv/bin/python bench/exec.py [--moves N]``.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import duration_text, ratio_text, series_arguments, series_rows, summary, table
from orchestrator_testkit.configs import exec_entry, write
from orchestrator_testkit.ip_monitor import Monitor, wait_for_quiet
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, TrackedProcess, wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess
from orchestrator_testkit.plugin_site import distribution, environment
from orchestrator_testkit.scenarios import move_to_first_network, move_to_second_network, node_with_uplink

MOVES = 20
CUTOFF_S = 5.0
WARMUP = 2
ROUNDS = 2
HANDOFF_PACE_S = (0.15, 0.3)  # seconds between moves (uniform): the last script has long exited
ISOLATION_PACE_S = (0.4, 0.6)  # much less than SLOW_SCRIPT_S: the slow scripts pile up
SLOW_SCRIPT_S = 2.0
GATEWAYS = ("10.1.0.1", "10.2.0.1")
DAEMON, FLOOR = "daemon + exec", "bare floor (reactor)"
SLOW, FAST, NO_EXEC = f"slow script ({SLOW_SCRIPT_S:g} s)", "fast script", "no exec plugin"

STAMP_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now, pause;
    clock_gettime(CLOCK_REALTIME, &now); /* first: the moment the script started */
    if (argc < 2)
        return 2;
    const char *gateway = getenv("IP4_GATEWAY"), *move = getenv("ORCH_MOVE");
    char line[200];
    int n = snprintf(line, sizeof line, "%lld.%09ld %s %s\n", (long long)now.tv_sec, now.tv_nsec,
                     gateway ? gateway : "-", move ? move : "-");
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || write(fd, line, n) != n)
        return 1;
    close(fd);
    if (argc > 2) {
        double seconds = atof(argv[2]);
        pause.tv_sec = (time_t)seconds;
        pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
        nanosleep(&pause, NULL);
    }
    return 0;
}
"""
STAMP_SH = """#!/bin/sh
printf '%s %s %s\\n' "$(date +%s.%N)" "${IP4_GATEWAY:--}" "${ORCH_MOVE:--}" >> "$1"
[ -z "$2" ] || exec sleep "$2"
"""
REACTOR = r"""
import socket, struct, subprocess, sys

stamp, out, ready = sys.argv[1:4]
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
sock.bind((0, 0x40))  # RTMGRP_IPV4_ROUTE: subscribed once bind() returns
open(ready, "w").close()
children = []
while True:
    data = sock.recv(1 << 16)
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind == 24:  # RTM_NEWROUTE
            family, dst_len, _, _, table = struct.unpack_from("=BBBBB", data, offset + 16)
            gateway, position, end = None, offset + 28, offset + length
            while position + 4 <= end:
                size, attribute = struct.unpack_from("=HH", data, position)
                if size < 4:
                    break
                if attribute == 5:  # RTA_GATEWAY
                    gateway = socket.inet_ntop(socket.AF_INET, data[position + 4:position + 8])
                position += (size + 3) & ~3
            if family == socket.AF_INET and dst_len == 0 and table == 254 and gateway:
                children.append(subprocess.Popen(
                    [stamp, out], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "IP4_GATEWAY": gateway},
                    stdin=subprocess.DEVNULL, start_new_session=True))
                children = [child for child in children if child.poll() is None]
        offset += (length + 3) & ~3
"""
PLUGIN = """
import os, time
from orchestrator import hookimpl

@hookimpl
async def orchestrator_uplink_changed(event, move):
    entered = time.time()  # CLOCK_REALTIME, as ip -ts monitor's stamps
    gateway = event.new.gateway if event.new else "-"
    with open(os.environ["BENCH_STAMPS"], "a") as handle:
        handle.write(f"{entered:.6f} {gateway} {move.id}\\n")
"""


def stamp_program(directory: Path) -> tuple[Path, str]:
    """The script both sides start, and what it is."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler:
        source, program = directory / "stamp.c", directory / "stamp"
        source.write_text(STAMP_C)
        for flags in (["-static"], []):
            built = subprocess.run([compiler, "-O2", *flags, "-o", str(program), str(source)],
                                   capture_output=True, text=True)
            if built.returncode == 0:
                return program, f"C program ({'static' if flags else 'dynamic'}, {Path(compiler).name})"
    program = directory / "stamp.sh"
    program.write_text(STAMP_SH)
    program.chmod(0o755)
    return program, "/bin/sh + date +%s.%N (no C compiler: start-up of sh and date included)"


def stamps(path: Path, since: int) -> list[tuple[float, str]]:
    """(time, gateway) of each line after the first ``since``."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(float(line.split()[0]), line.split()[1]) for line in lines[since:] if line.count(" ") >= 2]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


class Mover:
    """The node, moved to the other network at each ``move``; timed by its ``ip -ts monitor``."""

    def __init__(self, lab: Lab, node: Namespace, seed: int) -> None:
        self.node = node
        self.monitor: Monitor = lab.monitor(node, objects=("route",))
        self.on_second = False
        self.rng = random.Random(seed)

    def move(self) -> tuple[str, float | None]:
        """One move; the new gateway and when the monitor printed its default route (None if not
        within 5 s)."""
        mark = self.monitor.mark()
        gateway = GATEWAYS[0] if self.on_second else GATEWAYS[1]
        (move_to_first_network if self.on_second else move_to_second_network)(self.node)
        self.on_second = not self.on_second

        def route() -> float | None:
            return next((e.time for e in self.monitor.since(mark) if not e.deleted
                         and e.first_line.startswith(f"default via {gateway} ")), None)

        at = route() if wait_for_quiet(route, 5) else None
        return gateway, at

    def pause(self, pace: tuple[float, float]) -> None:
        time.sleep(self.rng.uniform(*pace))  # pacing by design (see the module docstring)


class Split:
    """Where each set-up's time went, by the daemon's own account: route -> the daemon's start of
    the move (when it began reading the burst, ``orchestrator status``) -> the recorded stamp."""

    def __init__(self) -> None:
        self.read: dict[str, list[float]] = {}
        self.handed: dict[str, list[float]] = {}

    def add(self, name: str, read: float, handed: float) -> None:
        self.read.setdefault(name, []).append(read)
        self.handed.setdefault(name, []).append(handed)

    def rows(self, names: list[str], cutoff: float) -> list[tuple[str, ...]]:
        def median(values: dict[str, list[float]], name: str) -> str:
            return duration_text(summary(values[name])["p50"], cutoff) if values.get(name) else "n/a"

        return [("  route -> daemon's move start, median", *(median(self.read, n) for n in names)),
                ("  daemon's move start -> stamp, median", *(median(self.handed, n) for n in names))]


def series(mover: Mover, stamps_file: Path, moves: int, cutoff: float, pace: tuple[float, float],
           daemon: DaemonProcess | None = None, split: tuple[Split, str] | None = None) -> list[float]:
    """``WARMUP + moves`` moves; seconds from each route to the first stamp naming its gateway
    (math.inf when cut off).  With a daemon, ``split`` gets the daemon's account of each move."""
    measured: list[float] = []
    for number in range(WARMUP + moves):
        mover.pause(pace)
        since = line_count(stamps_file)
        gateway, route_at = mover.move()

        def stamped(gateway: str = gateway, since: int = since) -> float | None:
            return next((t for t, g in stamps(stamps_file, since) if g == gateway), None)

        at = stamped() if wait_for_quiet(stamped, cutoff + 1) else None
        print(".", end="", flush=True)
        if number < WARMUP:
            continue
        if at is None or route_at is None or at - route_at > cutoff:
            measured.append(math.inf)
            continue
        measured.append(at - route_at)
        if daemon is not None and split is not None:
            moved = [m for m in daemon.status()["moves"] if (m["new"] or {}).get("gateway") == gateway]
            if moved:
                split[0].add(split[1], moved[-1]["started"] - route_at, at - moved[-1]["started"])
    return measured


def blocks(moves: int) -> list[int]:
    """Moves per block: ``moves`` split over ``ROUNDS`` rounds."""
    rounds = min(ROUNDS, moves)
    return [moves // rounds + (1 if i < moves % rounds else 0) for i in range(rounds)]


def alternate(setups: dict[str, Callable[[int], list[float]]], moves: int) -> dict[str, list[float]]:
    """Each set-up's series in blocks, the order reversed every round (A B, B A...)."""
    results: dict[str, list[float]] = {name: [] for name in setups}
    for index, size in enumerate(blocks(moves)):
        names = list(setups) if index % 2 == 0 else list(reversed(setups))
        for name in names:
            results[name] += setups[name](size)
    print()
    return results


def on_moves(command: list[str]) -> str:
    """The bench's ``[[exec]]`` entry: ``command`` on every uplink change, 30 s at most."""
    return exec_entry(command, ["uplink-changed"], timeout_s=30)


def config_in(lab: Lab, name: str, enable: list[str], extra: str = "") -> Path:
    directory = lab.tmp / name
    directory.mkdir()
    return write(directory, enable=enable, extra=extra)


def handoff(lab: Lab, node: Namespace, mover: Mover, program: Path, args: argparse.Namespace,
            split: Split) -> dict[str, list[float]]:
    moves, cutoff = args.moves, args.cutoff
    out = lab.tmp / "handoff.stamps"
    config = config_in(lab, "handoff", ["exec"], on_moves([str(program), str(out)]))

    def daemon_block(size: int) -> list[float]:
        daemon = DaemonProcess(node, config, config.parent / "control.sock")
        try:
            return series(mover, out, size, cutoff, HANDOFF_PACE_S, daemon, (split, DAEMON))
        finally:
            daemon.stop()

    def floor_block(size: int) -> list[float]:
        ready = lab.tmp / f"reactor-ready-{lab._next_id()}"
        argv = [sys.executable, "-c", REACTOR, str(program), str(out), str(ready)]
        reactor: TrackedProcess = node.spawn(argv)
        try:
            wait_for(lambda: reactor.check_alive("the reactor") or ready.exists(), 10, "the reactor")
            return series(mover, out, size, cutoff, HANDOFF_PACE_S)
        finally:
            lab.stop_process(reactor)

    print(f"hand-off: {moves} moves each ", end="", flush=True)
    return alternate({DAEMON: daemon_block, FLOOR: floor_block}, moves)


def isolation(lab: Lab, node: Namespace, mover: Mover, program: Path, args: argparse.Namespace,
              split: Split) -> tuple[dict[str, list[float]], dict[str, int]]:
    moves, cutoff = args.moves, args.cutoff
    site = lab.tmp / "site"
    site.mkdir()
    distribution(site, "bench-stamp", {"benchstamp": "bench_stamp"})
    (site / "bench_stamp.py").write_text(PLUGIN)
    out = lab.tmp / "isolation.stamps"
    slow_out, fast_out = lab.tmp / "slow-script.stamps", lab.tmp / "fast-script.stamps"
    env = environment(site, BENCH_STAMPS=str(out))
    configs = {
        SLOW: config_in(lab, "slow", ["exec", "benchstamp"],
                        on_moves([str(program), str(slow_out), f"{SLOW_SCRIPT_S:g}"])),
        FAST: config_in(lab, "fast", ["exec", "benchstamp"], on_moves([str(program), str(fast_out)])),
        NO_EXEC: config_in(lab, "alone", ["benchstamp"]),
    }
    counted = {"moves": 0, "started": 0, "superseded": 0}

    def block(name: str) -> Callable[[int], list[float]]:
        def run(size: int) -> list[float]:
            config = configs[name]
            daemon = DaemonProcess(node, config, config.parent / "control.sock", env=env)
            before = line_count(slow_out)
            try:
                measured = series(mover, out, size, cutoff, ISOLATION_PACE_S, daemon, (split, name))
                superseded = daemon.status()["counters"].get("moves_superseded", 0)
            finally:
                daemon.stop()  # kills the running script's group; the waiting ones never run
            if name == SLOW:
                counted["moves"] += WARMUP + size
                counted["started"] += line_count(slow_out) - before
                counted["superseded"] += superseded
            return measured
        return run

    print(f"isolation: {moves} moves each ", end="", flush=True)
    return alternate({name: block(name) for name in configs}, moves), counted


def ratio(slow: float, fast: float, cutoff: float) -> str:
    """``ratio_text`` with two decimals: these ratios are near 1."""
    if math.isinf(slow) or math.isinf(fast):
        return ratio_text(slow, fast, cutoff)
    return f"{slow / fast:.2f}x"


def compare(title: str, measured: dict[str, list[float]], cutoff: float, split: Split) -> None:
    """The series side by side, the first against each of the others."""
    names = list(measured)
    rows = series_rows(measured, cutoff)
    rows += split.rows(names, cutoff)
    first = summary(measured[names[0]])
    for other in names[1:]:
        base = summary(measured[other])
        difference = (first["p50"] - base["p50"]) * 1000
        blanks = ("",) * (len(names) - 1)
        rows.append((f"{names[0]} - {other}, median",
                     "n/a" if math.isinf(difference) else f"{difference:+.2f} ms", *blanks))
        ratios = [ratio(first[key], base[key], cutoff) for key in ("p50", "p95")]
        rows.append((f"{names[0]} / {other}, median | p95", " | ".join(ratios), *blanks))
    table(title, rows)


def main() -> int:
    args = series_arguments(__doc__ or "", MOVES, CUTOFF_S)
    started = time.monotonic()
    split = Split()
    with Lab() as lab:
        program, what = stamp_program(lab.tmp)
        node = node_with_uplink(lab)
        mover = Mover(lab, node, args.seed)
        measured = handoff(lab, node, mover, program, args, split)
        isolated, slow = isolation(lab, node, mover, program, args, split)
    compare(f"1. New default route -> an [[exec]] script for uplink-changed started (its first clock "
            f"read), {args.moves} moves each; script: {what}", measured, args.cutoff, split)
    compare(f"2. New default route -> another plugin's orchestrator_uplink_changed call (called after "
            f"exec's), {args.moves} moves each, {ISOLATION_PACE_S[0]:g}-{ISOLATION_PACE_S[1]:g} s apart",
            isolated, args.cutoff, split)
    print(f"  with the slow script: {slow['moves']} moves (warm-up included), {slow['started']} script runs "
          f"started, {slow['superseded']} moves superseded while held open by their script: the exec lane "
          f"was never idle (the runs still waiting were dropped when each daemon stopped)")
    print(f"\n({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
