"""The benches' baseline client hooks, run as miredo runs them (only its variables, no PATH, in
``/``) with a stand-in for ``ip`` that records its arguments: the operations and their order are
what each hook's docstring promises.  bench/teredo_move.py runs them under real miredo.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from orchestrator_testkit.baseline_hooks import minimal_hook, seed_hook
from orchestrator_testkit.teredo_lab import _check_hook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the hooks are written root-owned")

ADDRESS = "2001:0:c633:6401:8000:f227:9c3a:1"
OLD = "2001:0:c633:6401:8000:f227:9c3a:2"
LL = "fe80::ffff:ffff:ffff"


def recording_ip(directory: Path) -> tuple[Path, Path]:
    """A stand-in for ``ip`` appending its arguments, one run a line, to a log; both paths."""
    log = directory / "ip.log"
    ip = directory / "ip"
    ip.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\n")
    ip.chmod(0o755)
    return ip, log


def run(hook: Path, log: Path, **env: str) -> list[str]:
    """The ``ip`` runs of one hook run with ``env`` and nothing else."""
    log.write_text("")
    subprocess.run([str(hook)], env={"IFACE": "teredo", "IFINDEX": "7", **env}, cwd="/", check=True)
    return log.read_text().splitlines()


def test_the_minimal_hook_makes_the_address_routed_on_up_and_does_nothing_else(tmp_path: Path) -> None:
    ip, log = recording_ip(tmp_path)
    hook = minimal_hook(tmp_path, str(ip))
    _check_hook(hook)
    up = {"STATE": "up", "OLD_STATE": "down", "ADDRESS": ADDRESS, "LLADDRESS": LL, "MTU": "1280"}
    assert run(hook, log, **up) == [
        "link set dev teredo up",
        f"-6 address add {ADDRESS}/128 dev teredo",
        "-6 route add default dev teredo",
    ]
    for state in ("down", "destroy"):
        assert run(hook, log, STATE=state, OLD_STATE="up", OLD_ADDRESS=ADDRESS) == []


def test_the_seed_hook_runs_the_seed_documents_operations_in_its_order(tmp_path: Path) -> None:
    ip, log = recording_ip(tmp_path)
    hook = seed_hook(tmp_path, str(ip))
    _check_hook(hook)
    flushes = ["-6 route flush table teredo", "-6 route flush dev teredo", "-6 address flush dev teredo"]
    up = {"STATE": "up", "OLD_STATE": "down", "ADDRESS": ADDRESS, "LLADDRESS": LL, "MTU": "1280"}
    assert run(hook, log, **up) == [
        *flushes,
        "-6 link set dev teredo up",
        "-6 route add default dev teredo metric 1029",
        f"-6 address add {LL}/64 dev teredo",
        f"-6 address add {ADDRESS}/128 dev teredo",
        "link set dev teredo up mtu 1400",
        "-6 route flush cache",
    ]
    for state in ("down", "destroy"):
        assert run(hook, log, STATE=state, OLD_STATE="up", OLD_ADDRESS=OLD) == [
            f"-6 rule del from {OLD} prio 32765 table teredo",
            *flushes,
            f"-6 link set dev teredo {state}",
            "-6 route flush cache",
        ]
