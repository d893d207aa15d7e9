"""The ``exec`` plugin: ``[[exec]]`` scripts run on real events by the real daemon, in order, bounded,
with the event in their environment, and reported like a failing plugin when they fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from orchestrator_exec import environment
from orchestrator_testkit.configs import exec_entry, shell_script, write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import alive, wait_for
from orchestrator_testkit.orchestrator_processes import DaemonProcess
from orchestrator_testkit.scenarios import (
    finished_moves,
    move_to_first_network,
    move_to_second_network,
    node_with_uplink,
)


def trace(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.netns
def test_scripts_of_a_lane_run_in_order_never_at_once_and_hold_the_move(lab: Lab) -> None:
    log = lab.tmp / "trace"
    body = f"""\
        echo "$0 begin $ORCH_MOVE" >> {log}
        sleep 0.2  # long enough that a second script started alongside would show between the lines
        echo "$0 end $ORCH_MOVE" >> {log}
    """
    first, second = shell_script(lab.tmp, "first", body), shell_script(lab.tmp, "second", body)
    other = shell_script(lab.tmp, "other-interface", f'echo "$0 ran" >> {log}\n')
    extra = (exec_entry([first], ["uplink-changed"]) + exec_entry([second], ["uplink-changed"])
             + exec_entry([other], ["uplink-changed"], interfaces=["wlan*"]))
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, write(lab.tmp, enable=["exec"], extra=extra), lab.tmp / "control.sock")

    for number in range(3):  # three moves, each one before the scripts of the last can have run
        (move_to_second_network if number % 2 == 0 else move_to_first_network)(node)
        wait_for(lambda n=number: len(daemon.status()["moves"]) > n, 15, f"move {number + 1} to start")
    moves = wait_for(lambda: len(finished_moves(daemon)) == 3 and finished_moves(daemon), 30, "three moves")
    expected = [f"{path} {when} {m['id']}" for m in moves for path in (first, second)
                for when in ("begin", "end")]
    wait_for(lambda: len(trace(log)) == len(expected), 15, "every script to have run")
    assert trace(log) == expected
    assert moves[-1]["outcome"] == "ok"
    daemon.wait_idle()
    counters = daemon.status()["counters"]
    assert counters["exec_runs"] == 6 and counters["exec_failures"] == 0 and counters["plugin_failures"] == 0


@pytest.mark.netns
def test_the_event_is_in_the_environment_and_nothing_of_the_daemons(lab: Lab) -> None:
    dump = lab.tmp / "env"
    printer = shell_script(lab.tmp, "printer", f'{{ echo "ARGS $*"; env; }} > {dump}\n')
    extra = exec_entry([printer, "first"], ["uplink-changed"], dispatcher_arguments=True)
    node = node_with_uplink(lab)
    config = write(lab.tmp, enable=["exec"], extra=extra)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock",
                           env=dict(os.environ, SECRET_OF_THE_DAEMON="x"))
    move_to_second_network(node)
    [moved] = wait_for(lambda: finished_moves(daemon), 15, "the move")
    lines = dump.read_text().splitlines()
    assert lines[0] == "ARGS first eth0 change"
    variables = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    assert {k: v for k, v in variables.items() if k not in ("PWD", "SHLVL", "_")} == {
        **environment.BASE, "ORCH_EVENT": "uplink-changed", "ORCH_ACTION": "change", "DEVICE_IFACE": "eth0",
        "ORCH_MOVE": str(moved["id"]), "IP4_NUM_ADDRESSES": "1", "IP4_ADDRESS_0": "10.2.0.100/24 10.2.0.1",
        "IP4_GATEWAY": "10.2.0.1", "ORCH_OLD_IFACE": "eth0", "ORCH_OLD_ADDRESS": "10.1.0.100/24",
        "ORCH_OLD_GATEWAY": "10.1.0.1",
    }


@pytest.mark.netns
def test_a_hanging_script_is_killed_with_its_group_and_reported_like_a_failing_plugin(lab: Lab) -> None:
    pids, log = lab.tmp / "pids", lab.tmp / "trace"
    hangs = shell_script(lab.tmp, "hangs", f"""\
        sleep 300 &
        echo "$$ $!" > {pids}
        exec sleep 300
    """)
    fails = shell_script(lab.tmp, "fails", f'echo "fails ran" >> {log}; exit 3\n')
    after = shell_script(lab.tmp, "after", f'echo "after ran" >> {log}\n')
    # 2 s: ample for the shell to start its child and write the pids before the group is killed.
    extra = (exec_entry([hangs], ["uplink-changed"], timeout_s=2) + exec_entry([fails], ["uplink-changed"])
             + exec_entry([after], ["uplink-changed"]))
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, write(lab.tmp, enable=["exec"], extra=extra), lab.tmp / "control.sock")
    move_to_second_network(node)
    [moved] = wait_for(lambda: finished_moves(daemon), 15, "the move")
    assert moved["outcome"] == "failed"
    assert moved["problems"] == [
        "exec hangs: still running after 2 s: process group killed",
        "exec fails: exited with status 3",
    ]
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 15, "the hanging script's pids")
    script_pid, child_pid = (int(p) for p in pids.read_text().split())
    wait_for(lambda: not alive(script_pid) and not alive(child_pid), 10, "the script and its child gone")
    assert trace(log) == ["fails ran", "after ran"]  # a failure does not stop the scripts after it
    counters = daemon.status()["counters"]
    assert (counters["exec_runs"], counters["exec_timeouts"], counters["exec_failures"]) == (3, 1, 1)
    assert counters["plugin_failures"] == 2
    assert daemon.stop() == 0


@pytest.mark.netns
def test_signals_are_named_and_stopping_the_daemon_kills_a_running_script(lab: Lab) -> None:
    pids = lab.tmp / "pids"
    realtime = shell_script(lab.tmp, "realtime", "kill -40 $$\n")  # a real-time signal: no name of its own
    terminated = shell_script(lab.tmp, "terminated", "kill -TERM $$\n")
    lingers = shell_script(lab.tmp, "lingers", f"""\
        sleep 300 &
        echo "$$ $!" > {pids}
        exec sleep 300
    """)
    extra = (exec_entry([realtime], ["uplink-changed"]) + exec_entry([terminated], ["uplink-changed"])
             + exec_entry([lingers], ["move-finished"], timeout_s=600))
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, write(lab.tmp, enable=["exec"], extra=extra), lab.tmp / "control.sock")
    move_to_second_network(node)
    [moved] = wait_for(lambda: finished_moves(daemon), 15, "the move")
    assert moved["problems"] == ["exec realtime: killed by signal 40", "exec terminated: killed by SIGTERM"]
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 15, "the lingering script")
    script_pid, child_pid = (int(p) for p in pids.read_text().split())
    assert daemon.stop() == 0
    wait_for(lambda: not alive(script_pid) and not alive(child_pid), 10, "the script and its child gone")
