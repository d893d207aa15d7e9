"""The metrics the configuration asks for: the registry, and the listener, the textfile or both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import MetricsSettings
from .listener import Listener
from .registry import Metrics
from .snapshot import Snapshot
from .textfile import Textfile


class MetricsService:
    """What the daemon calls: ``phase`` and ``changed`` on its event path, ``status`` for status."""

    def __init__(self, settings: MetricsSettings, snapshot: Callable[[], Snapshot]) -> None:
        self.metrics = Metrics(snapshot)
        self.listener = Listener(*settings.listen, self.metrics.text) if settings.listen else None
        self.textfile = Textfile(settings.textfile, self.metrics.text) if settings.textfile else None

    async def start(self) -> None:
        if self.listener is not None:
            await self.listener.start()
        if self.textfile is not None:
            self.textfile.write()

    def changed(self) -> None:
        """Something the metrics show changed (the textfile is written within a second)."""
        if self.textfile is not None:
            self.textfile.changed()

    def phase(self, name: str, seconds: float) -> None:
        self.metrics.phase(name, seconds)
        self.changed()

    def status(self) -> dict[str, Any]:
        listener, textfile = self.listener, self.textfile
        return {
            "listen": listener.address if listener else None,
            "listen_problem": listener.problem if listener else None,
            "textfile": str(textfile.path) if textfile else None,
            "textfile_problem": textfile.problem if textfile else None,
        }

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        if self.textfile is not None:
            self.textfile.close()
