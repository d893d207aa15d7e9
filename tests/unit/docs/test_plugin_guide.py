"""docs/plugins.md against the code: the hook reference generated from the hookspecs, the public API
listed in full, the example plugin loaded as the daemon loads it."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import runpy
import sys
import types
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit import REPO
from orchestrator_testkit.configs import write

import orchestrator
from orchestrator import config, hookspecs, plugins
from orchestrator.context import PluginContext
from orchestrator.events import Uplink, UplinkChanged
from orchestrator.moves import MoveLog

GUIDE = REPO / "docs" / "plugins.md"
EXAMPLE_MODULE = "orchestrator_guide_example"
# The generator's functions (it is a script, not a module: its file name has no .py).
HOOK_REFERENCE = runpy.run_path(str(REPO / "scripts" / "hook-reference"))


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the section "## title", up to the next heading of level 2."""
    text = guide()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end < 0 else end]


def example_code() -> str:
    """The first ```python block of the section "## A complete example"."""
    match = re.search(r"^```python\n(.*?)^```$", section("A complete example"), re.MULTILINE | re.DOTALL)
    assert match is not None, "no python block in '## A complete example'"
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


def test_the_hook_reference_is_generated_from_the_hookspecs() -> None:
    """``scripts/hook-reference --check``: on failure, the diff it printed is in the captured output."""
    assert HOOK_REFERENCE["main"](["--check"]) == 0


def test_the_reference_has_every_hook_the_plugin_manager_has() -> None:
    documented = re.findall(r"^### (orchestrator_\w+)$", section("Hooks"), flags=re.MULTILINE)
    hooks = [name for name in vars(plugins.new_manager().hook) if name.startswith("orchestrator_")]
    assert sorted(documented) == sorted(hooks)


def test_the_docstrings_say_what_the_markers_say() -> None:
    """The reference renders ``firstresult`` from the marker; the prose must agree with it, and
    "carries state" must name exactly the hooks of ``CARRIES_STATE``."""
    for spec in HOOK_REFERENCE["hookspecs_in_order"]():
        name, doc = spec.__name__, inspect.getdoc(spec) or ""
        firstresult = getattr(spec, f"{hookspecs.PROJECT}_spec")["firstresult"]
        assert ("first non-None result wins" in doc) == firstresult, name
        assert ("carries state" in doc) == (name in hookspecs.CARRIES_STATE), name


def test_the_public_api_section_lists_every_public_name() -> None:
    text = section("The public API")
    assert [name for name in orchestrator.__all__ if f"`{name}`" not in text] == []


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
