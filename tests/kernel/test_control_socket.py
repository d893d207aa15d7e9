"""The daemon's control socket in a lab namespace: root's alone by default, its group's members may
ask read-only commands (as uid 65534, nobody, through the real command line of an installation every
user can read), and a group the daemon cannot give the socket to stops it at start.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from orchestrator_testkit.configs import write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.orchestrator_processes import (
    NOBODY,
    NOGROUP,
    ORCHESTRATOR,
    DaemonProcess,
    answers,
    socket_owner_and_mode,
    world_readable_orchestrator,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to see other users' credentials")


@pytest.mark.netns
def test_the_daemons_socket_is_roots_alone_by_default(lab: Lab) -> None:
    process = DaemonProcess(lab.namespace("node"), write(lab.tmp), lab.tmp / "control.sock")
    assert socket_owner_and_mode(process.socket) == (0, 0, 0o600)
    assert process.stop() == 0


@pytest.fixture
def installed() -> Iterator[list[str]]:
    """The command line of an installation the user nobody can read (the checkout may be root's
    private directory), removed after the test."""
    with world_readable_orchestrator() as command:
        yield command


def as_nobody(installed: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """An ``orchestrator`` command of ``installed`` run as uid nobody whose only group is nogroup."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups"]
    return subprocess.run([*drop, *installed, *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.netns
def test_control_group_members_run_status_but_not_reload(lab: Lab, installed: list[str]) -> None:
    lab.tmp.chmod(0o711)  # the member reaches the config and the socket by name, and lists nothing
    config = write(lab.tmp, daemon='control_group = "nogroup"')
    process = DaemonProcess(lab.namespace("node"), config, lab.tmp / "control.sock")
    assert socket_owner_and_mode(process.socket) == (0, NOGROUP, 0o660)
    status = as_nobody(installed, "status", "--json", "--config", str(config))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["config"] == str(config)
    reload = as_nobody(installed, "reload", "--config", str(config))
    assert reload.returncode == 1
    assert reload.stderr == "orchestrator: permission denied: 'reload' is for root only\n"
    assert process.stop() == 0


@pytest.mark.netns
def test_a_group_the_daemon_cannot_give_the_socket_to_stops_it_at_start(lab: Lab) -> None:
    """Root without CAP_CHOWN (the shipped unit's bounding set) and outside the group."""
    config = write(lab.tmp, daemon=f"control_group = {NOGROUP}")
    log = lab.tmp / "daemon.log"
    argv = ["setpriv", "--bounding-set", "-chown", *ORCHESTRATOR, "run", "--config", str(config)]
    process = lab.namespace("node").spawn(argv, log=log)
    sock = lab.tmp / "control.sock"
    wait_for(lambda: process.poll() is not None or answers(sock), 60, "the daemon to stop or answer")
    assert process.returncode == 1
    assert f"cannot give {sock} to group {NOGROUP} (daemon.control_group): Operation not permitted; " \
        "without CAP_CHOWN the daemon must be a member of that group" in log.read_text()
    assert not sock.exists()
