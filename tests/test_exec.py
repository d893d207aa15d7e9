"""The ``exec`` plugin: ``[[exec]]`` scripts run on real events by the real daemon, in order, bounded,
with the event in their environment, and reported like a failing plugin when they fail."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from configs import check_config, write
from harness import DaemonProcess
from lab import Lab, wait_for
from orchestrator_exec import environment
from test_daemon import finished_moves, move_to_first_network, move_to_second_network, node_with_uplink

from orchestrator.events import LinkChanged, TunnelAddressChanged, Uplink, UplinkChanged
from orchestrator.moves import Move

FIRST = Uplink("eth0", "10.1.0.100/24", "10.1.0.1")
SECOND = Uplink("eth0", "10.2.0.100/24", "10.2.0.1")


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def exec_entry(command: list[str | Path], events: list[str], **keys: Any) -> str:
    lines = ["[[exec]]", f"events = {events!r}".replace("'", '"'),
             "command = [" + ", ".join(f'"{part}"' for part in command) + "]"]
    lines += [f"{key} = {value!r}".replace("'", '"').replace("True", "true") for key, value in keys.items()]
    return "\n".join(lines) + "\n\n"


def move(event: UplinkChanged) -> Move:
    return Move(event.move, event, 0.0, 0.0)


# -- what a script is told (pure functions) -------------------------------------------------------


def test_a_move_gives_the_new_uplink_in_networkmanager_names_and_the_old_one_apart() -> None:
    event = UplinkChanged(FIRST, SECOND, 7)
    invocation = environment.uplink_changed(event, move(event))
    assert (invocation.action, invocation.interface) == ("change", "eth0")
    assert invocation.environment() == {
        **environment.BASE, "ORCH_EVENT": "uplink-changed", "ORCH_ACTION": "change", "DEVICE_IFACE": "eth0",
        "ORCH_MOVE": "7", "IP4_NUM_ADDRESSES": "1", "IP4_ADDRESS_0": "10.2.0.100/24 10.2.0.1",
        "IP4_GATEWAY": "10.2.0.1", "ORCH_OLD_IFACE": "eth0", "ORCH_OLD_ADDRESS": "10.1.0.100/24",
        "ORCH_OLD_GATEWAY": "10.1.0.1",
    }


def test_a_loss_is_down_on_the_interface_left_and_has_no_new_address() -> None:
    event = UplinkChanged(SECOND, None, 8)
    invocation = environment.uplink_changed(event, move(event))
    variables = invocation.environment()
    assert (invocation.action, invocation.interface, invocation.interfaces) == ("down", "eth0", ("eth0",))
    assert "IP4_ADDRESS_0" not in variables and variables["ORCH_OLD_ADDRESS"] == "10.2.0.100/24"


def test_a_point_to_point_uplink_has_no_gateway_variable() -> None:
    ppp = Uplink("ppp0", "198.51.100.7/32", None)
    event = UplinkChanged(None, ppp, 1)
    variables = environment.uplink_changed(event, move(event)).environment()
    assert variables["ORCH_ACTION"] == "up" and variables["IP4_ADDRESS_0"] == "198.51.100.7/32 0.0.0.0"
    assert "IP4_GATEWAY" not in variables and "ORCH_OLD_IFACE" not in variables


def test_a_move_between_interfaces_concerns_both() -> None:
    event = UplinkChanged(FIRST, Uplink("wlan0", "10.3.0.5/24", "10.3.0.1"), 2)
    assert environment.uplink_changed(event, move(event)).interfaces == ("wlan0", "eth0")


def test_tunnel_link_and_finished_moves() -> None:
    gained = environment.tunnel_address_changed(TunnelAddressChanged("teredo", None, "2001:db8::1"))
    assert (gained.action, gained.variables) == ("up", {"ORCH_ADDRESS": "2001:db8::1"})
    lost = environment.link_changed(LinkChanged("eth0", up=True, carrier=False, present=True))
    assert lost.action == "down"
    assert lost.variables == {"ORCH_LINK_UP": "1", "ORCH_CARRIER": "0", "ORCH_PRESENT": "1"}
    done = move(UplinkChanged(FIRST, SECOND, 3))
    done.outcome, done.phases["finished"], done.problems[:] = "failed", 0.25, ["a", "b"]
    finished = environment.move_finished(done)
    assert (finished.action, finished.interface) == ("failed", "eth0")
    assert finished.variables == {"ORCH_MOVE": "3", "ORCH_OUTCOME": "failed", "ORCH_PROBLEMS": "a; b",
                                  "ORCH_DURATION_MS": "250"}


# -- the contract ---------------------------------------------------------------------------------


def test_bad_entries_are_reported_with_their_key_paths(tmp_path: Path) -> None:
    tool = script(tmp_path, "tool", "exit 0\n")
    plain = tmp_path / "not-executable"
    plain.write_text("")
    extra = (exec_entry([tool], ["uplink-changed", "dhcp4-change"])
             + exec_entry(["logger", "hi"], ["link-changed"], timeout_s=0)
             + exec_entry([plain], ["move-finished"])
             + exec_entry([tmp_path / "missing"], ["move-finished"]))
    result = check_config(write(tmp_path, enable=["exec"], extra=extra))
    assert result.returncode == 2
    lines = [line.split(": ", 1)[1] for line in result.stderr.splitlines() if ": exec[" in line]
    assert lines == [
        "exec[0].events: unknown events ['dhcp4-change'] (known: uplink-changed, tunnel-address-changed, "
        "link-changed, move-finished)",
        "exec[1].command: the program must be an absolute path (no shell, no PATH search), got 'logger'",
        "exec[1].timeout_s: expected a value >= 0.1, got 0",
    ], result.stderr
    # The schema passed for the last two entries; the check of the programs then finds both.
    fixed = (exec_entry([plain], ["move-finished"]) + exec_entry([tmp_path / "missing"], ["move-finished"]))
    result = check_config(write(tmp_path, enable=["exec"], extra=fixed))
    assert result.returncode == 2
    assert f"exec[0].command: {str(plain)!r} is not executable" in result.stderr
    assert f"exec[1].command: no such program {str(tmp_path / 'missing')!r}" in result.stderr


def test_exec_must_be_an_array_of_tables(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, enable=["exec"], extra='[exec]\nevents = ["link-changed"]\n'))
    assert result.returncode == 2
    assert "exec: expected an array of tables ([[exec]]), got a table" in result.stderr


# -- the real daemon ------------------------------------------------------------------------------

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
    first, second = script(lab.tmp, "first", body), script(lab.tmp, "second", body)
    other = script(lab.tmp, "other-interface", f'echo "$0 ran" >> {log}\n')
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
    printer = script(lab.tmp, "printer", f'{{ echo "ARGS $*"; env; }} > {dump}\n')
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


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.netns
def test_a_hanging_script_is_killed_with_its_group_and_reported_like_a_failing_plugin(lab: Lab) -> None:
    pids, log = lab.tmp / "pids", lab.tmp / "trace"
    hangs = script(lab.tmp, "hangs", f"""\
        sleep 300 &
        echo "$$ $!" > {pids}
        exec sleep 300
    """)
    fails = script(lab.tmp, "fails", f'echo "fails ran" >> {log}; exit 3\n')
    after = script(lab.tmp, "after", f'echo "after ran" >> {log}\n')
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
    realtime = script(lab.tmp, "realtime", "kill -40 $$\n")  # a real-time signal: no name of its own
    terminated = script(lab.tmp, "terminated", "kill -TERM $$\n")
    lingers = script(lab.tmp, "lingers", f"""\
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
