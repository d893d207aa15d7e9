"""The service under a real systemd: a Debian 12 container with systemd as PID 1, the project installed
into it by the README's own commands, the shipped units enabled, in the node namespace of a
two-uplink lab (real DHCP, NATs, a Teredo server; the container's own miredo and standby miredo).

What test_service.py checks against a stand-in NOTIFY_SOCKET, this checks against systemd itself:
``systemctl start`` returning once the daemon is READY, STATUS=, ExecReload='s verdict, the watchdog,
a clean stop, the sandbox (nothing denied, the exposure ``systemd-analyze security`` rates), and the
standby miredo's template unit and the metrics listener and textfile under that sandbox.  Every
test ends with the journal of the window it ran in checked for a denial (the ``service`` fixture).

Skipped, with the reason, only where systemd-nspawn cannot boot a container on this host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit import REPO
from orchestrator_testkit.configs import (
    STANDBY_INTERFACES,
    STANDBY_PROFILE,
    metrics_section,
    standby_entry,
    write_teredo,
)
from orchestrator_testkit.debian_root import debian_root
from orchestrator_testkit.installation import copy_sources, wheelhouse
from orchestrator_testkit.netns import requirements_problem, wait_for
from orchestrator_testkit.orchestrator_processes import answers, lanes_idle
from orchestrator_testkit.standby_lab import STANDBY_NAT, STANDBY_TUNNEL_IF, StandbyLab
from orchestrator_testkit.systemd_container import BootFailed, SystemdContainer
from orchestrator_testkit.teredo_lab import NATS, SERVER_ADDRESS, miredo_client_config, teredo_client_ipv4

from orchestrator import control

pytestmark = pytest.mark.netns

SOURCE = "/usr/local/src/netlink-orchestrator"  # where the checkout is in the container
WHEELS = "/mnt/wheels"  # the dependencies' wheels: the container has no network but the lab
LAB_FILES = "/mnt/lab"  # the test's configuration, copied into place by the README's "$EDITOR" line
ORCHESTRATOR = "/opt/orchestrator/bin/orchestrator"
CONFIG = "/etc/orchestrator/orchestrator.toml"
CONTROL_SOCKET = "/run/orchestrator/control.sock"
STANDBY_CONF = f"/etc/miredo/standby/{STANDBY_TUNNEL_IF}.conf"
TEXTFILE = "/var/lib/prometheus/node-exporter/orchestrator.prom"
LISTEN = "127.0.0.1:9477"
UNIT = "orchestrator.service"
STANDBY_UNIT = f"miredo-standby@{STANDBY_TUNNEL_IF}.service"
UNITS = (UNIT, "miredo.service", STANDBY_UNIT)
# What a sandbox that is too tight leaves in the journal: a system call killed (SIGSYS) or refused
# (EPERM, logged by the daemon), a file it may not write, an executable it cannot run.
DENIALS = ("SIGSYS", "status=31/SYS", "203/EXEC", "Read-only file system", "Permission denied",
           "Operation not permitted")
METRICS = metrics_section(LISTEN, TEXTFILE)
EXPOSURE = 2.8  # `systemd-analyze security orchestrator.service` of the shipped unit (systemd 252)


@dataclass
class Node:
    lab: StandbyLab
    container: SystemdContainer
    config: str  # the configuration's text the service starts with

    def status(self) -> dict[str, Any]:
        """The daemon's status, asked over its control socket from the host (a Python start in the
        container per poll would cost ~0.3 s)."""
        return control.request(self.container.path(CONTROL_SOCKET), "status")

    def answers(self) -> bool:
        return answers(self.container.path(CONTROL_SOCKET))

    def wait_idle(self) -> None:
        """Every lane has nothing queued or running: what was handed to the plugins has run."""
        wait_for(lambda: lanes_idle(self.status()), 10, "idle lanes")

    def write_config(self, text: str) -> None:
        self.container.path(CONFIG).write_text(text)


def readme_install_script() -> str:
    """The README's "Installing on a real host" commands, run as they are: the checkout is at
    ``SOURCE``, ``$EDITOR`` copies the test's configuration into place, and the optional
    ``orchestrator monitor`` (it runs until Ctrl-C) is left out."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Installing on a real host\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "/path/to/netlink-orchestrator" in block and "$EDITOR" in block, block
    lines = [line for line in block.splitlines() if "orchestrator monitor" not in line]
    return "\n".join(lines).replace("/path/to/netlink-orchestrator", SOURCE)


