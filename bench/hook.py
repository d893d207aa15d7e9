"""miredo's client hook, state by state: ours beside Debian's stock one, and the in-process apply.

Every hook runs as miredo runs it: spawned directly (``os.posix_spawn``, then ``waitpid``) with
argv[0] only, an environment holding miredo's variables and nothing else (no PATH), in ``/``.
``/bin/true`` spawned the same way is the harness's own floor, in the same table: subtract it to
get what a hook costs beyond a spawn.

Each hook has its own tun in a private namespace (ours ``teredo``; the stock hook
``teredo-stock``, as the daemon defends ``teredo`` only) and goes through rounds of what miredo
does on every re-qualification: ``up`` with a new Teredo address (no OLD_* variables, as after a
SIGHUP), ``down`` and ``destroy`` (with the address as OLD_ADDRESS), then ``up`` again, so every
step is a real change.  At every step each hook runs in turn, so the machine's noise falls on all
of them alike.  Ours (the generated shell hook miredo runs) and the full hook it hands unusual runs
to share the tun: each step is applied by the first and found in place by the second.  Ours is
measured with the daemon running (it sees the hook's runs and watches the removals) and without.
The stock hook finds no ``teredo`` table (as on a default Debian host): on ``up`` it runs eight
``ip`` commands (eleven with the table, as in the user's set-up), on ``down`` four, on ``destroy``
none.

Run as root: `make bench` or `.venv/bin/python bench/hook.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import main_in_namespace, start_daemon, summary, table

RUNS = 60
WARMUP = 3
LL = "fe80::ffff:ffff:ffff"
MTU = "1280"
OURS_IFACE = "teredo"
STOCK_IFACE = "teredo-stock"
STATES = ("up", "down", "destroy")
STOCK, OURS, FLOOR = "stock", "ours", "/bin/true (harness floor)"
FULL = "ours, the full hook (what the shell hands unusual runs to)"

Hooks = dict[str, tuple[list[str], str]]  # name -> (argv, interface)
Times = dict[tuple[str, str], list[float]]  # (name, state) -> milliseconds per run


def addresses() -> list[str]:
    """As miredo writes them (inet_ntop): the shell hook hands any other spelling to the full hook."""
    return [f"2001:0:c633:6401:8000:f227:9c3a:{n:x}" for n in range(RUNS + WARMUP)]


def miredo_env(state: str, interface: str, address: str) -> dict[str, str]:
    """The variables miredo 1.2.6 gives its hook for ``state`` after a SIGHUP, and nothing else
    (recorded by tests/kernel/testkit/test_teredo_lab.py): ``up`` names the new address and has
    no OLD_*; ``down`` and ``destroy`` name it as OLD_* and both say OLD_STATE=up."""
    ifindex = Path(f"/sys/class/net/{interface}/ifindex").read_text().strip()
    common = {"STATE": state, "IFACE": interface, "IFINDEX": ifindex}
    if state == "up":
        return {**common, "OLD_STATE": "down", "ADDRESS": address, "LLADDRESS": LL, "MTU": MTU}
    return {**common, "OLD_STATE": "up", "OLD_ADDRESS": address, "OLD_LLADDRESS": LL, "OLD_MTU": MTU}


def spawn_ms(argv: list[str], env: dict[str, str], output: int) -> float:
    """Milliseconds from spawning ``argv`` with ``env`` (stdout and stderr on ``output``) to
    reaping it.  Why posix_spawn: ``env -i`` or a shell in between would add an exec of its own;
    the cwd is this process's, ``/`` (:func:`inside`)."""
    actions = [(os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - started) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} {env} exited with {os.waitstatus_to_exitcode(status)}")
    return elapsed


