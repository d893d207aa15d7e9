"""The generated shell hook's own parts: what it is generated from, how it reads an address, and the
markers a run leaves in the tunnel's alias.  The runs themselves, against the kernel and against the
full hook, are in tests/kernel/test_routing.py."""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator_routing import markers, shell_hook
from orchestrator_routing.endstate import Step
from orchestrator_routing.hook import compile_config
from orchestrator_routing.profile import Profile
from orchestrator_testkit import REPO
from orchestrator_testkit.configs import write

from orchestrator import load_config

BODY = REPO / "plugins" / "routing" / "client-hook.sh"
A, LL = "2001:0:c633:6401:8000:f227:9c3a:73f0", "fe80::ffff:ffff:ffff"


def test_the_shipped_client_hook_is_what_the_generator_writes_for_opt() -> None:
    """etc/miredo/client-hook is the hook for the shipped configuration, installed under /opt
    (``scripts/shipped-client-hook`` writes it)."""
    shipped = runpy.run_path(str(REPO / "scripts" / "shipped-client-hook"))
    assert shipped["main"](["--check"]) == 0


def test_every_path_in_the_hook_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """miredo runs the hook in / with no PATH: a relative --config given when it was printed
    must not end up relative in it."""
    extra = "[routing.profiles.teredo]\n[teredo]\n"
    config = write(tmp_path, enable=["routing", "teredo"], tunnel_profile="teredo", extra=extra)
    monkeypatch.chdir(tmp_path)
    text = shell_hook.script(compile_config(config.name), config.name, "cache", sys.executable)
    assert f"config={config}\n" in text
    assert f"--config {config} --cache-dir {tmp_path / 'cache'} " in text
    assert re.search(r"^ip=/\S+/ip$", text, re.MULTILINE)


def compiled_with(interfaces: list[tuple[str, bool, str]], prefixes: dict[str, str]) -> dict[str, object]:
    user = Profile("teredo", None, 32765, 1029, 1400, 128, False)
    followed = Profile("sixtofour", 100, 32765, 1029, 1400, 16, True, None, True)
    return {
        "interfaces": interfaces,
        "profiles": {"teredo": user.to_plain(), "sixtofour": followed.to_plain()},
        "prefixes": prefixes,
    }


def profile_of(compiled: dict[str, object], name: str) -> str:
    """What the generated ``profile_of`` says of ``name``: its values, or "full hook"."""
    function = shell_hook._profile_of(compiled)
    script = f'{function}\nif profile_of "$1"; then echo "$prefix_pattern $metric"; else echo "full hook"; fi'
    return run_sh(script, name).strip()


