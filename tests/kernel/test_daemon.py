"""The real daemon in a namespace: misbehaving plugins, a broken plugin, and a netlink overrun."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
from orchestrator_testkit import plugin_site
from orchestrator_testkit.configs import check_config, write
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import Namespace, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess
from orchestrator_testkit.scenarios import (
    finished_moves,
    move_to_first_network,
    move_to_second_network,
    node_with_uplink,
)

from orchestrator.workers import STUCK_THREADS_PER_PLUGIN

pytestmark = pytest.mark.netns

STORM = 40_000


def test_misbehaving_plugins_are_isolated_and_the_daemon_survives(lab: Lab) -> None:
    site = plugin_site.build(lab.tmp / "site")
    witness = lab.tmp / "witness.jsonl"
    env = plugin_site.environment(site, WITNESS_FILE=str(witness))
    config = write(lab.tmp, enable=["raises", "blocks", "hangs", "witness"],
                   daemon="plugin_timeout_s = 0.5")
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock", env=env)

    plugins = {p["name"]: p for p in daemon.status()["plugins"]}
    assert plugins["broken"]["state"] == "error"
    assert "cannot import orch_test_broken" in plugins["broken"]["error"]
    assert plugins["witness"]["state"] == "enabled"

    move_to_second_network(node)
    moves = wait_for(lambda: finished_moves(daemon), 30, "the move to finish")
    assert moves[-1]["new"]["address"] == "10.2.0.100/24"
    assert moves[-1]["outcome"] == "failed"
    assert sorted(p.split(":")[0] for p in moves[-1]["problems"]) == ["blocks", "hangs", "raises"]

    def witnessed() -> list[dict[str, Any]] | None:
        lines = [json.loads(x) for x in witness.read_text().splitlines()] if witness.exists() else []
        return lines if len([x for x in lines if x["hook"] == "on_error"]) == 3 else None

    records = wait_for(witnessed, 15, "three on_error calls")
    assert {"hook": "uplink_changed", "move": moves[-1]["id"], "new": "10.2.0.100/24"} in records
    errors = sorted((r["plugin"], r["error"]) for r in records if r["hook"] == "on_error")
    assert errors == [("blocks", "timeout after 0.5 s"), ("hangs", "timeout after 0.5 s"),
                      ("raises", "RuntimeError: deliberate failure")]
    counters = daemon.status()["counters"]
    assert counters["plugin_errors"] == 3 and counters["plugin_timeouts"] == 2

    # Still alive and still working: the next move is handled the same way.
    move_to_first_network(node)
    wait_for(lambda: len(finished_moves(daemon)) == 2, 30, "the second move")
    assert daemon.stop() == 0


def test_a_plain_function_reports_through_the_event_loop(lab: Lab) -> None:
    """A hook written as a plain function runs in a worker thread; its context.report reaches the
    move and every orchestrator_on_error, move after move."""
    site = plugin_site.build(lab.tmp / "site")
    witness = lab.tmp / "witness.jsonl"
    config = write(lab.tmp, enable=["threaded", "witness"])
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock",
                           env=plugin_site.environment(site, WITNESS_FILE=str(witness)))

    for number, move in enumerate((move_to_second_network, move_to_first_network, move_to_second_network), 1):
        move(node)
        wait_for(lambda n=number: len(finished_moves(daemon)) == n, 30, f"move {number} to finish")

    def witnessed() -> list[dict[str, Any]] | None:
        lines = [json.loads(x) for x in witness.read_text().splitlines()] if witness.exists() else []
        heard = [x for x in lines if x["hook"] in ("on_error", "move_finished")]
        return heard if len(heard) == 6 else None

    records = wait_for(witnessed, 15, "three on_error and three move_finished calls")
    moves = [m["id"] for m in finished_moves(daemon)]
    problems = {m: f"reported from a thread in move {m}" for m in moves}
    assert [(r["plugin"], r["failed"], r["error"]) for r in records if r["hook"] == "on_error"] == [
        ("threaded", "report", problems[m]) for m in moves]
    assert [(r["move"], r["outcome"], r["problems"]) for r in records if r["hook"] == "move_finished"] == [
        (m, "failed", [problems[m]]) for m in moves]
    counters = daemon.status()["counters"]
    assert counters["plugin_failures"] == 3 and counters["plugin_errors"] == 0
    assert daemon.stop() == 0


def test_a_plugin_whose_threads_never_return_gets_no_more_of_them(lab: Lab) -> None:
    """Each move abandons one more call of the blocks plugin (a plain function that never returns);
    once it holds the bound, its calls are refused at once, and status says how many it holds."""
    site = plugin_site.build(lab.tmp / "site")
    config = write(lab.tmp, enable=["blocks"], daemon="plugin_timeout_s = 0.2")
    node = node_with_uplink(lab)
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock", env=plugin_site.environment(site))

    bound = STUCK_THREADS_PER_PLUGIN
    for number in range(1, bound + 2):
        (move_to_second_network if number % 2 else move_to_first_network)(node)
        wait_for(lambda n=number: len(finished_moves(daemon)) == n, 30, f"move {number} to finish")

    status = daemon.status()
    *abandoned, refused = [move["problems"] for move in status["moves"]]
    assert abandoned == [["blocks: orchestrator_uplink_changed: timeout after 0.2 s"]] * bound
    assert refused == [f"blocks: orchestrator_uplink_changed: plugin blocks holds {bound} threads that never "
                       "returned: call not started"]
    blocks = next(plugin for plugin in status["plugins"] if plugin["name"] == "blocks")
    assert blocks["stuck_threads"] == bound
    counters = status["counters"]
    assert counters["plugin_calls_refused"] == 1 and counters["plugin_errors"] == bound + 1
    shown = node.run(*ORCHESTRATOR, "status", "--config", str(config)).stdout
    assert f"plugin:   blocks [enabled, holds {bound} threads that never returned] from " in shown
    assert daemon.stop() == 0


def test_enabling_a_broken_plugin_is_a_config_error(lab: Lab) -> None:
    site = plugin_site.build(lab.tmp / "site")
    config = write(lab.tmp, enable=["broken"])
    result = check_config(config, env=plugin_site.environment(site))
    assert result.returncode == 2
    assert "plugins.enable[0]: plugin 'broken' cannot be loaded: cannot import orch_test_broken" \
        in result.stderr


def ip_snapshot(ns: Namespace) -> dict[str, list[str]]:
    """The kernel's own account through `ip -j`, in the daemon's snapshot format."""
    names = {"local": 255, "main": 254, "default": 253}
    links = ns.ip_json("link", "show")
    addresses = [f"{link['ifname']} {a['local']}/{a['prefixlen']}"
                 for link in ns.ip_json("addr", "show") for a in link.get("addr_info", [])]
    routes = []
    for family, flag in (("inet", "-4"), ("inet6", "-6")):
        for r in ns.ip_json(flag, "route", "show", "table", "main"):
            if r.get("type", "unicast") != "unicast":
                continue
            dst = r["dst"]
            if dst == "default":
                dst = "0.0.0.0/0" if family == "inet" else "::/0"
            elif "/" not in dst:
                dst += "/32" if family == "inet" else "/128"
            via = f" via {r['gateway']}" if "gateway" in r else ""
            routes.append(f"{family} table 254 {dst}{via} dev {r['dev']} metric {r.get('metric', 0)}")
    rules = []
    for rule in ns.ip_json("-6", "rule", "show"):
        source = f"{rule['src']}/{rule.get('srclen', 128)}" if rule.get("src", "all") != "all" else "all"
        table = rule.get("table", "main")
        rules.append(f"prio {rule['priority']} from {source} table {names.get(table, table)}")
    return {
        "links": sorted(
            f"{link['ifname']} index={link['ifindex']} up={int('UP' in link['flags'])} "
            f"carrier={int('LOWER_UP' in link['flags'])}" for link in links),
        "addresses": sorted(addresses),
        "routes": sorted(routes),
        "rules": sorted(rules),
    }


def test_overrun_is_repaired_and_the_lost_move_reported(lab: Lab) -> None:
    """40 000 route changes in a table the daemon ignores plus a move, while the daemon is held
    (SIGSTOP, so the overrun is certain rather than likely) with a 64 KiB buffer."""
    node = node_with_uplink(lab)
    config = write(lab.tmp, daemon="netlink_rcvbuf_mib = 0.0625")
    daemon = DaemonProcess(node, config, lab.tmp / "control.sock")
    batch = lab.tmp / "storm.batch"
    half = STORM // 2
    batch.write_text(
        "".join(f"route add 203.0.113.{i % 250}/32 via 10.1.0.1 table {100 + i // 250}\n"
                for i in range(half))
        + "".join(f"route del 203.0.113.{i % 250}/32 via 10.1.0.1 table {100 + i // 250}\n"
                  for i in range(half))
    )
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        node.ip("-batch", str(batch))
        move_to_second_network(node)
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)

    def repaired() -> dict[str, Any] | None:
        status = daemon.status()
        uplink = status["uplink"]
        done = status["counters"].get("resyncs", 0) >= 1 and uplink and uplink["address"] == "10.2.0.100/24"
        return status if done else None

    status = wait_for(repaired, 60, "the resync and the move")
    assert status["state"] == ip_snapshot(node)
    assert [m["new"]["address"] for m in status["moves"]] == ["10.2.0.100/24"]
    assert daemon.stop() == 0