def time_hooks(hooks: Hooks, output: int) -> Times:
    """Milliseconds per run of each hook in each state, over rounds of up (a new address), down,
    destroy; the first ``WARMUP`` rounds are left out."""
    times: Times = {(name, state): [] for name in hooks for state in STATES}
    for number, address in enumerate(addresses()):
        for state in STATES:
            for name, (argv, interface) in hooks.items():
                elapsed = spawn_ms(argv, miredo_env(state, interface, address), output)
                if number >= WARMUP:
                    times[name, state].append(elapsed)
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
        step = Step("up", OURS_IFACE, address, LL, int(MTU))
        started = time.perf_counter()
        applied = converge(OURS_IFACE, profile, end_state(profile, step))
        elapsed = (time.perf_counter() - started) * 1000
        assert applied, "each step changes the address"
        if number >= WARMUP:
            times.append(elapsed)
    return times


def figure_row(label: str, runs: list[float], base: float) -> tuple[str, ...]:
    """Median, p95 and median vs ``base`` (the stock hook's median) of one series."""
    figures = summary(runs)
    return (label, f"{figures['p50']:.2f}", f"{figures['p95']:.2f}", f"{figures['p50'] / base:.2f}x")


def rows(phases: dict[str, Times], in_process: list[float]) -> list[tuple[str, ...]]:
    """One row per (hook, state, daemon running or not), each beside the stock hook of the same
    state and phase; the in-process converge() beside the stock ``up`` without the daemon."""
    table_rows: list[tuple[str, ...]] = [("figure", "median ms", "p95 ms", "median vs stock")]
    for phase, times in phases.items():
        names = list(dict.fromkeys(name for name, _ in times))
        for state in STATES:
            base = summary(times[STOCK, state])["p50"]
            for name in names:
                table_rows.append(figure_row(f"{name}, {state} ({phase})", times[name, state], base))
    stock_up = summary(next(iter(phases.values()))[STOCK, "up"])["p50"]
    table_rows.append(figure_row("in-process converge(), up", in_process, stock_up))
    return table_rows


def inside(directory: Path) -> None:
    from orchestrator_testkit.configs import write
    from orchestrator_testkit.orchestrator_processes import client_hook, full_hook_command
    from orchestrator_testkit.teredo_lab import stock_hook_path

    from orchestrator import control

    os.chdir("/")  # miredo runs its hook in /; posix_spawn has no cwd of its own, children inherit it
    for name in (OURS_IFACE, STOCK_IFACE):
        subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tun"], check=True)
    # metric 1030: the stock hook's default route (1029) through its own tun would clash with ours
    profile = "[routing.profiles.teredo]\nmetric = 1030\n[teredo]\n"
    config = write(directory, enable=["routing", "teredo"], extra=profile, tunnel_profile="teredo")
    stock = directory / "stock-client-hook"
    stock.write_bytes(stock_hook_path().read_bytes())
    stock.chmod(0o755)
    ours = str(client_hook(directory, config, sys.executable))
    full = full_hook_command(directory, config, Path(ours))
    hooks: Hooks = {FLOOR: (["/bin/true"], OURS_IFACE), STOCK: ([str(stock)], STOCK_IFACE),
                    OURS: ([ours], OURS_IFACE), FULL: (full, OURS_IFACE)}
    with (directory / "hooks.log").open("ab") as output:
        phases = {"daemon not running": time_hooks(hooks, output.fileno())}
        daemon = start_daemon(config, log=directory / "daemon.log")
        try:
            phases["daemon running"] = time_hooks(hooks, output.fileno())
            counters = control.request(directory / "control.sock", "status")["counters"]
        finally:
            daemon.terminate()
            daemon.wait(30)
    table_rows = rows(phases, time_in_process(config))
    reasserts = str(counters.get("routing_reasserts"))
    table_rows.append(("daemon's re-asserts during its phase", reasserts, "", ""))
    table(
        f"Client hook wall time per state, {RUNS} rounds of up (new address), down, destroy (one run, "
        f"same namespace); the full hook runs {os.path.realpath(sys.executable)}",
        table_rows,
    )


if __name__ == "__main__":
    sys.exit(main_in_namespace(__file__, "hook", inside))
