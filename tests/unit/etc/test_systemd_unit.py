"""The systemd unit (etc/systemd/orchestrator.service): systemd accepts it, and it says what the daemon
needs.

``systemd-analyze verify`` and ``systemd-analyze security --offline=yes`` read unit files without a
running systemd (they work in a container where systemd is not PID 1) and start, enable or link
nothing.  They check a copy in a temporary directory whose ExecStart is this environment's
``orchestrator`` (verify insists the command exists); the search path is that directory plus the
vendor unit directories, so units and drop-ins installed under /etc or /run on this machine play no
part.  ``systemd-analyze`` comes with the ``systemd`` package, which scripts/install-deps installs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from orchestrator_routing.hook import DEFAULT_CACHE_DIR
from orchestrator_testkit import REPO

from orchestrator.config import DAEMON, DEFAULT_PATH

UNIT = REPO / "etc" / "systemd" / "orchestrator.service"
STANDBY_TEMPLATE = REPO / "etc" / "systemd" / "miredo-standby@.service"
STANDBY_DIRECTORY = "/etc/miredo/standby"
TEXTFILE_DIRECTORY = "/var/lib/prometheus/node-exporter"
INSTALLED_COMMAND = "/opt/orchestrator/bin/orchestrator"
VENDOR_UNIT_DIRS = ("/usr/lib/systemd/system", "/lib/systemd/system")
# `systemd-analyze security` exposure, x10 (2.8 when written): loosening the sandbox fails here.
MAX_EXPOSURE = 30


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values in order, the way systemd reads them: a key may repeat, an empty
    assignment resets the list, ``#``/``;`` start comments, a trailing backslash continues a line."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{line!r} outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"not a Key=Value line: {line!r}"
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def words(values: list[str]) -> set[str]:
    return {word for value in values for word in value.split()}


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse(UNIT.read_text())


@pytest.fixture(scope="module")
def template() -> dict[str, dict[str, list[str]]]:
    return parse(STANDBY_TEMPLATE.read_text())


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= is set {len(values)} times: {values}"
    return values[0]


def test_the_daemon_runs_as_a_notify_service_whose_reload_tells_the_truth(unit):
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == f"{INSTALLED_COMMAND} run --config {DEFAULT_PATH}"
    # the reload waits for the daemon's verdict and fails when the file is refused; no /bin/kill
    assert one(unit, "Service", "ExecReload") == f"{INSTALLED_COMMAND} reload --config {DEFAULT_PATH}"
    assert re.fullmatch(r"[1-9][0-9]*s", one(unit, "Service", "WatchdogSec"))
    assert one(unit, "Service", "Restart") == "on-failure"
    # An invalid configuration (exit 2) is not retried in a loop.
    assert one(unit, "Service", "RestartPreventExitStatus") == "2"


def test_the_runtime_directory_is_where_the_sockets_and_the_hook_cache_live(unit):
    name = one(unit, "Service", "RuntimeDirectory")
    assert name == "orchestrator"
    assert Path(DAEMON.keys["control_socket"].default).parent == Path("/run") / name
    assert Path(DEFAULT_CACHE_DIR) == Path("/run") / name
    assert one(unit, "Service", "RuntimeDirectoryMode") == "0755"
    # The full client hook's cache and the uplink record survive the daemon's restarts.
    assert one(unit, "Service", "RuntimeDirectoryPreserve") in ("restart", "yes")


def test_it_starts_after_miredo_and_wants_it(unit):
    assert "miredo.service" in words(unit["Unit"].get("After", []))
    assert "miredo.service" in words(unit["Unit"].get("Wants", []))
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_root_keeps_exactly_the_capabilities_the_work_needs(unit):
    service = unit["Service"]
    assert words(service.get("CapabilityBoundingSet", [])) == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_KILL"}
    # root, on purpose: miredo's hook trusts /run/orchestrator only when root owns it
    for key in ("User", "DynamicUser", "AmbientCapabilities"):
        assert key not in service, f"{key}= is set"
    assert one(unit, "Service", "NoNewPrivileges") == "yes"


def test_the_sandbox_is_there(unit):
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "SystemCallFilter": "@system-service",
        "UMask": "0077",
    }
    assert {key: one(unit, "Service", key) for key in expected} == expected
    assert words(unit["Service"]["RestrictAddressFamilies"]) == {
        "AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_INET", "AF_INET6"
    }
    # The mipv6 plugin looks for the mip6 and ip6_tunnel modules under /lib/modules, which
    # ProtectKernelModules=yes would hide (CAP_SYS_MODULE and @module are out anyway).
    assert one(unit, "Service", "ProtectKernelModules") == "no"
    # miredo and mip6d are found through other processes' /proc entries, the kernel's build
    # configuration through /proc/config.gz.
    assert unit["Service"].get("ProtectProc", ["default"]) == ["default"]
    assert unit["Service"].get("ProcSubset", ["all"]) == ["all"]


def test_the_standby_configurations_and_the_textfile_are_the_only_files_it_may_write(unit, template):
    """The template keeps its configurations in a directory the daemon may write; the other is
    Debian's node exporter's textfile directory."""
    assert words(unit["Service"]["ReadWritePaths"]) == {f"-{STANDBY_DIRECTORY}", f"-{TEXTFILE_DIRECTORY}"}
    assert one(template, "Service", "ExecStart") == (
        f"/usr/sbin/miredo -f -c {STANDBY_DIRECTORY}/%i.conf -p /run/miredo-%i.pid"
    )


def test_a_standby_miredo_starts_once_the_daemon_has_written_its_file(unit, template):
    """The daemon writes BindAddress before READY; miredo, started after it, reads that file; the
    daemon itself is ordered after the main miredo only: no ordering cycle."""
    assert words(template["Unit"]["After"]) == words(template["Unit"]["Wants"]) == {"orchestrator.service"}
    assert "ExecReload" not in template["Service"], "the daemon sends the SIGHUPs; no /bin/kill needed"
    assert not any("miredo-standby" in value for value in unit["Unit"].get("After", []))


# -- systemd's own checks -----------------------------------------------------------------------------


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze not found: scripts/install-deps installs it (Debian package systemd)")
    return found


def installable_copy(directory: Path, text: str | None = None) -> Path:
    """The unit as it would be installed, running this environment's orchestrator."""
    command = Path(sys.executable).parent / "orchestrator"
    assert os.access(command, os.X_OK), f"{command} is not installed (pip install -e .)"
    text = UNIT.read_text() if text is None else text
    for key in ("ExecStart", "ExecReload"):
        assert text.count(f"{key}={INSTALLED_COMMAND} ") == 1
        text = text.replace(f"{key}={INSTALLED_COMMAND} ", f"{key}={command} ")
    copy = directory / UNIT.name
    copy.write_text(text)
    return copy


