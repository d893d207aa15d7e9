"""What a scrape reads from the daemon: kept apart from ``registry`` so that the daemon can build it
without importing prometheus-client when no metrics are configured."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..events import Uplink


@dataclass(frozen=True)
class Snapshot:
    """The daemon's counters, each plugin's failures, the complete uplinks as (role, uplink) with
    role "active" or "standby", and every present tunnel with its usable address (None: none)."""

    counters: Mapping[str, int]
    plugin_failures: Mapping[str, int]
    uplinks: Iterable[tuple[str, Uplink]]
    tunnels: Mapping[str, str | None]
