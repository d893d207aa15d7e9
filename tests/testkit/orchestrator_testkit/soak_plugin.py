"""A plugin that misbehaves when the soak asks it to: it raises, hangs, or reports a problem from a
worker thread, on the standby uplinks' next change.

Why: a third party's plugin will do each of these one day; the daemon must log and count it, bound
it (``daemon.plugin_timeout_s``, at most ``workers.STUCK_THREADS_PER_PLUGIN`` threads that never
return), and keep handing over.  The soak installs it as ``misbehave`` (``standby_rig.hot_standby``'s
``plugins``) and says what to do next by writing one word into ``MODE_FILE`` in the lab's directory
(``ORCHESTRATOR_TESTKIT_TMP``): ``raise``, ``hang`` or ``report``; a mode serves one call, then the
file is emptied.  The hook is a plain function, so it runs in one of the daemon's worker threads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from orchestrator import hookimpl

MODE_FILE = "misbehave"
ENTRY_POINT = "orchestrator_testkit.soak_plugin:PLUGIN"
HANG_S = 3600.0  # longer than any soak: a thread that never returns


def mode_file(directory: Path) -> Path:
    return directory / MODE_FILE


def _take_mode() -> str:
    path = mode_file(Path(os.environ["ORCHESTRATOR_TESTKIT_TMP"]))
    try:
        mode = path.read_text().strip()
    except FileNotFoundError:
        return ""
    if mode:
        path.write_text("")
    return mode


class Misbehaving:
    @hookimpl
    def orchestrator_standby_uplinks_changed(self, context: Any, event: Any) -> None:
        mode = _take_mode()
        if mode == "raise":
            raise RuntimeError("the soak's plugin raised, as asked")
        if mode == "report":
            context.report("the soak's plugin reports a problem from a worker thread, as asked")
        if mode == "hang":
            time.sleep(HANG_S)


PLUGIN = Misbehaving()
