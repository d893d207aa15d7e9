"""PluginContext: the narrow window a plugin gets onto the daemon.

Plugins see their own config section, a logger named after them, the whole validated config (for the
``[[interfaces]]`` policy), the network state (read it, never change it) and the move log.  They never
reach into the dispatcher or the netlink source: the core can change those without breaking them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .moves import Move, MoveLog
from .state import NetworkState


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

    @property
    def section(self) -> Mapping[str, Any]:
        """This plugin's validated config section (empty when it declares none)."""
        return self.config.section(self.name)

    @property
    def current_move(self) -> Move | None:
        move = self.moves.current
        return move if move is not None and not move.finished else None