def base_config(directory: Path) -> str:
    """Routing and teredo as a user with two uplinks writes them: the main tunnel bound to eth0,
    the standby (miredo-standby@teredo2) to wlan0, both under the shipped paths, and metrics."""
    standby = standby_entry(STANDBY_TUNNEL_IF, f"/run/miredo-{STANDBY_TUNNEL_IF}.pid", STANDBY_CONF)
    path = write_teredo(directory, "/run/miredo.pid", SERVER_ADDRESS, interfaces=STANDBY_INTERFACES,
                        extra=STANDBY_PROFILE + standby + METRICS, shipped_paths=True)
    return path.read_text()


def install(node: Node) -> None:
    """What a user does: miredo configured (both instances), the README's installation, then the
    standby's template unit as its header and the README's hot-standby section say."""
    c = node.container
    c.path("/etc/miredo/miredo.conf").write_text(miredo_client_config())
    c.path("/etc/miredo/standby").mkdir(mode=0o755)
    c.path(STANDBY_CONF).write_text(miredo_client_config(f"InterfaceName {STANDBY_TUNNEL_IF}"))
    c.path("/var/lib/prometheus/node-exporter").mkdir(mode=0o755, parents=True)
    # The watchdog test's SIGABRT must not dump a core through the host's core_pattern handler
    # (systemd-coredump, apport): a drop-in, as a local change to the unit is made.
    c.path(f"/etc/systemd/system/{UNIT}.d").mkdir(parents=True)
    c.path(f"/etc/systemd/system/{UNIT}.d/no-core.conf").write_text("[Service]\nLimitCORE=0\n")
    try:
        c.sh(f"cd {SOURCE}\nexport EDITOR='cp {LAB_FILES}/orchestrator.toml' PIP_NO_INDEX=1 "
             f"PIP_FIND_LINKS={WHEELS}\n{readme_install_script()}")
        c.sh(f"cd {SOURCE}\ninstall -m 0644 etc/systemd/miredo-standby@.service /etc/systemd/system/\n"
             f"systemctl daemon-reload\nsystemctl enable --now miredo.service {STANDBY_UNIT}")
    except AssertionError as error:
        journals = "".join(f"\n{unit}'s journal:\n{c.journal(unit)[-3000:]}" for unit in UNITS)
        raise AssertionError(f"{error}{journals}") from None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces and systemd-nspawn")
    problem = requirements_problem("systemd-nspawn", "debootstrap", "nsenter", "unshare")
    if problem:
        pytest.fail(problem)  # make test installs them: only a host that cannot boot one skips
    files = tmp_path_factory.mktemp("container")
    source = copy_sources(files / "source", "etc")
    wheels = wheelhouse(files / "wheels")
    (files / "lab").mkdir()
    config = base_config(files / "lab")
    read_only = [(wheels, WHEELS), (files / "lab", LAB_FILES)]
    with debian_root() as root, StandbyLab() as lab, SystemdContainer(
            lab, root, lab.node, binds=[(source, SOURCE)], read_only_binds=read_only) as c:
        try:
            c.boot()
        except BootFailed as error:
            pytest.skip(f"systemd-nspawn cannot boot a container on this host: {error}")
        node = Node(lab, c, config)
        install(node)
        lab.wait_teredo_address(timeout=20)
        lab.wait_teredo_address(timeout=20, iface=STANDBY_TUNNEL_IF)
        yield node


