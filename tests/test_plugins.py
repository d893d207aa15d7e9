"""Plugin discovery: built-ins like third parties, broken plugins reported and skipped."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

from configs import load, write

from orchestrator import plugins


def discover(**targets: str) -> dict[str, plugins.PluginInfo]:
    points = [EntryPoint(name, target, plugins.GROUP) for name, target in targets.items()]
    return {info.name: info for info in plugins.discover(points)}


def test_built_ins_come_from_the_entry_point_group() -> None:
    found = {info.name: info for info in plugins.discover()}
    for name in ("routing", "teredo", "mipv6"):
        assert found[name].loaded and found[name].distribution == "netlink-orchestrator"
        assert name in found[name].sections


def test_broken_plugins_are_reported_and_the_others_load() -> None:
    found = discover(
        alpha="fake_plugins:clash_a",  # discovered in name order: alpha owns "shared"
        beta="fake_plugins:clash_b",
        thief="fake_plugins:core_thief",
        wrapper="fake_plugins:wrapper",
        typo="fake_plugins:unknown_hook",
        missing="no_such_module_anywhere",
    )
    assert found["alpha"].loaded and "shared" in plugins.sections(found.values())
    assert "already declared by alpha" in (found["beta"].error or "")
    assert "declares the core's sections ['daemon']" in (found["thief"].error or "")
    assert "hook wrappers are not supported" in (found["wrapper"].error or "")
    assert "orchestrator_no_such_hook" in (found["typo"].error or "")
    assert "cannot import no_such_module_anywhere" in (found["missing"].error or "")


def test_the_teredo_server_is_the_uplink_reference_unless_one_is_set(tmp_path: Path) -> None:
    infos = plugins.discover()
    teredo = '[teredo]\nserver = "198.51.100.1"\n'
    config = load(write(tmp_path, enable=["teredo"], extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) == "198.51.100.1"
    config = load(write(tmp_path, enable=["teredo"], uplinks='reference = "203.0.113.7"', extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) == "203.0.113.7"
    config = load(write(tmp_path, enable=[], extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) is None
