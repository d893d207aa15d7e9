"""`make demo`: the engine at work in a self-contained namespace lab.

A mobile node with a real DHCP client (ISC dhclient) sits behind a bridge to three access routers,
each running dnsmasq: ra (10.1.0.0/24), rb (10.2.0.0/24) and rc (10.1.0.0/24 again, another router).
The daemon runs in the node; the demo moves the node twice, renews once, blips the carrier once,
swaps to a router handing out the same addresses, and prints the daemon's verdict after each step.
Everything is created in namespaces named after this process and removed at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from configs import write  # noqa: E402
from harness import DaemonProcess  # noqa: E402
from lab import AccessLab, requirements_problem, wait_for  # noqa: E402

QUIET_S = 1.0  # how long a step that must not move is watched (the demo's config grace is 3 s)


def say(text: str) -> None:
    print(text, flush=True)


def move_lines(daemon: DaemonProcess, seen: int) -> list[str]:
    lines = [line for line in daemon.log.read_text().splitlines() if " move " in line]
    return lines[seen:]


def step(daemon: DaemonProcess, title: str, action: Callable[[], object], expect_move: bool) -> None:
    say(f"\n== {title}")
    before = len(move_lines(daemon, 0))
    started = time.monotonic()
    action()
    if expect_move:
        wait_for(lambda: len(move_lines(daemon, before)) >= 2, 30, "the daemon to report the move")
    else:
        time.sleep(QUIET_S)
    lines = move_lines(daemon, before)
    for line in lines:
        say("   daemon: " + line.split(" orchestrator: ", 1)[-1])
    if not lines:
        say(f"   daemon: no move (watched for {time.monotonic() - started:.1f} s) -- as expected")


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root (network namespaces)", file=sys.stderr)
        return 1
    problem = requirements_problem("dnsmasq", "dhclient")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    say("Building the lab: node <-> bridge <-> routers ra, rb, rc (each with dnsmasq) ...")
    with AccessLab(renew_after=3) as lab:
        config = write(lab.tmp, grace=3000, daemon='log_level = "info"')
        daemon = DaemonProcess(lab.node, config, lab.tmp / "control.sock")
        client = lab.dhclient()
        say(f"Daemon running in {lab.node.name}; status: uplink {daemon.status()['uplink']}")

        step(daemon, "1. first DHCP lease from ra", client.start, expect_move=True)
        step(daemon, "2. DHCP renewal on ra (fresh lifetimes, same address)", client.renew,
             expect_move=False)

        def to_rb() -> None:
            lab.attach("rb")
            client.restart()

        step(daemon, "3. move to rb (another subnet)", to_rb, expect_move=True)

        def blip() -> None:
            lab.carrier(False)
            time.sleep(0.2)
            lab.carrier(True)

        step(daemon, "4. carrier blip of 0.2 s on rb (a Wi-Fi roam inside one network)", blip,
             expect_move=False)

        def to_ra() -> None:
            lab.attach("ra")
            client.restart()

        step(daemon, "5. move back to ra", to_ra, expect_move=True)

        def to_rc() -> None:
            lab.carrier(False)
            lab.attach("rc")
            lab.carrier(True)

        step(daemon, "6. same address and gateway behind another router (rc)", to_rc, expect_move=True)

        status = daemon.status()
        say("\n== daemon status")
        say(f"   uplink:   {status['uplink']}")
        say(f"   counters: {status['counters']}")
        for move in status["moves"]:
            phases = ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in move["phases"].items())
            say(f"   move {move['id']}: {move['outcome']} ({phases})")
        daemon.stop()
    say("\nLab removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
