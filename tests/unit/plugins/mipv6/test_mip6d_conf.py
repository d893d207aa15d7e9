"""mip6d.conf from the TOML policy and back, and whether this node can run Mobile IPv6 at all."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from orchestrator_mipv6.environment import kernel_problems, mip6d_pid
from orchestrator_mipv6.mip6d_conf import InterfacePolicy, differences, parse, render
from orchestrator_testkit import REPO
from orchestrator_testkit.configs import STANDBY_INTERFACES, write
from orchestrator_testkit.orchestrator_processes import spawn_named

from orchestrator import config

SEED = """\
[[interfaces]]
match = "eth0"
role = "uplink"
mip6_preference = 1

[[interfaces]]
match = "wlan0"
role = "uplink"
mip6_preference = 2

[[interfaces]]
match = "teredo"
role = "tunnel"
mip6_preference = 3
routing_profile = "teredo"

[[interfaces]]
match = "lan0"
role = "lan"
"""

SEED_BLOCKS = """
Interface "eth0" {
\tMnIfPreference 1;
}

Interface "wlan0" {
\tMnIfPreference 2;
}

Interface "teredo" {
\tMnIfPreference 3;
\tTunnel enabled;
}
"""

# A mobile node's mip6d.conf as users write it, in UMIP's own syntax (src/gram.y).
REALISTIC = """\
# mip6d.conf for the laptop  -- Interface "commented" { MnIfPreference 9; }
NodeConfig MN;
DebugLevel 10;
DoRouteOptimizationMN disabled;
UseMnHaIPsec enabled;
KeyMngMobCapability disabled;

Interface "eth0" {
\tMnIfPreference 1;   # wired first
}
Interface "wlan0" { MnIfPreference 2; IfType MN; }
Interface "teredo" {
\tMnIfPreference 3;
\tTunnel enabled;
}
Interface "ppp0";
Interface "usb0" { Tunnel disabled; MnIfPreference 5; }

MnHomeLink "eth0" {
\tHomeAgentAddress 2001:db8:1::1;
\tHomeAddress 2001:db8:1::10/64 (2001:db8:10::/64);
\tInterface "nested" { MnIfPreference 4; }
}

