"""The ``exec`` plugin: ``[[exec]]`` scripts run on real events by the real daemon, in order, bounded,
with the event in their environment, and reported like a failing plugin when they fail."""

from __future__ import annotations

from pathlib import Path

from orchestrator_exec import environment
from orchestrator_testkit.configs import check_config, exec_entry, shell_script, write

from orchestrator.events import LinkChanged, TunnelAddressChanged, Uplink, UplinkChanged
from orchestrator.moves import Move

FIRST = Uplink("eth0", "10.1.0.100/24", "10.1.0.1")
SECOND = Uplink("eth0", "10.2.0.100/24", "10.2.0.1")


def move(event: UplinkChanged) -> Move:
    return Move(event.move, event, 0.0, 0.0)


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


def test_bad_entries_are_reported_with_their_key_paths(tmp_path: Path) -> None:
    tool = shell_script(tmp_path, "tool", "exit 0\n")
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