def analyze(*argv: str | Path, unit_dir: Path) -> subprocess.CompletedProcess[str]:
    # No trailing ":" in SYSTEMD_UNIT_PATH: only these directories, not /etc or /run.
    search = ":".join([str(unit_dir), *(d for d in VENDOR_UNIT_DIRS if Path(d).is_dir())])
    env = {**os.environ, "SYSTEMD_UNIT_PATH": search, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run(
        [systemd_analyze(), *map(str, argv)],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL,
    )


def verify_complaints(name: str | Path, unit_dir: Path) -> str | None:
    """What ``systemd-analyze verify`` says about the unit ``name`` (a file, or a unit found in
    ``unit_dir``), or None when it accepts it silently.  It exits 0 even on keys it ignores (unknown,
    unparsable): any output is a complaint."""
    result = analyze("verify", "--man=no", "--generators=no", name, unit_dir=unit_dir)
    said = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or said:
        return f"exit status {result.returncode}\n{said}"
    return None


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    complaints = verify_complaints(installable_copy(tmp_path), tmp_path)
    assert complaints is None, f"systemd-analyze verify {UNIT.name}:\n{complaints}"


def test_systemd_analyze_verify_accepts_a_standby_instance(tmp_path):
    """Verified as an instance (``miredo-standby@teredo2``), as systemd loads it: %i expanded."""
    (tmp_path / STANDBY_TEMPLATE.name).write_text(STANDBY_TEMPLATE.read_text())
    if shutil.which("miredo", path="/usr/sbin") is None:
        pytest.fail("/usr/sbin/miredo not found: scripts/install-deps installs it (Debian package miredo)")
    complaints = verify_complaints("miredo-standby@teredo2.service", tmp_path)
    assert complaints is None, f"systemd-analyze verify miredo-standby@teredo2:\n{complaints}"


def test_a_careless_edit_is_what_verify_reports(tmp_path):
    """The check above is not vacuous: a value systemd cannot parse, which it would only warn
    about and ignore at run time, fails it."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly")
    complaints = verify_complaints(installable_copy(tmp_path, broken), tmp_path)
    assert complaints is not None and "strictly" in complaints, complaints


def test_the_sandbox_exposure_stays_low(tmp_path):
    copy = installable_copy(tmp_path)
    result = analyze(
        "security", "--offline=yes", f"--threshold={MAX_EXPOSURE}", "--no-pager", copy, unit_dir=tmp_path
    )
    assert result.returncode == 0, (
        f"systemd-analyze security: exposure above {MAX_EXPOSURE / 10}\n{result.stdout}{result.stderr}"
    )
    assert re.search(r"Overall exposure level for orchestrator\.service: \d", result.stdout), result.stdout
