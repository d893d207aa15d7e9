"""docs/plugins.md against the code: every hook documented with its arguments, the example loads."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import sys
import types
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from configs import write

from orchestrator import config, hookspecs, plugins
from orchestrator.context import PluginContext
from orchestrator.events import Uplink, UplinkChanged
from orchestrator.moves import MoveLog

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
EXAMPLE_MODULE = "orchestrator_guide_example"


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def hook_specs() -> dict[str, Any]:
    """Every function of orchestrator.hookspecs marked as a hookspec."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("orchestrator_") and hasattr(function, marker)
    }


def sections() -> dict[str, str]:
    """The text of each "### orchestrator_*" section, up to the next heading of level 2 or 3."""
    found: dict[str, str] = {}
    parts = re.split(r"^(#{2,3} .*)$", guide(), flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.fullmatch(r"### (orchestrator_\w*)\s*", heading)
        if match:
            found[match.group(1)] = body
    return found


def example_code() -> str:
    """The first ```python block after the heading "## A complete example"."""
    text = guide()
    start = text.index("\n## A complete example\n")
    match = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL).search(text, start)
    assert match is not None, "no python block after '## A complete example'"
    return match.group(1)


def installed_and_example() -> list[EntryPoint]:
    """The installed plugins' entry points, and one naming the guide's example."""
    example = EntryPoint("movelog", f"{EXAMPLE_MODULE}:PLUGIN", plugins.GROUP)
    return [*entry_points(group=plugins.GROUP), example]


@pytest.fixture
def example() -> Iterator[types.ModuleType]:
    """The guide's example plugin, importable as a module (so an entry point can name it)."""
    module = types.ModuleType(EXAMPLE_MODULE)
    module.__file__ = f"<{GUIDE.name}: A complete example>"
    sys.modules[EXAMPLE_MODULE] = module
    try:
        exec(compile(example_code(), module.__file__, "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[EXAMPLE_MODULE]


def test_the_hookspecs_are_found() -> None:
    specs = hook_specs()
    assert "orchestrator_uplink_changed" in specs and "orchestrator_config_schema" in specs
    manager = plugins.new_manager()
    assert set(specs) == {name for name in vars(manager.hook) if name.startswith("orchestrator_")}


def test_every_hook_has_a_section_and_every_section_a_hook() -> None:
    documented, specs = set(sections()), set(hook_specs())
    assert not specs - documented, f"hooks without a '### name' section: {sorted(specs - documented)}"
    assert not documented - specs, f"sections naming no hookspec: {sorted(documented - specs)}"


def test_each_hook_section_names_its_arguments() -> None:
    text = sections()
    missing = {
        name: [arg for arg in inspect.signature(spec).parameters if not re.search(rf"\b{arg}\b", text[name])]
        for name, spec in hook_specs().items()
    }
    assert not {name: args for name, args in missing.items() if args}


def test_firstresult_and_state_carrying_hooks_are_marked() -> None:
    text = sections()
    for name, spec in hook_specs().items():
        if getattr(spec, f"{hookspecs.PROJECT}_spec")["firstresult"]:
            assert "firstresult" in text[name], name
        if name in hookspecs.CARRIES_STATE:
            assert "carries state" in text[name], name


def test_the_example_compiles() -> None:
    compile(example_code(), "example", "exec")


def test_the_example_passes_the_daemons_validation(example: types.ModuleType, tmp_path: Path) -> None:
    points = [EntryPoint("movelog", f"{EXAMPLE_MODULE}:PLUGIN", plugins.GROUP)]
    [info] = plugins.discover(points)
    assert info.error is None and info.plugin is example.PLUGIN
    assert "orchestrator_uplink_changed" in info.hooks and set(info.sections) == {"movelog"}
    # Alongside the built-ins: no section clash, and its section is validated like theirs.
    infos = plugins.discover(installed_and_example())
    assert all(i.loaded for i in infos), [i.error for i in infos]
    known = {i.name for i in infos}
    path = write(tmp_path, enable=["movelog"], extra="[movelog]\nsettle_s = 0.25\n")
    loaded = config.load(path, plugins.sections(infos), known)
    assert dict(loaded.section("movelog")) == {"settle_s": 0.25, "level": "info"}
    assert plugins.config_warnings(plugins.activate(infos, loaded.enable), loaded) == []
    bad = write(tmp_path, enable=["movelog"], extra='[movelog]\nsettle_s = 99\nlevel = "loud"\n')
    with pytest.raises(config.ConfigError) as error:
        config.load(bad, plugins.sections(infos), known)
    assert {p.split(":")[0] for p in error.value.problems} == {"movelog.settle_s", "movelog.level"}


def test_the_example_holds_a_move_until_settled(example: types.ModuleType, tmp_path: Path) -> None:
    """The example's hooks, called as the dispatcher calls them, end a move with its phase."""
    infos = plugins.discover(installed_and_example())
    path = write(tmp_path, enable=["movelog"], extra="[movelog]\nsettle_s = 0.05\n")
    loaded = config.load(path, plugins.sections(infos), {i.name for i in infos})
    plugin = example.PLUGIN

    async def scenario() -> tuple[Any, PluginContext]:
        finished = asyncio.get_running_loop().create_future()
        moves = MoveLog(5.0, lambda move, phase: None, finished.set_result)
        log = logging.getLogger("test.movelog")
        context = PluginContext("movelog", loaded, None, moves, log, Counter())  # type: ignore[arg-type]
        await plugin.orchestrator_startup(context=context)
        event = UplinkChanged(None, Uplink("eth0", "192.0.2.10/24", "192.0.2.1"), 1)
        move = moves.begin(event, asyncio.get_running_loop().time())
        await plugin.orchestrator_uplink_changed(context=context, event=event, move=move)
        moves.dispatched(move)
        assert not move.finished  # held until settled
        ended = await asyncio.wait_for(finished, 2)
        await plugin.orchestrator_move_phase(context=context, move=ended, phase="movelog-settled")
        await plugin.orchestrator_move_finished(context=context, move=ended)
        await plugin.orchestrator_shutdown()
        return ended, context

    move, context = asyncio.run(scenario())
    assert move.outcome == "ok" and "movelog-settled" in move.phases
    assert context.counters["movelog_moves"] == 1
    assert context.status["last_move"] == {"id": 1, "outcome": "ok", "problems": []}