IPsecPolicySet {
\tHomeAgentAddress 2001:db8:1::1;
\tHomeAddress 2001:db8:1::10/64;
\tIPsecPolicy HomeRegBinding UseESP 1 2;
\tIPsecPolicy TunnelPayload UseESP 3 4;
}
Interface "eth0" { MnIfPreference 7; }
"""


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "orchestrator.toml"
    path.write_text(text)
    return config.load(path, {}, set())


@pytest.fixture
def seed(tmp_path: Path) -> config.Config:
    return load(tmp_path, SEED)


def write_conf(tmp_path: Path, text: str, name: str = "mip6d.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- render -----------------------------------------------------------------------------------------


def test_render_writes_the_seed_policy(seed: config.Config) -> None:
    rendered = render(seed)
    header, blocks = rendered.text.split("\n", 2)[:2], rendered.text.split("\n", 2)[2]
    assert header[0].startswith(f"# Generated from {seed.path} ")
    assert "mip6d.conf" in header[1] and "include" in header[1] and header[1].startswith("#")
    assert blocks == SEED_BLOCKS
    assert rendered.problems == []
    assert '"lan0"' not in rendered.text
    assert (
        parse(rendered.text)
        == rendered.interfaces
        == {
            "eth0": InterfacePolicy(1),
            "wlan0": InterfacePolicy(2),
            "teredo": InterfacePolicy(3, tunnel=True),
        }
    )


def test_entries_without_preference_are_left_out_silently(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[[interfaces]]\nmatch = "eth1"\nrole = "uplink"\n')
    assert render(cfg).interfaces == {}
    assert render(cfg).problems == []


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (
            '[[interfaces]]\nmatch = "wlan*"\nrole = "uplink"\nmip6_preference = 2\n',
            "interfaces[0] (match 'wlan*'): an fnmatch pattern cannot name a mip6d Interface",
        ),
        (
            '[[interfaces]]\nmatch = "ppp[0-9]"\nrole = "uplink"\nmip6_preference = 4\n',
            "interfaces[0] (match 'ppp[0-9]'): an fnmatch pattern",
        ),
        (
            '[[interfaces]]\nmatch = "eth0"\nrole = "uplink"\nmip6_preference = 11\n',
            "interfaces[0] (match 'eth0'): mip6_preference 11: mip6d accepts 0..10",
        ),
        (
            '[[interfaces]]\nmatch = "a-very-long-interface"\nrole = "uplink"\nmip6_preference = 1\n',
            "interfaces[0] (match 'a-very-long-interface'): not a Linux interface name",
        ),
        (
            '[[interfaces]]\nmatch = "eth*"\nrole = "lan"\n'
            '[[interfaces]]\nmatch = "eth0"\nrole = "uplink"\nmip6_preference = 2\n',
            "interfaces[1] (match 'eth0'): interfaces[0] (match 'eth*') comes first and decides",
        ),
    ],
)
def test_an_entry_that_cannot_be_written_is_named(tmp_path: Path, entries: str, problem: str) -> None:
    cfg = load(tmp_path, entries)
    rendered = render(cfg)
    assert len(rendered.problems) == 1
    assert rendered.problems[0].startswith(problem), rendered.problems
    assert rendered.problems[0].endswith("; not written")
    assert "Interface" not in rendered.text.replace("mip6d Interface", "")
    assert parse(rendered.text) == {}


def test_a_pattern_does_not_stop_the_other_entries(tmp_path: Path) -> None:
    cfg = load(tmp_path, SEED + '[[interfaces]]\nmatch = "usb*"\nrole = "uplink"\nmip6_preference = 5\n')
    rendered = render(cfg)
    assert list(rendered.interfaces) == ["eth0", "wlan0", "teredo"]
    assert rendered.problems == [
        "interfaces[4] (match 'usb*'): an fnmatch pattern cannot name a mip6d Interface: list each "
        "interface by its name; not written"
    ]


# -- parse ------------------------------------------------------------------------------------------


def test_parse_reads_only_the_top_level_interface_blocks() -> None:
    assert parse(REALISTIC) == {
        "eth0": InterfacePolicy(1),  # the first block wins over the later preference 7
        "wlan0": InterfacePolicy(2),
        "teredo": InterfacePolicy(3, tunnel=True),
        "ppp0": InterfacePolicy(None),
        "usb0": InterfacePolicy(5, tunnel=False),
    }


def test_parse_follows_mip6d_lexer() -> None:
    text = (
        'Interface "wlan#1" { MnIfPreference 2; }  # a "#" inside a string is no comment\n'
        "}  # a stray brace does not hide what follows\n"
        'Interface "eth1"{MnIfPreference 6;Tunnel true;}\n'
        'Interface "eth2" { MnIfPreference x; Tunnel maybe; }\n'
    )
    assert parse(text) == {
        "wlan#1": InterfacePolicy(2),
        "eth1": InterfacePolicy(6, tunnel=True),
        "eth2": InterfacePolicy(None),
    }


def test_a_missing_preference_counts_as_mip6d_default() -> None:
    assert InterfacePolicy(None).effective_preference == 10


# -- differences ------------------------------------------------------------------------------------


def test_render_makes_both_tunnels_of_a_hot_standby_tunnel_enabled(tmp_path: Path) -> None:
    rendered = render(load(tmp_path, STANDBY_INTERFACES.format(tunnel="")))
    assert rendered.problems == []
    assert {name: policy for name, policy in rendered.interfaces.items() if policy.tunnel} == {
        "teredo": InterfacePolicy(3, tunnel=True),
        "teredo2": InterfacePolicy(4, tunnel=True),
    }


def test_no_differences_for_the_rendered_text(seed: config.Config, tmp_path: Path) -> None:
    home = 'MnHomeLink "eth0" {\n\tHomeAgentAddress 2001:db8:1::1;\n\tHomeAddress 2001:db8:1::10/64;\n}\n'
    assert differences(seed, write_conf(tmp_path, "NodeConfig MN;\n" + render(seed).text + home)) == []


def test_an_included_rendered_file_counts(seed: config.Config, tmp_path: Path) -> None:
    write_conf(tmp_path, render(seed).text, "interfaces.conf")
    conf = write_conf(tmp_path, 'NodeConfig MN;\ninclude "interfaces.conf"\nMnHomeLink "eth0" { }\n')
    assert differences(seed, conf) == []


def test_an_include_that_matches_nothing_is_said(seed: config.Config, tmp_path: Path) -> None:
    conf = write_conf(tmp_path, render(seed).text + 'include "/nonexistent/*.conf"\n')
    assert differences(seed, conf) == [f'{conf}: include "/nonexistent/*.conf" matches no file']


def test_each_difference_is_one_line(seed: config.Config, tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        'Interface "eth0" { MnIfPreference 2; Tunnel enabled; }\n'
        'Interface "teredo" { MnIfPreference 3; }\n'
        'Interface "eth9" { MnIfPreference 4; }\n'
        'Interface "lan0" { MnIfPreference 5; }\n',
    )
    toml = seed.path
    assert differences(seed, conf) == [
        f"{conf}: no Interface \"wlan0\"; {toml} interfaces[1] (match 'wlan0') gives MnIfPreference 2",
        f"{conf}: Interface \"eth0\" has MnIfPreference 2, {toml} interfaces[0] (match 'eth0') says 1; "
        f"has \"Tunnel enabled;\", {toml} interfaces[0] (match 'eth0') gives it role uplink "
        "without ipv6_tunnel",
        f'{conf}: Interface "teredo" lacks "Tunnel enabled;", {toml} interfaces[2] (match \'teredo\') '
        "makes it a tunnel",
        f'{conf}: Interface "eth9" is not in the TOML (no [[interfaces]] entry of {toml} matches it): add '
        "one, or remove the block",
        f"{conf}: Interface \"lan0\" makes a care-of interface of what {toml} interfaces[3] (match 'lan0') "
        "gives role lan",
    ]


def test_a_block_without_preference_is_compared_as_mip6d_reads_it(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        '[[interfaces]]\nmatch = "eth0"\nrole = "uplink"\nmip6_preference = 10\n'
        '[[interfaces]]\nmatch = "eth1"\nrole = "uplink"\n',
    )
    conf = write_conf(tmp_path, 'Interface "eth0";\nInterface "eth1";\n')
    assert differences(cfg, conf) == [
        f"{conf}: Interface \"eth1\" is used by mip6d, but {cfg.path} interfaces[1] (match 'eth1') sets "
        "no mip6_preference"
    ]


def test_a_pattern_entry_is_checked_against_the_names_mip6d_uses(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[[interfaces]]\nmatch = "wlan*"\nrole = "uplink"\nmip6_preference = 2\n')
    assert differences(cfg, write_conf(tmp_path, 'Interface "wlan0" { MnIfPreference 2; }\n')) == []
    conf = write_conf(tmp_path, 'Interface "wlan1" { MnIfPreference 3; }\n', "other.conf")
    assert differences(cfg, conf) == [
        f"{conf}: Interface \"wlan1\" has MnIfPreference 3, {cfg.path} interfaces[0] (match 'wlan*') says 2"
    ]


def test_an_unreadable_file_is_one_line(seed: config.Config, tmp_path: Path) -> None:
    missing = tmp_path / "nosuch.conf"
    assert differences(seed, missing) == [f"{missing}: cannot read: No such file or directory"]


# -- the kernel ---------------------------------------------------------------------------------------

RELEASE = "6.1.0-test"


def fake_kernel(root: Path, config_text: str, *, where: str = "proc") -> Path:
    if where == "proc":
        (root / "proc").mkdir(parents=True, exist_ok=True)
        (root / "proc" / "config.gz").write_bytes(gzip.compress(config_text.encode()))
    else:
        (root / "boot").mkdir(parents=True, exist_ok=True)
        (root / "boot" / f"config-{RELEASE}").write_text(config_text)
    return root


def test_a_kernel_with_both_options_is_fine(tmp_path: Path) -> None:
    root = fake_kernel(tmp_path, "CONFIG_IPV6=y\nCONFIG_IPV6_MIP6=y\nCONFIG_IPV6_TUNNEL=y\n")
    assert kernel_problems(RELEASE, root=root) == []


def test_modules_count_when_loaded_or_installed(tmp_path: Path) -> None:
    root = fake_kernel(tmp_path, "CONFIG_IPV6_MIP6=m\nCONFIG_IPV6_TUNNEL=m\n", where="boot")
    (root / "sys/module/mip6").mkdir(parents=True)
    modules = root / f"lib/modules/{RELEASE}/kernel/net/ipv6"
    modules.mkdir(parents=True)
    (modules / "ip6_tunnel.ko.zst").write_bytes(b"")
    assert kernel_problems(RELEASE, root=root) == []


def test_a_module_that_is_nowhere_is_a_problem(tmp_path: Path) -> None:
    root = fake_kernel(tmp_path, "CONFIG_IPV6_MIP6=y\nCONFIG_IPV6_TUNNEL=m\n", where="boot")
    assert kernel_problems(RELEASE, root=root) == [
        f"kernel: CONFIG_IPV6_TUNNEL=m (/boot/config-{RELEASE}) but module ip6_tunnel is neither loaded nor "
        f"installed under /lib/modules/{RELEASE}: no IPv6-in-IPv6 tunnel (ip6tnl): mip6d carries the home "
        "address's traffic to the home agent in one"
    ]


def test_options_not_set_are_said_plainly(tmp_path: Path) -> None:
    root = fake_kernel(tmp_path, "# CONFIG_IPV6_MIP6 is not set\nCONFIG_IPV6_TUNNEL=y\n")
    assert kernel_problems(RELEASE, root=root) == [
        "kernel: CONFIG_IPV6_MIP6 is not set (/proc/config.gz): no Mobile IPv6 in the kernel (Home Address "
        "option, type 2 routing header): mip6d cannot work"
    ]


def test_an_option_absent_from_the_config_is_not_set(tmp_path: Path) -> None:
    root = fake_kernel(tmp_path, "CONFIG_IPV6_TUNNEL=y\n", where="boot")
    (problem,) = kernel_problems(RELEASE, root=root)
    assert problem.startswith("kernel: CONFIG_IPV6_MIP6 is not set ")


def test_proc_config_comes_before_boot(tmp_path: Path) -> None:
    fake_kernel(tmp_path, "# CONFIG_IPV6_MIP6 is not set\n# CONFIG_IPV6_TUNNEL is not set\n", where="boot")
    fake_kernel(tmp_path, "CONFIG_IPV6_MIP6=y\nCONFIG_IPV6_TUNNEL=y\n")
    assert kernel_problems(RELEASE, root=tmp_path) == []


def test_no_kernel_config_is_one_line(tmp_path: Path) -> None:
    assert kernel_problems(RELEASE, root=tmp_path) == [
        f"kernel: cannot check for Mobile IPv6: no /proc/config.gz and no /boot/config-{RELEASE} "
        "(modprobe configs, or install the kernel's config file)"
    ]


def test_this_machine_has_no_mobile_ipv6() -> None:
    """FIELD-NOTES: this kernel lacks MIPv6 and ip6tnl; the check must say so, option by option."""
    raw = Path("/proc/config.gz")
    if not raw.exists():
        pytest.skip("no /proc/config.gz here")
    text = gzip.decompress(raw.read_bytes()).decode()
    not_set = [o for o in ("CONFIG_IPV6_MIP6", "CONFIG_IPV6_TUNNEL") if f"# {o} is not set" in text]
    problems = kernel_problems()
    for option in not_set:
        assert any(p.startswith(f"kernel: {option} is not set (/proc/config.gz)") for p in problems), problems
    assert len(problems) >= len(not_set)


# -- mip6d --------------------------------------------------------------------------------------------


def test_mip6d_is_found_by_its_command_name(tmp_path: Path) -> None:
    for pid, comm in ((1, "systemd"), (42, "mip6d"), (7, "mip6d"), (9, "mip6d-helper")):
        (tmp_path / "proc" / str(pid)).mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "proc" / "self").mkdir()
    (tmp_path / "proc" / "99").mkdir()  # a process that ended while we looked: no comm
    assert mip6d_pid(root=tmp_path) == 7


def test_no_mip6d_is_none(tmp_path: Path) -> None:
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "comm").write_text("init\n")
    assert mip6d_pid(root=tmp_path) is None


def test_a_real_process_called_mip6d_is_found(tmp_path: Path) -> None:
    if mip6d_pid() is not None:
        pytest.skip("a real mip6d runs here")
    sleep = shutil.which("sleep")
    assert sleep is not None
    stand_in = tmp_path / "mip6d"
    shutil.copy(sleep, stand_in)
    process = spawn_named([str(stand_in), "30"], "mip6d")
    try:
        assert mip6d_pid() == process.pid
    finally:
        process.kill()
        process.wait()
    assert mip6d_pid() is None


def test_the_command_renders_the_shipped_policy_and_names_what_it_cannot(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "orchestrator.cli", "mip6d-conf", "--config"]
    shipped_path = REPO / "etc" / "orchestrator.toml"
    shipped = subprocess.run([*command, str(shipped_path)], capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stderr
    assert 'Interface "teredo" {\n\tMnIfPreference 3;\n\tTunnel enabled;\n}' in shipped.stdout
    patterns = write(tmp_path, enable=["mipv6"])  # eth* and lan*: a pattern is no mip6d name
    result = subprocess.run([*command, str(patterns)], capture_output=True, text=True)
    assert result.returncode == 1 and "eth*" in result.stderr and 'Interface "teredo"' in result.stdout
