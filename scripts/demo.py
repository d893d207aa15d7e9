"""`make demo`: a mobile node's Teredo address after a DHCP move, with the daemon and without.

Everything runs on this machine in network namespaces named after this process
(orchestrator_testkit.teredo_lab):
a real miredo-server on two consecutive documentation addresses (198.51.100.1 and .2), two NAT
routers ``na`` and ``nb`` with real dnsmasq on their LANs (10.1.0.0/24, 10.2.0.0/24), and the node
with a real dhclient and a real miredo whose client hook is the one this project generates.

The node moves na -> nb -> na -> nb twice: first with the daemon (``orchestrator run``, plugins
routing + teredo) running in the node, then with miredo alone (daemon stopped).  Per move the demo
prints the time from the new IPv4 default route to a *routed* Teredo address (a new 2001:0::/32
address on ``teredo`` and an IPv6 default route through it), both read from ``ip monitor`` in the
node (orchestrator_testkit.teredo_watch), and the ratio.  miredo alone only notices at its next 30 s refresh,
so the wait depends on where in that cycle a move falls: its moves are made 22, 12 and 3 s after
miredo's last qualification (early, middle and late in the cycle), and a wait is cut off after
``CUTOFF_S`` seconds.  The moves with the daemon are made ``PACE_S`` apart (above its default
``min_requalify_interval_s``).  It takes about 100 s; everything is removed at the end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from orchestrator_testkit import timeline_svg
from orchestrator_testkit.configs import write_teredo
from orchestrator_testkit.orchestrator_processes import DaemonProcess, client_hook
from orchestrator_testkit.teredo_lab import (
    NATS,
    SERVER_ADDRESS,
    TeredoLab,
    teredo_client_ipv4,
    teredo_requirements_problem,
)
from orchestrator_testkit.teredo_watch import MoveTiming, TeredoWatch, ensure_qualified

ROUTE = ("nb", "na", "nb")            # from na: na -> nb -> na -> nb
CUTOFF_S = 25.0                       # how long a move waits for miredo alone
PACE_S = 1.5                          # between two moves with the daemon
PHASES_S = (22.0, 12.0, 3.0)          # miredo alone: each move this long after its last qualification
SVG_NAME = "demo-timeline.svg"        # written where make runs (the repository), beside nothing else


def say(text: str = "") -> None:
    print(text, flush=True)


def shown(timing: MoveTiming) -> str:
    seconds = timing.seconds
    if seconds is None:
        return f"> {CUTOFF_S:g} s (cut off)"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def move(lab: TeredoLab, watch: TeredoWatch, number: int, target: str) -> MoveTiming:
    """One move to ``target``, timed by the watch; prints one line."""
    origin = lab.attached
    mark = watch.mark()
    address = lab.move_to(target)
    timing = watch.wait(mark, NATS[target].gateway, CUTOFF_S)
    routed = (f"routed {timing.address} (maps {teredo_client_ipv4(timing.address)})"
              if timing.address and not timing.cut_off else "still the old Teredo address")
    say(f"   move {number}: {origin} -> {target}, lease {address} via {NATS[target].gateway}: "
        f"{shown(timing)}, {routed}")
    return timing


def bars(timings: list[MoveTiming]) -> list[tuple[str, float | None]]:
    """The picture's bars of one set-up: one per move, None when cut off."""
    moves = enumerate(zip(ROUTE, timings, strict=True), 1)
    return [(f"move {number} to {target}", timing.seconds) for number, (target, timing) in moves]


def main() -> int:
    if os.geteuid() != 0:
        print("make demo needs root: it builds network namespaces (run it as root, e.g. sudo make demo)",
              file=sys.stderr)
        return 1
    problem = teredo_requirements_problem()
    if problem:
        print(f"make demo: {problem}", file=sys.stderr)
        return 1
    say("Building the lab: miredo-server on 198.51.100.1+.2, NAT routers na and nb (dnsmasq), the node "
        "(dhclient, miredo with our client hook) ...")
    with TeredoLab() as lab:
        config = write_teredo(lab.tmp, lab.miredo_pidfile, SERVER_ADDRESS)
        lab.start_miredo(client_hook(lab.tmp, config))
        first = lab.wait_teredo_address()
        say(f"Node on na, {lab.dhcp.address()}; Teredo address {first} (maps {teredo_client_ipv4(first)})")
        watch = TeredoWatch(lab)

        say("\n== With the daemon (orchestrator run, plugins routing + teredo)")
        daemon = DaemonProcess(lab.node, config, config.parent / "control.sock")
        with_daemon = []
        for number, target in enumerate(ROUTE, 1):
            time.sleep(PACE_S)  # pacing by design: a kick per move, none coalesced
            with_daemon.append(move(lab, watch, number, target))
        kicks = daemon.status()["counters"]["teredo_kicks"]
        daemon.stop()
        verdict = "one per move" if kicks == len(ROUTE) else f"expected {len(ROUTE)}, one per move"
        say(f"   the daemon sent miredo {kicks} SIGHUP(s): {verdict}")

        say(f"\n== miredo alone (daemon stopped); each wait cut off after {CUTOFF_S:g} s")
        lab.move_to("na")  # back to the start, not timed
        ensure_qualified(lab)  # one SIGHUP: the tunnel follows, and miredo's 30 s cycle starts now
        qualified = time.time()
        alone = []
        for number, (target, phase) in enumerate(zip(ROUTE, PHASES_S, strict=True), 1):
            time.sleep(max(0.0, qualified + phase - time.time()))  # the chosen point of the cycle
            say(f"   (move {number} comes {phase:g} s after miredo's last qualification)")
            timing = move(lab, watch, number, target)
            alone.append(timing)
            qualified = timing.routed_at or time.time()

        say("\n== New default route -> routed Teredo address")
        say(f"   {'move':<12}{'with daemon':>14}{'miredo alone':>22}{'ratio':>10}")
        for number, (target, ours, theirs) in enumerate(zip(ROUTE, with_daemon, alone, strict=True), 1):
            if ours.seconds is None:
                ratio = "n/a"
            elif theirs.seconds is None:
                ratio = f"> {CUTOFF_S / ours.seconds:.0f}x"
            else:
                ratio = f"{theirs.seconds / ours.seconds:.0f}x"
            say(f"   {f'{number} (to {target})':<12}{shown(ours):>14}{shown(theirs):>22}{ratio:>10}")
        picture = timeline_svg.write(
            Path.cwd() / SVG_NAME,
            "New default route -> routed Teredo address (log scale)",
            {"with daemon": bars(with_daemon), "miredo alone": bars(alone)},
        )
        say(f"   the same as a picture: {picture}")
        say("\nWith the daemon the node has a routed Teredo address a fraction of a second after its new\n"
            "default route: miredo is told to re-qualify the moment the move is complete.  Alone, miredo\n"
            "keeps its dead address until its next 30 s refresh, and Mobile IPv6 keeps sending from it.")
    say("\nLab removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