@pytest.fixture
def service(node: Node) -> Iterator[Node]:
    """The service running on the base configuration; afterwards, the journal of the test's window
    must hold no denial."""
    c = node.container
    c.systemctl("reset-failed", UNIT, check=False)  # a test that failed may have left it failed
    if c.path(CONFIG).read_text() != node.config or not node.answers():
        node.write_config(node.config)
        c.systemctl("restart", UNIT)  # also a daemon a failed test left stopped (SIGSTOP)
    c.systemctl("start", UNIT)
    cursor = c.cursor()
    yield node
    for unit in UNITS:
        journal = c.journal(unit, after=cursor)
        denied = [line for line in journal.splitlines() if any(d in line for d in DENIALS)]
        assert not denied, f"{unit}'s journal:\n" + "\n".join(denied)


def test_start_returns_once_the_daemon_is_ready_with_a_status_line(service: Node) -> None:
    c = service.container
    c.systemctl("stop", UNIT)
    c.systemctl("start", UNIT)  # Type=notify: returns on READY=1, which carries the first STATUS=
    assert (c.show(UNIT, "ActiveState"), c.show(UNIT, "SubState")) == ("active", "running")
    eth0 = service.lab.node.addresses("eth0")[0]
    assert c.show(UNIT, "StatusText").startswith(f"uplink eth0 {eth0}; "), c.show(UNIT, "StatusText")
    assert service.status()["uplink"]["address"] == eth0  # the first dump was done before READY


def test_a_move_shows_in_status_and_in_the_status_line(service: Node) -> None:
    c, lab = service.container, service.lab
    before = max((move["id"] for move in service.status()["moves"]), default=0)
    router = "nb" if lab.node.default_route() == NATS["na"].gateway else "na"
    address = lab.move_to(router)

    def finished() -> dict[str, Any] | None:
        """The move back to eth0 with its new address, once it ended (with two uplinks a new lease
        is a move to wlan0 when the old address goes, then one back)."""
        last = (service.status()["moves"] or [None])[-1]
        if last is None or last["id"] <= before or not last["outcome"]:
            return None
        return last if (last["new"] or {}).get("address") == address else None

    move = wait_for(finished, 20, "the move to end")
    assert move["outcome"] == "ok", move
    status_text = c.show(UNIT, "StatusText")
    assert status_text.startswith(f"uplink eth0 {address}; ") and f"move {move['id']} ok after" in status_text
    shown = c.run(ORCHESTRATOR, "status").stdout  # what a user reads
    assert f"uplink:   eth0 {address} via {NATS[router].gateway}\n" in shown, shown
    assert " wlan0 → eth0 ok " in shown.rstrip().splitlines()[-1], shown  # the newest move, last
    # The kick reached the container's own miredo through the sandbox: it maps the new NAT.
    wait_for(lambda: [a for a in lab.teredo_addresses() if teredo_client_ipv4(a) == NATS[router].wan], 20,
             f"a Teredo address through {router}")


def plugin_state(node: Node, name: str) -> str:
    return str(next(p["state"] for p in node.status()["plugins"] if p["name"] == name))


def test_reload_applies_a_valid_file_and_fails_on_a_broken_one(service: Node) -> None:
    c = service.container
    main_pid = c.show(UNIT, "MainPID")
    enable = 'enable = ["routing", "teredo"]'
    assert enable in service.config
    service.write_config(service.config.replace(enable, 'enable = ["routing", "teredo", "exec"]'))
    assert c.systemctl("reload", UNIT, check=False).returncode == 0
    assert plugin_state(service, "exec") == "enabled"

    service.write_config(service.config.replace("settle_ms = 300", 'settle_ms = "soon"'))
    refused = c.systemctl("reload", UNIT, check=False)
    assert refused.returncode != 0
    status = c.systemctl("status", "--no-pager", "-n", "20", UNIT, check=False).stdout
    assert "uplinks.settle_ms" in status and "reload refused" in status, status
    assert (c.show(UNIT, "ActiveState"), c.show(UNIT, "MainPID")) == ("active", main_pid)
    assert plugin_state(service, "exec") == "enabled"  # the running policy stays

    service.write_config(service.config)
    c.systemctl("reload", UNIT)
    assert plugin_state(service, "exec") == "disabled"


