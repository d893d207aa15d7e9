"""``orchestrator status`` and ``monitor`` as a person reads them: golden texts for a node without an
uplink, a healthy node, and one whose handover failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.cli import format_event
from orchestrator.events import LinkChanged, StandbyUplinksChanged, Uplink
from orchestrator.status_text import human_status, nested_lines, timeline

UPLINK = {"interface": "eth0", "address": "10.1.0.100/24", "gateway": "10.1.0.1", "gateway_lladdr": None}
WLAN = {"interface": "wlan0", "address": "10.3.0.100/24", "gateway": "10.3.0.1", "gateway_lladdr": None}
STARTED = 1796300621.0  # 12:23:41 UTC
COA = "2001:0:c633:6401::1"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def status(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uplink": UPLINK, "uplinks": [{"role": "active", **UPLINK}], "tunnels": {"teredo": COA},
        "reload_problem": None, "watchdog": None, "metrics": None, "counters": {"events": 12, "moves": 1},
        "plugins": [{"name": "teredo", "state": "enabled", "source": "netlink-orchestrator", "error": None,
                     "stuck_threads": 0, "status": {"state": "up", "reason": "", "address": COA}}],
        "moves": [],
    }
    return {**base, **changes}


def move(outcome: str, phases: dict[str, float], problems: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": 1, "started": STARTED, "old": UPLINK, "new": WLAN, "phases": phases, "outcome": outcome,
            "problems": list(problems)}


def test_no_uplink() -> None:
    text = human_status(status(uplink=None, uplinks=[], tunnels={"teredo": None}, plugins=[]))
    assert text == "uplink:   none\ntunnel:   teredo (no address)\ncounters: events=12, moves=1"


HANDOVER = {"detected": 0.0002, "requalify-sent": 0.0009, "tunnel-up": 0.077, "routes-applied": 0.078,
            "bu-sent": 0.079, "handover-confirmed": 0.088, "finished": 0.088}


def test_a_healthy_node_with_a_standby_and_its_last_move() -> None:
    text = human_status(status(uplinks=[{"role": "active", **UPLINK}, {"role": "standby", **WLAN}],
                               moves=[move("ok", HANDOVER)],
                               metrics={"listen": "127.0.0.1:9477", "listen_problem": None, "textfile": None,
                                        "textfile_problem": None}))
    assert text == "\n".join([
        "uplink:   eth0 10.1.0.100/24 via 10.1.0.1",
        "standby:  wlan0 10.3.0.100/24 via 10.3.0.1",
        "tunnel:   teredo 2001:0:c633:6401::1",
        "metrics:  listen 127.0.0.1:9477",
        "counters: events=12, moves=1",
        "plugin:   teredo [enabled] from netlink-orchestrator",
        "          state: up",
        '          reason: ""',
        "          address: 2001:0:c633:6401::1",
        "moves:",
        "  12:23:41 eth0 → wlan0 ok 88 ms |detected 0.2|requalify 0.9|tunnel-up 77"
        + "·" * 50 + "|routes 78|bu 79|confirmed 88|",  # tunnel-up took 76 of 88 ms: 62 of 72 columns
    ])


def test_a_failed_handover_says_why_and_nested_status_reads_as_toml() -> None:
    problems = ("mipv6: no Binding Acknowledgement for 2001:0:c633:6401::2 within 5 s",)
    mipv6 = {"mode": "degraded", "problems": ["kernel: CONFIG_IPV6_MIP6 is not set", "mip6d is not running"],
             "handover": "failed", "expected_coa": None, "verbose": True}
    plugins = [{"name": "mipv6", "state": "enabled", "source": "netlink-orchestrator", "error": None,
                "stuck_threads": 0, "status": mipv6}]
    phases = {"detected": 0.0003, "requalify-sent": 0.001, "tunnel-up": 0.04, "finished": 5.04}
    text = human_status(status(plugins=plugins, moves=[move("failed", phases, problems)]))
    assert text.splitlines()[3:] == [
        "plugin:   mipv6 [enabled] from netlink-orchestrator",
        "          mode: degraded",
        "          problems:",
        "            - kernel: CONFIG_IPV6_MIP6 is not set",
        "            - mip6d is not running",
        "          handover: failed",
        "          expected_coa: (unset)",
        "          verbose: true",
        "moves:",
        "  12:23:41 eth0 → wlan0 failed 5040 ms |detected 0.3|requalify 1.0|tunnel-up 40|end 5040"
        + "·" * 63 + "|",  # the wait until the timeout, nearly all of the 72 columns
        "    problem: mipv6: no Binding Acknowledgement for 2001:0:c633:6401::2 within 5 s",
    ]


def test_a_move_in_progress_has_no_total_yet() -> None:
    line = timeline(move("", {"detected": 0.0002}))
    assert line.startswith("12:23:41 eth0 → wlan0 in progress |detected 0.2··") and line.endswith("·|")


def test_nested_status_of_every_shape() -> None:
    value = {"standby": {"teredo2": {"state": "up"}}, "empty": [], "list": [{"a": 1}, 2.5]}
    assert nested_lines(value, "") == ["standby:", "  teredo2:", "    state: up", "empty: (none)", "list:",
                                      "  - a: 1", "  - 2.5"]


def test_monitor_lines_name_uplinks_as_the_log_does_and_spell_values_as_the_toml() -> None:
    standby = StandbyUplinksChanged((Uplink("eth1", "10.3.0.100/24", "10.3.0.1"),))
    assert format_event(standby, None) == "standby-uplinks-changed: eth1 10.3.0.100/24 via 10.3.0.1"
    assert format_event(StandbyUplinksChanged(()), None) == "standby-uplinks-changed: none"
    link = format_event(LinkChanged("eth0", up=True, carrier=False, present=True), None)
    assert link == "link-changed interface=eth0 up=true carrier=false present=true"
