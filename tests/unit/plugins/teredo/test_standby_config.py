"""Hot-standby configurations ``check-config`` refuses (exit 2), each problem naming its key, the one
it accepts, and the one line of a standby's miredo.conf the daemon writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from orchestrator_teredo.miredo_conf import with_bind_address, write_bind_address
from orchestrator_testkit.configs import STANDBY_INTERFACES, STANDBY_PROFILE, standby_entry, write_teredo
from orchestrator_testkit.configs import check_config as check

MAIN_PIDFILE = "/run/orchestrator-test-miredo.pid"


def standby_files(directory: Path, interface: str = "teredo2") -> Path:
    conf = directory / f"miredo-{interface}.conf"
    conf.write_text(f"# the standby instance\nInterfaceName {interface}\nServerAddress 198.51.100.1\n")
    return conf


def entry(tmp_path: Path, interface: str = "teredo2", **keys: int) -> str:
    return standby_entry(interface, tmp_path / f"{interface}.pid", standby_files(tmp_path, interface), **keys)


def standby_config(directory: Path, standby: str = "", interfaces: str = STANDBY_INTERFACES) -> Path:
    """Two uplinks and two bound tunnels; ``standby``: the ``[[teredo.standby]]`` tables (default:
    one valid entry for teredo2)."""
    standby = standby or entry(directory)
    extra = STANDBY_PROFILE + standby
    return write_teredo(directory, Path(MAIN_PIDFILE), "198.51.100.1", extra=extra, interfaces=interfaces)


def test_two_uplinks_with_a_standby_tunnel_each_are_accepted(tmp_path: Path) -> None:
    """Accepted, with a warning: the shipped unit may write /etc/miredo/standby only."""
    conf = standby_files(tmp_path)
    result = check(standby_config(tmp_path))
    assert result.returncode == 0, result.stderr
    warning = f"warning: teredo.standby[0].config: {conf} is outside /etc/miredo/standby"
    assert warning in result.stderr and f"ReadWritePaths={tmp_path} in a drop-in" in result.stderr


def bad_entries(tmp_path: Path, case: str) -> tuple[str, str]:
    """(the ``[[teredo.standby]]`` tables, the problem ``check-config`` states) of one bad case."""
    conf = standby_files(tmp_path)
    pidfile = tmp_path / "teredo2.pid"
    at = "teredo.standby[0]"
    if case == "not-a-tunnel":
        return entry(tmp_path, "wlan0"), f"{at}.interface: 'wlan0' needs an [[interfaces]] entry with role"
    if case == "the-main-tunnel":
        return entry(tmp_path, "teredo"), f"{at}.interface: teredo is teredo.interface's already"
    if case == "shared-pidfile":
        shared = standby_entry("teredo2", MAIN_PIDFILE, conf)
        return shared, f"{at}.pidfile: {MAIN_PIDFILE} is teredo.pidfile's already"
    if case == "shared-config":
        second = standby_entry("teredo3", tmp_path / "other.pid", conf)
        return entry(tmp_path) + second, f"teredo.standby[1].config: {conf} is {at}.config's already"
    if case == "shared-table":
        both = entry(tmp_path, table=300) + entry(tmp_path, "teredo3", table=300)
        return both, f"teredo.standby[1].table: 300 is {at}.table's already"
    if case == "reserved-table":
        return entry(tmp_path, table=254), f"{at}.table: table 254 is the kernel's own"
    if case == "missing-config":
        missing = tmp_path / "nosuch.conf"
        return standby_entry("teredo2", pidfile, missing), f"{at}.config: cannot read {missing}: No such file"
    conf.write_text({"other-interface-name": "InterfaceName teredo9\n", "default-interface-name": ""}[case])
    named = "teredo9" if case == "other-interface-name" else "teredo"
    problem = f"{at}.config: {conf} sets InterfaceName {named}, not teredo2"
    return standby_entry("teredo2", pidfile, conf), problem


TEREDO3 = '\n[[interfaces]]\nmatch = "teredo3"\nrole = "tunnel"\nuplink = "wlan0"\n'


@pytest.mark.parametrize(
    "case",
    ["not-a-tunnel", "the-main-tunnel", "shared-pidfile", "shared-config", "shared-table", "reserved-table",
     "other-interface-name", "default-interface-name", "missing-config"],
)
def test_a_bad_standby_is_refused_naming_its_key(tmp_path: Path, case: str) -> None:
    standby, problem = bad_entries(tmp_path, case)
    result = check(standby_config(tmp_path, standby, STANDBY_INTERFACES + TEREDO3))
    assert result.returncode == 2 and problem in result.stderr, result.stderr


STANDBY_BINDING = 'match = "teredo2"\nrole = "tunnel"\nmip6_preference = 4\nuplink = "wlan0"\n'


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('uplink = "wlan0"', 'uplink = "wlan9"'), "interfaces[3].uplink: 'wlan9' is not an interface with"),
        (('uplink = "wlan0"', 'uplink = "lan0"'), "interfaces[3].uplink: 'lan0' is not an interface with"),
        (('role = "uplink"\nmip6_preference = 2', 'role = "uplink"\nuplink = "eth0"'),
         "interfaces[1].uplink: only an interface with role 'tunnel' is bound to an uplink"),
        (('routing_profile = "teredo2"', 'routing_profile = "teredo"'),
         "teredo.standby[0].interface: 'teredo2' uses routing profile 'teredo' as 'teredo' does"),
        ((STANDBY_BINDING, 'match = "teredo2"\nrole = "tunnel"\n'), "'teredo2' is bound to no uplink"),
    ],
    ids=["unknown-uplink", "lan-as-uplink", "uplink-on-an-uplink", "shared-profile", "unbound-standby"],
)
def test_a_bad_binding_is_refused_naming_its_key(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    assert change[0] in STANDBY_INTERFACES
    result = check(standby_config(tmp_path, interfaces=STANDBY_INTERFACES.replace(*change)))
    assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_profiles_sharing_a_metric_are_refused(tmp_path: Path) -> None:
    path = standby_config(tmp_path)
    path.write_text(path.read_text().replace("metric = 1030", "metric = 1029"))
    result = check(path)
    assert result.returncode == 2 and "metric" in result.stderr and "teredo2" in result.stderr, result.stderr


def test_bind_address_is_rewritten_in_place_or_added_the_rest_kept(tmp_path: Path) -> None:
    """miredo uses a directive's first occurrence: that line's value is rewritten (the rest of the
    line kept), the later one is not."""
    old = "  bindaddress 10.3.0.100  # old"
    text = f"# mine\nInterfaceName teredo2\n{old}\nBindAddress 10.9.9.9\nServerAddress 198.51.100.1"
    assert with_bind_address(text, "10.3.0.101") == text.replace("10.3.0.100", "10.3.0.101")
    assert with_bind_address("BindAddress 1.2.3.4\r\nX 1\r\n", "5.6.7.8") == "BindAddress 5.6.7.8\r\nX 1\r\n"
    assert with_bind_address("BindAddress\n", "5.6.7.8") == "BindAddress 5.6.7.8\n"
    server = "ServerAddress 198.51.100.1"
    assert with_bind_address(server, "10.3.0.101") == f"{server}\nBindAddress 10.3.0.101\n"
    conf = tmp_path / "miredo.conf"
    conf.write_text("InterfaceName teredo2\n")
    conf.chmod(0o640)
    assert write_bind_address(conf, "10.3.0.101") and not write_bind_address(conf, "10.3.0.101")
    assert conf.read_text() == "InterfaceName teredo2\nBindAddress 10.3.0.101\n"
    assert conf.stat().st_mode & 0o777 == 0o640 and [p.name for p in tmp_path.iterdir()] == ["miredo.conf"]


def test_a_config_the_daemon_cannot_replace_is_refused(tmp_path: Path) -> None:
    """Root may write anything, except on a read-only mount: the standby's directory is made one in
    a private mount namespace (nothing of it reaches the host), where check-config runs."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a private mount namespace")
    conf = standby_files(tmp_path)
    config = standby_config(tmp_path)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    command = [sys.executable, "-m", "orchestrator.cli", "check-config", "--config", str(config)]
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(tmp_path), *command],
                            capture_output=True, text=True, timeout=60)
    problem = f"teredo.standby[0].config: {conf} cannot be rewritten here (the daemon keeps its BindAddress)"
    assert result.returncode == 2 and problem in result.stderr, result.stderr
    assert os.access(conf, os.W_OK), "the host's view is untouched"


def test_a_config_of_another_owner_is_refused(tmp_path: Path) -> None:
    """Replacing it would need CAP_CHOWN to keep its owner, which the shipped unit withholds."""
    if os.geteuid() != 0:
        pytest.skip("needs root: chown")
    conf = standby_files(tmp_path)
    config = standby_config(tmp_path)
    os.chown(conf, 4242, 4242)
    result = check(config)
    problem = f"teredo.standby[0].config: {conf} belongs to 4242:4242, not to root:root"
    assert result.returncode == 2 and problem in result.stderr, result.stderr


def test_the_full_hooks_identity_accepts_roots_file(tmp_path: Path) -> None:
    """The full client hook validates the configuration as miredo-privproc does: uid 0, group
    nogroup.  A root-owned standby file must pass then too (it did not: no tunnel got its address
    after a configuration edit)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: setpriv")
    config = standby_config(tmp_path)
    command = [sys.executable, "-m", "orchestrator.cli", "check-config", "--config", str(config)]
    result = subprocess.run(["setpriv", "--regid=65534", "--clear-groups", *command],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