def test_a_stopped_daemon_is_restarted_by_the_watchdog(service: Node) -> None:
    c = service.container
    main_pid, restarts = c.show(UNIT, "MainPID"), int(c.show(UNIT, "NRestarts"))
    cursor = c.cursor()
    c.systemctl("kill", "--kill-who=main", "--signal=SIGSTOP", UNIT)

    def restarted() -> bool:
        return c.show(UNIT, "MainPID") not in ("0", main_pid) and c.show(UNIT, "ActiveState") == "active"

    wait_for(restarted, 60, "the watchdog to restart the daemon", interval=0.5)
    assert int(c.show(UNIT, "NRestarts")) == restarts + 1
    assert "Watchdog timeout" in c.journal(UNIT, after=cursor)
    assert service.status()["uplink"]["interface"] == "eth0"


def test_stop_ends_with_result_success(service: Node) -> None:
    c = service.container
    c.systemctl("stop", UNIT)
    assert (c.show(UNIT, "ActiveState"), c.show(UNIT, "Result"), c.show(UNIT, "ExecMainStatus")) == (
        "inactive", "success", "0")
    assert not c.path("/run/orchestrator").exists()  # a final stop removes the runtime directory


def test_the_sandbox_stays_at_its_exposure(service: Node) -> None:
    report = service.container.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    found = re.search(rf"Overall exposure level for {UNIT}: (\d+\.\d)", report)
    assert found and float(found[1]) <= EXPOSURE, report[-400:]


def test_the_standby_instance_follows_its_uplink_under_its_unit(service: Node) -> None:
    c, lab = service.container, service.lab
    assert c.show(STANDBY_UNIT, "ActiveState") == "active"
    first = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF)
    assert teredo_client_ipv4(first) == STANDBY_NAT.wan  # bound to wlan0: it left through nw
    cursor = c.cursor()
    address = lab.standby_new_lease().split("/")[0]
    wait_for(lambda: f"BindAddress {address}\n" in c.path(STANDBY_CONF).read_text(), 10,
             "the daemon to write the new BindAddress")
    assert f"from {address} lookup" in lab.node.ip("-4", "rule", "show").stdout
    again = lab.wait_teredo_address(timeout=20, exclude=[first], iface=STANDBY_TUNNEL_IF)
    assert teredo_client_ipv4(again) == STANDBY_NAT.wan
    service.wait_idle()
    # One SIGHUP, to the standby only (miredo logs each one it takes).
    sighup = "Reloading configuration on signal 1 (Hangup)"
    assert c.journal(STANDBY_UNIT, after=cursor).count(sighup) == 1
    assert sighup not in c.journal("miredo.service", after=cursor)


def test_metrics_are_served_and_written_under_the_sandbox(service: Node) -> None:
    c = service.container
    textfile = c.path(TEXTFILE)
    c.systemctl("stop", UNIT)
    assert not textfile.exists()  # a clean stop removes it: no stale values for node_exporter
    c.systemctl("start", UNIT)
    scrape = c.run("/opt/orchestrator/bin/python", "-c", "import urllib.request, sys; sys.stdout.write("
                   f"urllib.request.urlopen('http://{LISTEN}/metrics', timeout=5).read().decode())").stdout
    assert "orchestrator_uplink_up 1.0" in scrape, scrape[-600:]
    assert f'orchestrator_tunnel_up{{interface="{STANDBY_TUNNEL_IF}"}} 1.0' in scrape
    wait_for(lambda: textfile.exists() and "orchestrator_uplink_up 1.0" in textfile.read_text(), 5,
             "the new daemon's textfile")
    assert textfile.stat().st_mode & 0o777 == 0o644
