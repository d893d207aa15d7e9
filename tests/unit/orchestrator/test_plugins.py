"""Plugin discovery: built-ins like third parties, broken plugins reported and skipped."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from orchestrator_testkit import fake_plugins, plugin_site
from orchestrator_testkit.configs import load, write
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR

from orchestrator import Command, cli, hookimpl, load_config, plugins
from orchestrator.config import ConfigError


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
        alpha="orchestrator_testkit.fake_plugins:clash_a",  # discovered in name order: alpha owns "shared"
        beta="orchestrator_testkit.fake_plugins:clash_b",
        thief="orchestrator_testkit.fake_plugins:core_thief",
        wrapper="orchestrator_testkit.fake_plugins:wrapper",
        typo="orchestrator_testkit.fake_plugins:unknown_hook",
        missing="no_such_module_anywhere",
    )
    assert found["alpha"].loaded and "shared" in plugins.sections(found.values())
    assert "already declared by alpha" in (found["beta"].error or "")
    assert "declares the core's sections ['daemon']" in (found["thief"].error or "")
    assert "hook wrappers are not supported" in (found["wrapper"].error or "")
    assert "orchestrator_no_such_hook" in (found["typo"].error or "")
    assert "cannot import no_such_module_anywhere" in (found["missing"].error or "")


def test_an_async_def_answer_to_a_hook_answered_at_once_is_refused_at_load() -> None:
    found = discover(asks="orchestrator_testkit.fake_plugins:async_answer")["asks"]
    assert not found.loaded and found.plugin is None
    assert found.error == (
        "invalid plugin: PluginValidationError: plugin 'asks': orchestrator_expected_coa must be a plain "
        "function: it is answered at once, outside the lanes"
    )


KINDS = "str, int, float, bool, list[str], ipv4, ipv6, str|int"


def test_a_malformed_schema_makes_its_plugin_invalid_and_spoils_only_a_configuration_that_enables_it(
    tmp_path: Path,
) -> None:
    found = discover(
        strange="orchestrator_testkit.fake_plugins:misspelt_kind",
        loose="orchestrator_testkit.fake_plugins:not_a_section",
        odd="orchestrator_testkit.fake_plugins:not_a_key",
    )
    infos = [*plugins.discover(), *found.values()]
    assert plugins.validate(write(tmp_path, enable=["routing"]), infos).enable == ("routing",)

    assert not any(info.loaded for info in found.values())
    invalid = "invalid plugin: PluginValidationError: plugin"
    assert found["strange"].error == (
        f"{invalid} 'strange': section 'strange', key 'name': unknown kind 'strng' (known kinds: {KINDS})"
    )
    assert found["loose"].error == f"{invalid} 'loose': section 'loose': expected a Section, got dict"
    assert found["odd"].error == (
        f"{invalid} 'odd': section 'odd', key 'items.<name>.name': expected a Key, got str"
    )
    with pytest.raises(ConfigError) as refused:
        plugins.validate(write(tmp_path, enable=["routing", "strange"]), infos)
    assert refused.value.problems == [
        f"plugins.enable[1]: plugin 'strange' cannot be loaded: {found['strange'].error}"
    ]


def test_the_teredo_server_is_the_uplink_reference_unless_one_is_set(tmp_path: Path) -> None:
    infos = plugins.discover()
    teredo = '[teredo]\nserver = "198.51.100.1"\n'
    config = load(write(tmp_path, enable=["teredo"], extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) == "198.51.100.1"
    config = load(write(tmp_path, enable=["teredo"], uplinks='reference = "203.0.113.7"', extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) == "203.0.113.7"
    config = load(write(tmp_path, enable=[], extra=teredo))
    assert plugins.uplink_reference(plugins.activate(infos, config.enable), config) is None


def test_a_wrong_signature_is_reported_with_the_argument() -> None:
    found = discover(signature="orchestrator_testkit.fake_plugins:wrong_signature")
    assert "orchestrator_uplink_changed" in (found["signature"].error or "")
    assert "moov" in (found["signature"].error or "")


def orchestrator_plugins(site: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCHESTRATOR, "plugins", *arguments], capture_output=True, text=True, timeout=60,
                          env=plugin_site.environment(site), check=True)


def test_the_plugins_command_lists_every_plugin_and_why_broken_ones_are_not_loaded(tmp_path: Path) -> None:
    site = plugin_site.build(tmp_path / "site")
    config = write(tmp_path, enable=["routing", "witness"])
    answer = orchestrator_plugins(site, "--json", "--config", str(config))
    listed = {p["name"]: p for p in json.loads(answer.stdout)}
    witness = listed["witness"]
    assert (witness["distribution"], witness["version"], witness["enabled"], witness["error"]) == (
        "orchestrator-test-plugins", "1.0", True, None)
    hooks = ["orchestrator_move_finished", "orchestrator_on_error", "orchestrator_shutdown",
             "orchestrator_uplink_changed"]
    assert witness["hooks"] == hooks
    assert listed["routing"]["enabled"] and listed["routing"]["error"] is None
    assert not listed["teredo"]["enabled"] and listed["teredo"]["error"] is None
    assert "cannot import orch_test_broken" in listed["broken"]["error"]
    assert "orchestrator_uplink_changd" in listed["typo"]["error"]
    assert "moov" in listed["signature"]["error"]
    assert listed["typo"]["distribution"] == "orchestrator-misfits" and listed["typo"]["hooks"] == []
    assert listed["asks"]["error"].endswith(
        "plugin 'asks': orchestrator_uplink_reference must be a plain function: it is answered at once, "
        "outside the lanes"
    )
    assert listed["strange"]["error"].endswith(
        f"plugin 'strange': section 'strange', key 'name': unknown kind 'strng' (known kinds: {KINDS})"
    )

    text = orchestrator_plugins(site, "--config", str(config)).stdout
    assert "witness (orchestrator-test-plugins 1.0) [enabled]\n" in text
    assert "teredo (netlink-orchestrator 0.1.0) [disabled]\n" in text
    assert "typo (orchestrator-misfits 1.0) [error]\n    error: invalid plugin: " in text


def test_an_invalid_third_party_plugin_spoils_only_a_configuration_that_enables_it(tmp_path: Path) -> None:
    site = plugin_site.build(tmp_path / "site")
    others = write(tmp_path, enable=["routing"])
    checked = orchestrator_cli(site, "check-config", "--config", str(others))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{others}: OK (plugins: routing)\n"
    config = write(tmp_path, enable=["routing", "strange"], name="strange.toml")
    refused = orchestrator_cli(site, "check-config", "--config", str(config))
    assert refused.returncode == 2
    assert refused.stderr == (
        f"{config}: plugins.enable[1]: plugin 'strange' cannot be loaded: invalid plugin: "
        "PluginValidationError: plugin 'strange': section 'strange', key 'name': unknown kind 'strng' "
        f"(known kinds: {KINDS})\n"
    )


def test_declared_interfaces_come_after_the_files_and_are_validated_like_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    infos = [*plugins.discover(), *discover(declares="orchestrator_testkit.fake_plugins:declares").values()]
    path = write(tmp_path, enable=["declares"])
    declare = functools.partial(monkeypatch.setattr, fake_plugins.declares, "entries")
    declare([
        {"match": "ppp0", "role": "uplink", "ipv6_tunnel": True, "mip6_preference": 2},
        {"match": "eth0", "role": "lan"},  # the file's eth* entry comes first and decides
    ])
    config = plugins.validate(path, infos)
    ppp = config.interface("ppp0")
    assert ppp is not None and ppp.is_tunnel and ppp.role == "uplink" and config.is_tunnel("ppp0")
    assert ppp.origin == "plugin 'declares' interfaces[0]" and ppp.declared_by_plugin
    assert config.role("eth0") == "uplink" and not config.is_tunnel("eth0")
    assert config.interface("eth0").origin == "interfaces[0]"  # type: ignore[union-attr]

    declare([
        {"match": "tun6to4", "role": "bridge"},
        {"match": "x", "role": "lan", "ipv6_tunnel": True},
    ])
    with pytest.raises(ConfigError) as refused:
        plugins.validate(path, infos)
    assert refused.value.problems == [
        "plugin 'declares' interfaces[0].role: expected one of uplink, tunnel, lan, got \"bridge\"",
        "plugin 'declares' interfaces[1].ipv6_tunnel: only an interface with role 'uplink' has one",
    ]

    declare(RuntimeError("no section"))
    with pytest.raises(ConfigError) as failed:
        plugins.validate(path, infos)
    assert failed.value.problems == ["declares: interface declaration failed: no section"]


def orchestrator_cli(site: Path | None, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = plugin_site.environment(site) if site else None
    return subprocess.run([*ORCHESTRATOR, *arguments], capture_output=True, text=True, timeout=60, env=env)


def test_plugins_own_their_commands_and_the_core_keeps_its_own(tmp_path: Path) -> None:
    site = plugin_site.build(tmp_path / "site")
    config = write(tmp_path, enable=["commander"])
    hello = orchestrator_cli(site, "hello", "world", "--config", str(config))
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout == f"hello from commander, world ({config})\n"
    assert "orchestrator: plugin commander: command 'status' is the core's: skipped" in hello.stderr
    helped = orchestrator_cli(site, "--help").stdout
    for command in ("hello", "hook", "mip6d-conf", "status"):
        assert re.search(rf"^    {command}\b", helped, flags=re.MULTILINE), command


def test_a_disabled_plugins_command_says_so_and_runs(tmp_path: Path) -> None:
    tunnel = '[[interfaces]]\nmatch = "teredo"\nrole = "tunnel"\nmip6_preference = 3\n{tunnel}\n'
    config = write(tmp_path, enable=["routing"], interfaces=tunnel)
    result = orchestrator_cli(None, "mip6d-conf", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert 'Interface "teredo" {\n\tMnIfPreference 3;\n\tTunnel enabled;\n}' in result.stdout
    assert result.stderr == (
        f"orchestrator mip6d-conf: note: a command of plugin 'mipv6', which {config} does not enable "
        "(plugins.enable): the daemon does not run that plugin\n"
    )


def test_an_unknown_command_names_the_plugins_that_could_not_load(tmp_path: Path) -> None:
    site = plugin_site.build(tmp_path / "site")
    result = orchestrator_cli(site, "dial", "--config", str(write(tmp_path)))
    assert result.returncode == 2
    assert "\norchestrator: no command 'dial'; plugins that could not be loaded" in result.stderr
    assert "broken (cannot import orch_test_broken" in result.stderr


def test_the_teredo_plugin_declares_its_address_prefix_and_bad_declarations_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write(tmp_path, enable=["teredo"], tunnel_profile=None))
    assert config.address_prefixes == {"teredo": "2001::/32"}
    infos = [*plugins.discover(), *discover(declares="orchestrator_testkit.fake_plugins:declares").values()]
    path = write(tmp_path, enable=["teredo", "declares"])
    monkeypatch.setattr(fake_plugins.declares, "prefixes", {"teredo": "2001:db8::/32", "tun6": "2002::/99x"})
    with pytest.raises(ConfigError) as refused:
        plugins.validate(path, infos)
    assert refused.value.problems == [
        "declares: address prefix of 'teredo': teredo declares it",
        "declares: address prefix of 'tun6': '99x' is not a valid netmask",
    ]


def test_a_command_whose_run_is_a_coroutine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    async def later(args: object) -> int:
        return 0

    class Plugin:
        @hookimpl
        def orchestrator_commands(self) -> list[Command]:
            return [Command("later", "run later", "Never awaited.", later)]

    commands: dict[str, Command] = {}
    info = plugins.PluginInfo("later", "test", None, None, plugin=Plugin())
    assert cli.add_plugin_commands([info], commands) == {} and commands == {}
    assert "orchestrator: plugin later: its commands are skipped" in capsys.readouterr().err
