"""The daemon as a service: what it tells the init system, reloads, and stopping mid-move.

A test NOTIFY_SOCKET (an AF_UNIX datagram socket in the lab's directory) stands in for systemd;
the daemon runs in a lab namespace.  "No ping" is proven against the daemon's own counters and the
datagrams that did arrive, never by waiting a while and finding nothing.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit import REPO, plugin_site
from orchestrator_testkit.configs import write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess, answers
from orchestrator_testkit.scenarios import finished_moves, move_to_second_network, node_with_uplink

from orchestrator.config import DEFAULT_PATH

UNIT = REPO / "etc" / "systemd" / "orchestrator.service"

pytestmark = pytest.mark.netns

WATCHDOG_USEC = 200_000  # the daemon pings every 0.1 s


class NotifySocket:
    """What the daemon sent to NOTIFY_SOCKET, one datagram per message, read as systemd does:
    at once (by a thread), so the daemon never finds the queue full."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[list[str]] = []
        self._reader = threading.Thread(target=self._read_all, daemon=True)
        self._reader.start()

    def _read_all(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return  # closed
            if not data:
                return  # shut down
            self.messages.append(data.decode("utf-8").split("\n"))

    def read(self) -> list[list[str]]:
        return list(self.messages)

    def wait(self, field: str, after: int = 0, timeout: float = 15, containing: str = "") -> int:
        """Index of the first message at or after ``after`` with a field starting with ``field``
        (and holding ``containing``)."""
        def found() -> list[int]:
            messages = self.read()
            return [i for i in range(after, len(messages))
                    if any(f.startswith(field) and containing in f for f in messages[i])][:1]

        index: int = wait_for(found, timeout, f"{field} {containing}".strip())[0]
        return index

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(5)


@pytest.fixture
def notify(lab: Lab) -> Iterator[NotifySocket]:
    sock = NotifySocket(lab.tmp / "notify.sock")
    yield sock
    sock.close()


def run_daemon(lab: Lab, node: Namespace, notify: NotifySocket, enable: list[str],
               timeout_s: float = 0.5) -> tuple[DaemonProcess, Path]:
    site = plugin_site.build(lab.tmp / "site")
    env = plugin_site.environment(site, WITNESS_FILE=str(lab.tmp / "witness.jsonl"),
                                  NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
    config = write(lab.tmp, enable=enable, daemon=f"plugin_timeout_s = {timeout_s}")
    return DaemonProcess(node, config, lab.tmp / "control.sock", env=env), config


def fields(message: list[str]) -> dict[str, str]:
    return dict(field.split("=", 1) for field in message if "=" in field)


def test_ready_status_watchdog_reload_and_stopping(lab: Lab, notify: NotifySocket) -> None:
    node = node_with_uplink(lab)
    daemon, _ = run_daemon(lab, node, notify, ["witness"])
    ready = notify.wait("READY=1")
    assert "uplink eth0 10.1.0.100/24" in fields(notify.messages[ready])["STATUS"]
    assert daemon.status()["watchdog"]["interval_s"] == WATCHDOG_USEC / 2e6
    pings = notify.wait("WATCHDOG=1", ready + 1)
    notify.wait("WATCHDOG=1", pings + 1)

    move_to_second_network(node)
    wait_for(lambda: finished_moves(daemon), 15, "the move")
    notify.wait("STATUS=", ready + 1, containing="uplink eth0 10.2.0.100/24")

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.proc.send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING=1", ready + 1)
    stamp = int(fields(notify.messages[reloading])["MONOTONIC_USEC"])
    assert before <= stamp <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notify.wait("READY=1", reloading + 1)

    mark = len(notify.read())
    assert daemon.stop() == 0
    notify.wait("STOPPING=1", mark)


def test_a_broken_file_keeps_the_running_policy_and_says_why_in_utf8(lab: Lab, notify: NotifySocket) -> None:
    node = node_with_uplink(lab)
    daemon, config = run_daemon(lab, node, notify, ["witness"])
    good = config.read_text()
    config.write_text(good.replace('enable = ["witness"]', 'enable = ["witness", "ünknown"]'))
    answer = daemon.request("reload")
    assert answer["ok"] is False and any("ünknown" in p for p in answer["problems"])
    status = daemon.status()
    assert "reload refused" in status["reload_problem"] and "ünknown" in status["reload_problem"]
    notify.wait("STATUS=", notify.wait("RELOADING=1"), containing="ünknown")

    move_to_second_network(node)  # handled the old way: the witness plugin still runs
    wait_for(lambda: finished_moves(daemon), 15, "the move")
    wait_for(lambda: witnessed(lab, 1), 10, "the witness to see the move")

    config.write_text(good.replace('enable = ["witness"]', "enable = []"))
    answer = daemon.request("reload")
    assert answer == {"ok": True, "changes": ["plugin witness stopped"]}, answer
    assert daemon.status()["reload_problem"] is None
    wait_for(lambda: any(r["hook"] == "shutdown" for r in records(lab)), 10, "the witness's shutdown")
    node.ip("addr", "add", "10.1.0.100/24", "dev", "eth0")
    node.ip("addr", "del", "10.2.0.100/24", "dev", "eth0")
    node.ip("route", "replace", "default", "via", "10.1.0.1")
    wait_for(lambda: len(finished_moves(daemon)) == 2, 15, "the second move")
    daemon.wait_idle()  # the move has been handed to whatever plugins are enabled now
    assert len(witnessed(lab, 0)) == 1, "the new policy: no witness any more"
    assert daemon.stop() == 0


@pytest.mark.parametrize("wedged", ["blocks", "wedged"])
def test_a_wedged_plugin_stops_the_pings(lab: Lab, notify: NotifySocket, wedged: str) -> None:
    """A plain function that never returns, a coroutine that ignores its cancellation."""
    node = node_with_uplink(lab)
    daemon, _ = run_daemon(lab, node, notify, [wedged], timeout_s=0.2)
    notify.wait("WATCHDOG=1")
    move_to_second_network(node)
    watchdog = wait_for(lambda: w if (w := daemon.status()["watchdog"])["withheld"] else None, 30,
                        "the pings to be withheld")
    assert "plugin" in watchdog["withheld"] and watchdog["wedge_bound_s"] == 2 * 0.2 + 1.0
    withheld = daemon.status()["counters"]["watchdog_withheld"]
    mark = len(notify.read())
    wait_for(lambda: daemon.status()["counters"]["watchdog_withheld"] >= withheld + 3, 15, "three more ticks")
    assert [m for m in notify.read()[mark:] if "WATCHDOG=1" in m] == []
    assert any("watchdog withheld" in fields(m).get("STATUS", "") for m in notify.messages)
    daemon.proc.send_signal(signal.SIGKILL)  # what the init system does when WatchdogSec runs out
    daemon.proc.wait()


def test_sigterm_in_the_middle_of_a_move_exits_cleanly(lab: Lab, notify: NotifySocket) -> None:
    node = node_with_uplink(lab)
    daemon, _ = run_daemon(lab, node, notify, ["holder"])  # holds every move open
    move_to_second_network(node)
    wait_for(lambda: daemon.status()["moves"], 15, "the move to begin")
    assert daemon.status()["moves"][-1]["outcome"] is None, "still in flight"
    assert daemon.stop() == 0
    assert not (lab.tmp / "control.sock").exists()
    assert node.addresses("eth0") == ["10.2.0.100/24"]


def records(lab: Lab) -> list[dict[str, Any]]:
    path = lab.tmp / "witness.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def witnessed(lab: Lab, count: int) -> list[dict[str, Any]] | None:
    moves = [r for r in records(lab) if r["hook"] == "uplink_changed"]
    return moves if len(moves) >= count else None


def test_logs_for_the_journal_carry_priorities_and_no_timestamps(lab: Lab) -> None:
    """stderr is the journal when JOURNAL_STREAM names it: each line starts with <priority>."""
    node = node_with_uplink(lab)
    log = lab.tmp / "journal.log"
    log.touch()
    stat = log.stat()
    config = write(lab.tmp, enable=["witness"])
    site = plugin_site.build(lab.tmp / "site")
    env = plugin_site.environment(site, JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}",
                                  WITNESS_FILE=str(lab.tmp / "witness.jsonl"))
    with log.open("ab") as stderr:
        argv = [*ORCHESTRATOR, "run", "--config", str(config)]
        daemon = node.spawn(argv, stdout=stderr, stderr=stderr, env=env)
    wait_for(lambda: answers(lab.tmp / "control.sock"), 30, "the daemon")
    move_to_second_network(node)
    wait_for(lambda: "move 1 ok" in log.read_text(), 15, "the move's line")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    lines = log.read_text().splitlines()
    assert "<6>orchestrator: running: plugins witness, uplink eth0 10.1.0.100/24" in lines
    assert any(line.startswith("<4>orchestrator: plugin broken skipped") for line in lines)
    assert all(line[:1] == "<" and line[2:3] == ">" for line in lines), lines


def unit_reload_command(config: Path) -> list[str]:
    """The unit's ExecReload= as this environment runs it: the installed command, this config."""
    line = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecReload="))
    installed, *arguments = line.removeprefix("ExecReload=").split()
    assert installed == "/opt/orchestrator/bin/orchestrator"
    assert arguments[-2:] == ["--config", str(DEFAULT_PATH)]
    return [*ORCHESTRATOR, *arguments[:-1], str(config)]


def test_the_units_reload_fails_on_a_refused_file_and_succeeds_on_an_applied_one(
    lab: Lab, notify: NotifySocket
) -> None:
    """What `systemctl reload` reports is the exit status of the unit's ExecReload= command."""
    node = node_with_uplink(lab)
    daemon, config = run_daemon(lab, node, notify, ["witness"])
    good = config.read_text()
    config.write_text(good.replace('enable = ["witness"]', 'enable = ["witness", "nosuch"]'))
    refused = node.run(*unit_reload_command(config), check=False)
    assert refused.returncode == 2 and "nosuch" in refused.stderr and "reload refused" in refused.stderr
    config.write_text(good.replace('enable = ["witness"]', "enable = []"))
    applied = node.run(*unit_reload_command(config), check=False)
    assert applied.returncode == 0 and "plugin witness stopped" in applied.stdout, applied.stderr
    assert daemon.stop() == 0
