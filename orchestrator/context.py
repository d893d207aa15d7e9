"""PluginContext: the narrow window a plugin gets onto the daemon.

Plugins see their own config section, a logger named after them, the whole validated config (for the
``[[interfaces]]`` policy), the network state (read it, never change it) and the move log.  They never
reach into the dispatcher or the netlink source: the core can change those without breaking them.
Two doors lead back to the other plugins, both through the core: ``ask`` (a first-result question,
such as the expected care-of address) and ``report`` (a failure the plugin found itself, which the
other plugins hear through ``orchestrator_on_error``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import Config
from .moves import Move, MoveLog
from .state import NetworkState


class Services(Protocol):
    """What the daemon offers plugins besides data (implemented by the dispatcher)."""

    def ask(self, hook: str, kwargs: dict[str, Any]) -> Any: ...

    def report(self, plugin: str, problem: str, move: Move | None) -> None: ...


@dataclass(frozen=True)
class PluginContext:
    name: str
    config: Config
    state: NetworkState
    moves: MoveLog
    log: logging.Logger
    counters: Counter[str]  # shown by `orchestrator status`; name yours after your plugin
    # Shown by `orchestrator status` under this plugin: small, JSON-able, kept current by the plugin.
    status: dict[str, Any] = field(default_factory=dict)
    services: Services | None = None

    @property
    def section(self) -> Mapping[str, Any]:
        """This plugin's validated config section (empty when it declares none)."""
        return self.config.section(self.name)

    @property
    def current_move(self) -> Move | None:
        move = self.moves.current
        return move if move is not None and not move.finished else None

    def ask(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None answer of the enabled plugins to a first-result hook, in
        ``plugins.enable`` order (a failing answer is logged, counted and skipped).  Answered at
        once, on the event loop: such hooks are plain functions that only compute.  Asked from a
        worker thread (a plain-function hook), the question is handed to the loop and the thread
        waits for the answer, at most ``daemon.plugin_timeout_s`` (then ``TimeoutError``)."""
        if self.services is None:
            raise RuntimeError("no daemon to ask")
        return self.services.ask(hook, kwargs)

    def report(self, problem: str, move: Move | None = None) -> None:
        """A failure this plugin found (a handover never confirmed, say): logged, counted as
        ``plugin_failures``, recorded on ``move`` (unless it has already ended) and passed to every
        ``orchestrator_on_error``.  From a worker thread (a plain-function hook) it is handed to the
        event loop, which handles it the same way."""
        if self.services is None:
            raise RuntimeError("no daemon to report to")
        self.services.report(self.name, problem, move)
