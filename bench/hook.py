"""miredo's client hook: ours beside Debian's stock one, and the in-process apply.

Both hooks run as miredo runs them (``env -i`` with miredo's variables only) on the same tun named
``teredo`` in a private namespace, each step a real change: ``up`` with a new Teredo address and
OLD_ADDRESS, as after every re-qualification.  Ours is measured with the daemon running (it hears
the hook and watches the removals) and without.  The stock hook finds no ``teredo`` table (as on a
default Debian host), so it runs nine ``ip`` commands (eleven with the table, as in the user's set-up).

Run as root: `make bench` or `.venv/bin/python bench/hook.py`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import main_in_namespace, start_daemon, summary, table

RUNS = 60
WARMUP = 3
LL = "fe80::ffff:ffff:ffff"
STOCK_IFACE = "teredo-stock"


def addresses() -> list[str]:
    return [f"2001:0:c633:6401:8000:f227:9c3a:{n:04x}" for n in range(RUNS + WARMUP)]


def time_hooks(hooks: dict[str, tuple[str, str]]) -> dict[str, list[float]]:
    """Milliseconds per run of each hook (path, interface), interleaved run by run (so the
    machine's noise falls on all of them alike); every run brings a new address."""
    times: dict[str, list[float]] = {name: [] for name in hooks}
    previous = None
    for number, address in enumerate(addresses()):
        env = [f"ADDRESS={address}", f"LLADDRESS={LL}", "MTU=1280", "STATE=up"]
        if previous:
            env.append(f"OLD_ADDRESS={previous}")
        for name, (hook, interface) in hooks.items():
            started = time.perf_counter()
            result = subprocess.run(
                ["env", "-i", f"IFACE={interface}", *env, hook], capture_output=True, text=True
            )
            elapsed = (time.perf_counter() - started) * 1000
            if result.returncode != 0:
                raise RuntimeError(f"{hook} failed: {result.stderr}")
            if number >= WARMUP:
                times[name].append(elapsed)
        previous = address
    return times


def time_in_process(config: Path) -> list[float]:
    """Milliseconds for converge() of a changed step, in a warm process (no start-up, no imports)."""
    from orchestrator_routing.endstate import Step, end_state
    from orchestrator_routing.kernel import converge
    from orchestrator_routing.profile import from_section
    from orchestrator_testkit.configs import load

    profile = from_section("teredo", dict(load(config).section("routing")["profiles"]["teredo"]))
    times: list[float] = []
    for number, address in enumerate(addresses()):
        step = Step("up", "teredo", address, LL, 1280)
        started = time.perf_counter()
        applied = converge("teredo", profile, end_state(profile, step))
        elapsed = (time.perf_counter() - started) * 1000
        assert applied, "each step changes the address"
        if number >= WARMUP:
            times.append(elapsed)
    return times


def inside(directory: Path) -> None:
    from orchestrator_testkit.configs import write
    from orchestrator_testkit.orchestrator_processes import client_hook
    from orchestrator_testkit.teredo_lab import stock_hook_path

    from orchestrator import control

    # The stock hook gets a tun of its own: the daemon defends ``teredo`` only.
    for name in ("teredo", STOCK_IFACE):
        subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tun"], check=True)
    # metric 1030: the stock hook's default route (1029) through its own tun would clash with ours
    profile = "[routing.profiles.teredo]\nmetric = 1030\n[teredo]\n"
    config = write(directory, enable=["routing", "teredo"], extra=profile, tunnel_profile="teredo")
    stock = directory / "stock-client-hook"
    stock.write_bytes(stock_hook_path().read_bytes())
    stock.chmod(0o755)
    ours = client_hook(directory, config, sys.executable)

    alone = {"stock": (str(stock), STOCK_IFACE), "ours": (str(ours), "teredo")}
    system_python = shutil.which("python3", path="/usr/bin")
    if system_python and os.path.realpath(system_python) != os.path.realpath(sys.executable):
        alone[f"ours with {system_python}"] = (str(client_hook(directory, config, system_python)), "teredo")
    phases = {"daemon not running": time_hooks(alone)}
    daemon = start_daemon(config, log=directory / "daemon.log")
    try:
        phases["daemon running"] = time_hooks(alone)
        counters = control.request(directory / "control.sock", "status")["counters"]
    finally:
        daemon.terminate()
        daemon.wait(30)
    in_process = summary(time_in_process(config))

    rows = [("figure", "median ms", "p95 ms", "median vs stock")]
    for phase, times in phases.items():
        base = summary(times["stock"])["p50"]
        for name, runs in times.items():
            figures = summary(runs)
            rows.append(
                (
                    f"{name} ({phase})",
                    f"{figures['p50']:.2f}",
                    f"{figures['p95']:.2f}",
                    f"{figures['p50'] / base:.2f}x",
                )
            )
    stock_alone = summary(phases["daemon not running"]["stock"])["p50"]
    rows.append(
        (
            "in-process converge()",
            f"{in_process['p50']:.2f}",
            f"{in_process['p95']:.2f}",
            f"{in_process['p50'] / stock_alone:.2f}x",
        )
    )
    rows.append(("daemon's re-asserts during its phase", str(counters.get("routing_reasserts")), "", ""))
    table(
        f"Client hook wall time, {RUNS} runs each, every run a new address (one run, same namespace); "
        f"ours runs {os.path.realpath(sys.executable)} unless named",
        rows,
    )


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "hook", inside))
