"""The metrics, built from the daemon's state on each scrape; the move phases timed as they happen.

Names follow Prometheus conventions, prefixed ``orchestrator_``.  Every counter of the daemon's
``Counter`` (the core's and the plugins', which plugins name after themselves: ``teredo_kicks``) is
``orchestrator_<name>_total``, except the ones given a label or a clearer name below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .snapshot import Snapshot

log = logging.getLogger("orchestrator.metrics")

#: Phase timings resolve milliseconds: a handover is tens of them, a re-qualification's timeout 8 s.
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MOVE_OUTCOMES = ("ok", "failed", "timeout", "superseded")
OUTCOME_COUNTERS = frozenset(f"moves_{outcome}" for outcome in MOVE_OUTCOMES)
#: The core's counters that a labelled family shows: moves by outcome, plugin failures by plugin.
IN_A_FAMILY = OUTCOME_COUNTERS | {"plugin_failures"}
PHASES = "orchestrator_move_phase_seconds"
NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")  # a plugin's counter may be named anything
#: Counters with a name of their own (the rest become ``orchestrator_<name>_total``).
RENAMED = {
    "events": ("netlink_events", "netlink messages that changed the state (raw events)"),
    "resyncs": ("netlink_resyncs", "re-dumps of the kernel after a netlink overrun"),
    "watchdog_withheld": ("watchdog_withheld", "watchdog pings withheld because a lane was wedged"),
    "moves": ("moves_begun", "moves begun (each ends with an outcome, see orchestrator_moves_total)"),
}


class Metrics:
    """The registry: the phase histogram, observed when a phase is recorded, and a collector that
    reads ``snapshot()`` on each scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no _created series: what dashboards use
        self.phases = Histogram(
            PHASES,
            "time from a move's start to each phase it reached (detected, requalify-sent, tunnel-up, "
            "routes-applied, coa-purged, bu-sent, handover-confirmed, finished, ...)",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(snapshot))

    def phase(self, name: str, seconds: float) -> None:
        """A move reached phase ``name`` ``seconds`` after it began."""
        self.phases.labels(phase=name).observe(seconds)

    def text(self) -> bytes:
        """The exposition format (version 0.0.4), as ``/metrics`` serves it."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot
        self.refused: set[str] = set()  # plugins' counters whose name a family of ours has: said once

    def collect(self) -> Iterator[Metric]:
        now = self.snapshot()
        families = list(self._families(now))
        taken = {family.name for family in families} | {PHASES}
        yield from families
        for name, value in sorted(now.counters.items()):
            if name in IN_A_FAMILY:
                continue  # orchestrator_moves_total{outcome}, orchestrator_plugin_failures_total{plugin}
            own = (NOT_IN_A_NAME.sub("_", name), f"{name}, as orchestrator status counts it")
            metric, text = RENAMED.get(name, own)
            family = f"orchestrator_{metric}"
            if family in taken:
                if name not in self.refused:
                    self.refused.add(name)
                    log.warning("metrics: counter %r is not exported: %s_total is taken", name, family)
                continue
            taken.add(family)
            yield CounterMetricFamily(family, text, value=value)

    def _families(self, now: Snapshot) -> Iterator[Metric]:
        moves = CounterMetricFamily("orchestrator_moves", "moves ended, by outcome", labels=["outcome"])
        for outcome in MOVE_OUTCOMES:
            moves.add_metric([outcome], now.counters.get(f"moves_{outcome}", 0))
        yield moves
        failures = CounterMetricFamily(
            "orchestrator_plugin_failures", "failures of each plugin (errors, timeouts, reports)",
            labels=["plugin"],
        )
        for plugin, count in sorted(now.plugin_failures.items()):
            failures.add_metric([plugin], count)
        yield failures
        uplinks = list(now.uplinks)
        info = GaugeMetricFamily(
            "orchestrator_uplink_info", "1 per complete uplink: active, or standby with several",
            labels=["interface", "address", "role"],
        )
        for role, uplink in uplinks:
            info.add_metric([uplink.interface, uplink.address, role], 1)
        yield info
        active = any(role == "active" for role, _ in uplinks)
        yield GaugeMetricFamily("orchestrator_uplink_up", "1 while an uplink is active, else 0", value=active)
        tunnel = GaugeMetricFamily(
            "orchestrator_tunnel_up", "1 when the tunnel holds a usable global address", labels=["interface"]
        )
        for name, address in sorted(now.tunnels.items()):
            tunnel.add_metric([name], 1 if address else 0)
        yield tunnel
