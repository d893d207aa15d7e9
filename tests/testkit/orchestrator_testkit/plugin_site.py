"""Third-party plugin distributions, installed into a private directory the way pip installs them.

A ``*.dist-info`` directory with METADATA and entry_points.txt on ``PYTHONPATH`` is exactly what
``importlib.metadata`` reads for an installed distribution, so the daemon discovers these plugins
through the same entry-point group as any other, without touching the test environment.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

MISBEHAVING = {
    "orch_test_raises": """
        from orchestrator import hookimpl

        @hookimpl
        def orchestrator_uplink_changed(event):
            raise RuntimeError("deliberate failure")
    """,
    "orch_test_blocks": """
        import threading
        from orchestrator import hookimpl

        @hookimpl
        def orchestrator_uplink_changed(event):
            threading.Event().wait()  # a plain function that never returns
    """,
    "orch_test_hangs": """
        import asyncio
        from orchestrator import hookimpl

        @hookimpl
        async def orchestrator_uplink_changed(event):
            await asyncio.Event().wait()  # a coroutine that never finishes
    """,
    "orch_test_wedged": """
        import asyncio
        from orchestrator import hookimpl

        @hookimpl
        async def orchestrator_uplink_changed(event):
            while True:  # a coroutine that refuses to be cancelled: wedged for good
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass
    """,
    "orch_test_witness": """
        import json, os
        from orchestrator import hookimpl

        def record(**fields):
            with open(os.environ["WITNESS_FILE"], "a") as handle:
                handle.write(json.dumps(fields) + "\\n")

        @hookimpl
        async def orchestrator_uplink_changed(event, move):
            record(hook="uplink_changed", move=move.id, new=event.new and event.new.address)

        @hookimpl
        def orchestrator_on_error(plugin, hook, error):
            record(hook="on_error", plugin=plugin, failed=hook, error=error)

        @hookimpl
        def orchestrator_move_finished(move):
            record(hook="move_finished", move=move.id, outcome=move.outcome, problems=move.problems)

        @hookimpl
        def orchestrator_shutdown(context):
            record(hook="shutdown", plugin=context.name)
    """,
    "orch_test_threaded": """
        from orchestrator import hookimpl

        @hookimpl
        def orchestrator_uplink_changed(context, move):  # a plain function: run in a worker thread
            context.report(f"reported from a thread in move {move.id}", move)
    """,
    "orch_test_holder": """
        from orchestrator import hookimpl

        @hookimpl
        async def orchestrator_uplink_changed(move):
            move.hold()  # never released: the move stays open until move_timeout_s
    """,
    "orch_test_commander": """
        from orchestrator import Command, hookimpl

        def hello(args):
            print(f"hello from commander, {args.name} ({args.config})")
            return 0

        def arguments(parser):
            parser.add_argument("name")

        @hookimpl
        def orchestrator_commands():
            return [
                Command("hello", "greet", "Greet someone.", hello, arguments),
                Command("status", "a name the core has", "Never reached.", hello),
            ]
    """,
    "orch_test_broken": """
        import a_module_that_does_not_exist
    """,
    "orch_test_typo": """
        from orchestrator import hookimpl

        @hookimpl
        def orchestrator_uplink_changd(event):  # misspelt: no such hook
            pass
    """,
    "orch_test_signature": """
        from orchestrator import hookimpl

        @hookimpl
        def orchestrator_uplink_changed(event, moov):  # an argument the hook does not have
            pass
    """,
    "orch_test_async_answer": """
        from orchestrator import hookimpl

        @hookimpl
        async def orchestrator_uplink_reference(config):  # answered at once: nothing would await it
            return "192.0.2.1"
    """,
    "orch_test_strange": """
        from orchestrator import Key, Section, hookimpl

        @hookimpl
        def orchestrator_config_schema():
            return {"strange": Section({"name": Key("strng", "a name")})}  # no such kind
    """,
}


def distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = ["[orchestrator.plugins]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def build(site: Path) -> Path:
    """Write the modules and three distributions: the test plugins, one that cannot import, and
    one whose plugins are invalid (a hook that does not exist, or with the wrong arguments, or an
    ``async def`` answer to a hook answered at once, or a schema with a misspelt kind)."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in MISBEHAVING.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    distribution(site, "orchestrator-test-plugins", {
        "raises": "orch_test_raises", "blocks": "orch_test_blocks",
        "hangs": "orch_test_hangs", "wedged": "orch_test_wedged", "witness": "orch_test_witness",
        "holder": "orch_test_holder", "commander": "orch_test_commander", "threaded": "orch_test_threaded",
    })
    distribution(site, "orchestrator-broken", {"broken": "orch_test_broken"})
    distribution(site, "orchestrator-misfits", {
        "typo": "orch_test_typo", "signature": "orch_test_signature",
        "asks": "orch_test_async_answer", "strange": "orch_test_strange",
    })
    return site


def environment(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env
