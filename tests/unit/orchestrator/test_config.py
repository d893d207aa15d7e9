"""Bad configurations: `orchestrator check-config` exits 2 with one line naming each problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator_testkit import REPO
from orchestrator_testkit.configs import check_config as check
from orchestrator_testkit.configs import write

from orchestrator import Key, Section, plugins
from orchestrator.config import CORE_SECTIONS
from orchestrator.schema import KINDS, schema_problems


def test_shipped_configuration_is_valid() -> None:
    result = check(REPO / "etc" / "orchestrator.toml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_valid_test_configuration(tmp_path: Path) -> None:
    assert check(write(tmp_path)).returncode == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[daemon]\nplugin_timeout = 3\n", "daemon.plugin_timeout: unknown key"),
        ('[uplinks]\ncarrier_grace_ms = "2s"\n', "uplinks.carrier_grace_ms: expected an integer, got \"2s\""),
        ("[daemon]\nmove_timeout_s = -1\n", "daemon.move_timeout_s: expected a value >= 0.1, got -1"),
        ("[uplinks]\nsettle_ms = true\n", "uplinks.settle_ms: expected an integer, got true"),
        ('[plugins]\nenable = ["routing", "nosuch"]\n', "plugins.enable[1]: unknown plugin 'nosuch'"),
        (
            '[[interfaces]]\nmatch = "wlan0"\nrole = "wan"\n',
            "interfaces[0].role: expected one of uplink, tunnel, lan, got \"wan\"",
        ),
        ('[[interfaces]]\nrole = "uplink"\n', "interfaces[0].match: missing"),
        ('[uplinks]\nreference = "example.org"\n', "uplinks.reference: expected an IPv4 address literal"),
        ('[teredo]\nserver = "teredo.example"\n', "teredo.server: expected an IPv4 address literal"),
        ("[routing.profiles.t]\nmtu = 900\n", "routing.profiles.t.mtu: expected \"tunnel\" or an MTU"),
        ("[nosuch]\nx = 1\n", "nosuch: unknown section"),
        ('[daemon]\nlog_level = "chatty"\n', "daemon.log_level: expected one of debug, info"),
        ('[metrics]\nlisten = "9477"\n', "metrics.listen: expected ADDRESS:PORT with a port from 1 to 65535"),
        ('[metrics]\nlisten = "localhost:9477"\n', "metrics.listen: \"localhost\" is not an IP address"),
        ('[metrics]\nlisten = "::1:9477"\n', "metrics.listen: \"::1\" is not an IP address literal"),
        ('[metrics]\nlisten = "127.0.0.1:70000"\n', "metrics.listen: expected ADDRESS:PORT with a port"),
        ('[metrics]\ntextfile = "/nonexistent/o.prom"\n', "metrics.textfile: no directory /nonexistent"),
        ('[metrics]\ntextfile = "o.prom"\n', "metrics.textfile: expected an absolute path ending in .prom"),
    ],
)
def test_each_problem_names_the_key(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(extra)
    result = check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{path}: {expected}" in result.stderr, result.stderr


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[daemon]\nplugin_timeout = 3\nmove_timeout_s = true\n[uplinks]\nsettle_ms = 1e9\n")
    lines = check(path).stderr.strip().splitlines()
    assert len(lines) == 3, lines


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[daemon]\nlog_level = "info"\ncontrol_socket = \n')
    result = check(path)
    assert result.returncode == 2
    assert "syntax error" in result.stderr and "line 3" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "absent.toml")
    assert result.returncode == 2
    assert "absent.toml: cannot read: no such file" in result.stderr


def test_plugins_check_what_a_schema_cannot(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[plugins]\nenable = ["routing", "teredo"]\n[teredo]\ninterface = "eth0"\n'
        '[[interfaces]]\nmatch = "teredo"\nrole = "tunnel"\nrouting_profile = "nosuch"\n'
    )
    problems = check(path).stderr
    assert "interfaces[0].routing_profile: no [routing.profiles.nosuch] section" in problems
    assert "teredo.interface: 'eth0' needs an [[interfaces]] entry with role 'tunnel'" in problems


def test_routing_profile_only_on_a_tunnel(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[interfaces]]\nmatch = "eth0"\nrole = "uplink"\nrouting_profile = "teredo"\n')
    expected = "interfaces[0].routing_profile: only a tunnel (role tunnel, or an uplink with ipv6_tunnel)"
    assert expected in check(path).stderr


NAME = Key("str", "a name")
BY_NAME = "expected its keys as a mapping by name (a string), got"


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (Section([NAME]), f"section 's': {BY_NAME} list"),
        (Section({1: NAME}), f"section 's': {BY_NAME} the names [1]"),
        (
            Section({}, tables={"t": Section({"k": Key("string", "a name")})}),
            f"section 's', key 't.<name>.k': unknown kind 'string' (known kinds: {', '.join(KINDS)})",
        ),
        (Section({}, tables={"t": {"k": NAME}}),
         "section 's', table 't.<name>': expected a Section, got dict"),
    ],
    ids=["keys-listed", "key-named-by-a-number", "kind-in-a-sub-table", "sub-table-not-a-section"],
)
def test_a_malformed_schema_is_described_by_section_and_key(section: Section, problem: str) -> None:
    assert schema_problems({"s": section}) == [problem]


def test_the_core_and_built_in_schemas_are_well_formed() -> None:
    assert schema_problems(CORE_SECTIONS) == []
    assert schema_problems(plugins.sections(plugins.discover())) == []