def run_sh(script: str, *arguments: str) -> str:
    """``sh -c SCRIPT`` with ``arguments`` as its $1, $2...; what it printed."""
    command = ["sh", "-c", script, "sh", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return result.stdout


def test_the_first_matching_entry_decides_as_in_the_daemon() -> None:
    entries = [("eth*", False, ""), ("teredo", True, "teredo"), ("tere*", True, "teredo")]
    prefixes = {"teredo": "2001::/32", "teredo2": "2001::/29"}
    compiled = compiled_with([*entries, ("6to4", True, "sixtofour")], prefixes)
    assert profile_of(compiled, "teredo") == "20010000* 1029"
    assert profile_of(compiled, "teredo2") == "2001000[01234567]* 1029"  # its declared prefix, by name
    assert profile_of(compiled, "terebinth") == "* 1029"  # the pattern's, with no prefix declared
    assert profile_of(compiled, "eth0") == "full hook"  # an uplink: the full hook says it is no tunnel
    assert profile_of(compiled, "6to4") == "full hook"  # follow_address: not a hook's profile
    assert profile_of(compiled, "ppp0") == "full hook"


def test_a_bracket_pattern_leaves_the_rest_to_the_full_hook() -> None:
    """fnmatch and the shell read brackets differently: from such an entry on, the full hook decides."""
    entries = [("teredo", True, "teredo"), ("tun[0-9]", True, "teredo"), ("x*", True, "teredo")]
    compiled = compiled_with(entries, {})
    assert profile_of(compiled, "teredo") == "* 1029"
    assert profile_of(compiled, "tun1") == "full hook"
    assert profile_of(compiled, "xy") == "full hook"


def canonical_function() -> str:
    """The body's ``canonical`` and ``hex_groups`` functions, alone."""
    body = BODY.read_text()
    return "\n".join(re.findall(r"^(?:canonical|hex_groups)\(\) \{\n.*?^\}$", body, re.MULTILINE | re.DOTALL))


def shell_reads(texts: list[str]) -> list[str | None]:
    """The 32 hexadecimal digits the shell reads in each text, None where it hands the text on."""
    loop = 'for text in "$@"; do if canonical "$text"; then echo "$hex"; else echo -; fi; done'
    out = run_sh(f"{canonical_function()}\n{loop}", *texts)
    return [None if line == "-" else line for line in out.splitlines()]


def expected_reading(text: str) -> str | None:
    """inet_ntop's spelling only: any other (valid or not) is the full hook's to judge."""
    try:
        raw = socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None
    return raw.hex() if socket.inet_ntop(socket.AF_INET6, raw) == text and "." not in text else None


SPELLINGS = [A, LL, "::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1::1", "1:0:0:2::3", "1:0:0:2:0:0:0:3",
             "2001:0db8::1", "2001:DB8::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", ":1::2",
             "1::2:", "1:0::2", "1:2:3:4:5:6::8", "::ffff:1.2.3.4", "", ":::", "1::2::3", "12345::1", "g::1"]


def test_the_shell_reads_inet_ntop_spellings_and_hands_on_the_rest() -> None:
    assert shell_reads(SPELLINGS) == [expected_reading(text) for text in SPELLINGS]


groups = st.lists(st.sampled_from([0, 0, 0, 1, 0x10, 0xABC, 0xFFFF]), min_size=8, max_size=8)


@settings(max_examples=20, deadline=None)
@given(st.lists(groups, min_size=10, max_size=10))
def test_the_shell_reads_addresses_as_inet_ntop_writes_them(addresses: list[list[int]]) -> None:
    texts = []
    for address in addresses:
        raw = b"".join(group.to_bytes(2, "big") for group in address)
        texts += [socket.inet_ntop(socket.AF_INET6, raw), ":".join(f"{group:x}" for group in address)]
    assert shell_reads(texts) == [expected_reading(text) for text in texts]


def test_markers_read_back_what_a_run_writes() -> None:
    up = markers.parse("teredo", markers.done(Step("up", "teredo", A, LL, 1280)))
    assert up is not None and not up.running and up.step is not None
    assert (up.step.address, up.step.lladdress, up.step.mtu) == (A, LL, 1280)
    no_mtu = markers.parse("teredo", markers.done(Step("up", "teredo", A, LL)))
    assert no_mtu is not None and no_mtu.step is not None and no_mtu.step.mtu is None
    begun = markers.parse("teredo", markers.applying("down"))
    assert begun is not None and begun.running and begun.state == "down"
    flushed = markers.parse("teredo", markers.done(Step("destroy", "teredo")))
    assert flushed is not None and not flushed.running and flushed.step is None


@pytest.mark.parametrize(
    "alias",
    [None, "", "uplink to the office", "orchestrator hook:", "orchestrator hook: applying sideways",
     f"orchestrator hook: up {A} {LL}", f"orchestrator hook: up {A} not-an-address 1280",
     f"orchestrator hook: up {A} {LL} 12x0", "orchestrator hook: up"],
)
def test_an_alias_that_is_no_marker_is_ignored(alias: str | None) -> None:
    assert markers.parse("teredo", alias) is None


def test_the_shell_writes_the_markers_the_daemon_reads() -> None:
    """The body spells the markers out; they must be the ones ``markers`` parses."""
    body = BODY.read_text()
    assert f"alias_prefix='{markers.PREFIX}'" in body
    for state in ("up", "down", "destroy"):
        assert f'"$alias_prefix {markers.APPLYING} {state}"' in body


def test_check_config_says_when_the_installed_hook_is_unsafe_stale_or_another(tmp_path: Path) -> None:
    extra = "[routing.profiles.teredo]\n[teredo]\n"
    path = write(tmp_path, enable=["routing", "teredo"], tunnel_profile="teredo", extra=extra)
    config = load_config(path)
    hook = tmp_path / "client-hook"
    text = shell_hook.script(compile_config(str(path)), str(path), "/run/x", sys.executable)
    hook.write_text(text)
    assert shell_hook.installed_problems(str(hook), config) == []
    hook.chmod(0o777)
    os.utime(path, (hook.stat().st_mtime + 1,) * 2)
    problems = shell_hook.installed_problems(str(hook), config)
    assert problems[0] == f"{hook}: must be root's and writable by nobody else (the hook runs as root): " + (
        f"owner uid {os.getuid()}, mode 0777"
    )
    assert problems[1].startswith(f"{hook} is older than {path}: each run goes to the full hook")
    hook.write_text(text.replace("metric=1029", "metric=1031"))  # printed from another configuration
    problems = shell_hook.installed_problems(str(hook), config)
    assert problems[-1].startswith(f"{hook} is not the hook of this configuration and installation")
    (tmp_path / "other-hook").write_text("#!/bin/sh\nexit 0\n")  # not ours: not judged
    assert shell_hook.installed_problems(str(tmp_path / "other-hook"), config) == []
