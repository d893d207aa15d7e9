"""The metrics as a ``.prom`` file for node_exporter's textfile collector, on routers that run it.

Written atomically (a temporary file in the same directory, renamed over the file, mode 0644) so
node_exporter never reads half of one; at most once a second, and only after something changed and
the text differs: an idle daemon writes nothing and wakes up for nothing.  Removed when the daemon
stops cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from ..files import replace_file

log = logging.getLogger("orchestrator.metrics")

MIN_INTERVAL_S = 1.0


class Textfile:
    """The metrics file at ``path``; ``problem`` says why it could not be written, if so."""

    def __init__(self, path: Path, text: Callable[[], bytes]) -> None:
        self.path = path
        self.text = text
        self.problem: str | None = None
        self._written: bytes | None = None
        self._last = float("-inf")  # loop time of the last write
        self._timer: asyncio.TimerHandle | None = None

    def changed(self) -> None:
        """Something the metrics show changed: write within ``MIN_INTERVAL_S`` (once for a burst)."""
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(max(loop.time(), self._last + MIN_INTERVAL_S), self.write)

    def write(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        text = self.text()
        if text == self._written:
            return
        try:
            replace_file(self.path, text, 0o644)  # node_exporter runs as another user
        except OSError as error:
            if self.problem is None:
                log.error("metrics: cannot write %s: %s", self.path, error)
            self.problem = f"cannot write {self.path}: {error.strerror}"
            return
        self._written, self.problem = text, None

    def close(self) -> None:
        """A clean stop removes the file: node_exporter would go on serving the last values of a
        daemon that no longer runs (a crash leaves it; ``node_textfile_mtime_seconds`` shows its age)."""
        if self._timer is not None:
            self._timer.cancel()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as error:
            log.error("metrics: cannot remove %s: %s", self.path, error)
