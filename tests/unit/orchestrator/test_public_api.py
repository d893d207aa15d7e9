"""The public API: everything a plugin needs comes from ``orchestrator`` itself, lazily.

The built-in plugins, the example distributions and every Python snippet of the plugin guide are
read as a third party's code would be: any import of a submodule of ``orchestrator`` (at module
level or inside a function) is a break of the contract that lets the core reorganise itself.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from orchestrator_testkit import REPO

import orchestrator

PLUGIN_SOURCES = sorted(
    [*REPO.glob("plugins/*/*.py"), *REPO.glob("examples/*/src/*/*.py")], key=lambda path: str(path)
)
GUIDES = [REPO / "docs" / "plugins.md", REPO / "docs" / "exec.md", REPO / "README.md"]


def python_blocks(markdown: Path) -> Iterator[tuple[str, str]]:
    """Every ```python block of a markdown file, named by the file and its first line number."""
    text = markdown.read_text(encoding="utf-8")
    for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start()) + 1
        yield f"{markdown.relative_to(REPO)}:{line}", match.group(1)


def private_imports(source: str) -> list[str]:
    """The imports of ``source`` that reach past the public API, as written."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("orchestrator.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("orchestrator."):
                found.append(f"from {node.module} import …")
            elif node.module == "orchestrator":
                found += [
                    f"from orchestrator import {alias.name}"
                    for alias in node.names
                    if alias.name not in orchestrator.__all__
                ]
    return found


SOURCES = [(str(path.relative_to(REPO)), path.read_text(encoding="utf-8")) for path in PLUGIN_SOURCES]
SNIPPETS = [block for guide in GUIDES for block in python_blocks(guide)]


@pytest.mark.parametrize(("where", "source"), SOURCES + SNIPPETS, ids=[w for w, _ in SOURCES + SNIPPETS])
def test_plugins_examples_and_guides_import_only_the_public_api(where: str, source: str) -> None:
    assert private_imports(source) == [], f"{where} imports past the public API"


def test_the_scan_sees_every_kind_of_private_import() -> None:
    source = (
        "import orchestrator.wire\n"
        "from orchestrator.events import Uplink\n"
        "from orchestrator import hookimpl, dispatch\n"
        "def later():\n"
        "    from orchestrator.daemon import Daemon\n"
    )
    assert private_imports(source) == [
        "orchestrator.wire",
        "from orchestrator.events import …",
        "from orchestrator import dispatch",
        "from orchestrator.daemon import …",
    ]


def test_there_is_something_to_scan() -> None:
    assert len(SOURCES) > 30 and any(where.startswith("docs/plugins.md") for where, _ in SNIPPETS)


def test_every_public_name_resolves() -> None:
    for name in orchestrator.__all__:
        assert getattr(orchestrator, name) is not None, name
    assert sorted(dir(orchestrator)) == sorted(orchestrator.__all__)
    with pytest.raises(AttributeError, match="no attribute 'daemon_internals'"):
        _ = orchestrator.daemon_internals  # type: ignore[attr-defined]


def test_importing_the_api_is_free_until_a_name_is_used() -> None:
    """miredo's client hook imports the codec in a bare ``python -I -S`` on every tunnel change."""
    probe = (
        "import sys; import orchestrator; from orchestrator import wire, RT_TABLE_MAIN; "
        "heavy = ('pluggy', 'asyncio', 'dataclasses', 'typing', 'logging', 'orchestrator.config'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = [{str(REPO)!r}]; {probe}"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert result.stdout.strip() == "[]"
