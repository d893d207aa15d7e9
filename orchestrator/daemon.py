"""The daemon: plugins, config, engine, dispatcher and control socket wired together.

Derived events become hook calls: an uplink change begins a move in the ``uplink`` lane; tunnel
address and link changes go to their interface's lane; phases, completions and errors to
``control``.  Raw events are only counted (and logged at debug level).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import config as config_module
from . import plugins as plugin_module
from . import uplink_record
from .context import PluginContext
from .dispatch import CONTROL_LANE, POLICY_LANE, UPLINK_LANE, Dispatcher, interface_lane
from .engine import Engine
from .events import (
    AnyEvent,
    GatewayLearned,
    LinkAliasChanged,
    LinkChanged,
    Resync,
    RouteEvent,
    RuleEvent,
    StandbyUplinksChanged,
    TunnelAddressChanged,
    Uplink,
    UplinkChanged,
)
from .metrics.snapshot import Snapshot
from .moves import Move, MoveLog
from .notify import Notifier
from .watchdog import Watchdog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .metrics.service import MetricsService

log = logging.getLogger("orchestrator")

COUNTERS = (
    "events", "moves", "resyncs", "plugin_errors", "plugin_timeouts", "plugin_failures",
    "plugin_calls_refused", "calls_superseded",
)


def describe_uplink(event: UplinkChanged) -> str:
    return f"{describe_one(event.old)} -> {describe_one(event.new)}"


def describe_one(uplink: Uplink | None) -> str:
    return uplink.describe() if uplink is not None else "none"


def describe_standby(event: StandbyUplinksChanged) -> str:
    return ", ".join(map(describe_one, event.standby)) or "none"


class Daemon:
    def __init__(self, config: config_module.Config, infos: list[plugin_module.PluginInfo]) -> None:
        self.config = config
        self.infos = infos
        # Listed from the start so that status shows a zero rather than nothing.
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.started = time.time()
        self.pm = plugin_module.activate(infos, config.enable)
        reference = plugin_module.uplink_reference(self.pm, config)
        tables = plugin_module.watched_tables(self.pm, config)
        self.engine = Engine(config, self._on_event, reference, self.counters, tables)
        self.moves = MoveLog(config.daemon.move_timeout_s, self._on_phase, self._on_finished)
        self.contexts: dict[str, PluginContext] = {}
        self.dispatcher = Dispatcher(self.pm, self.contexts, config.daemon.plugin_timeout_s, self.counters)
        for name in config.enable:
            self.contexts[name] = self._context(name, config)
        self.notifier = Notifier()
        interval = self.notifier.watchdog_interval_s
        self.watchdog = (
            Watchdog(self.notifier, interval, self.dispatcher.wedged, self.counters, self._status_changed)
            if interval is not None else None
        )
        self.record = uplink_record.record_path(config.daemon.control_socket)
        self.metrics: MetricsService | None = None  # when [metrics] asks for a listener or a textfile
        self.reload_problem: str | None = None
        self.running = False  # between READY and stopping: the only time a reload is taken
        self._stop = asyncio.Event()

    async def run(self) -> None:
        from .control import ControlServer

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        for warning in plugin_module.config_warnings(self.pm, self.config):
            log.warning("%s: %s", self.config.path, warning)
        if self.notifier.problem:
            log.error("no notifications to the init system: %s", self.notifier.problem)
        self.engine.load()
        commands = {"status": lambda _: self.status(), "reload": lambda _: self.reload()}
        daemon = self.config.daemon
        control = ControlServer(daemon.control_socket, commands, group=daemon.control_group)
        if self.config.metrics.listen or self.config.metrics.textfile:  # before status can be asked
            from .metrics.service import MetricsService  # prometheus-client only when asked for

            self.metrics = MetricsService(self.config.metrics, self._metrics_snapshot)
            await self.metrics.start()
        await control.start()
        # Plugins reach their start-up state before the first event (which waits in the socket).
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_startup", {})
        await self.dispatcher.drain(CONTROL_LANE, self.config.daemon.plugin_timeout_s + 0.5)
        # Then what changed while no daemon watched, as moves of their own.
        self.engine.resume(uplink_record.read(self.record))
        self._record_uplink()
        self.engine.stream()
        log.info(
            "running: plugins %s, uplink %s",
            ", ".join(self.config.enable) or "none",
            self._uplink_text(),
        )
        self._notify(self.notifier.ready, self.summary())
        self.running = True
        if self.watchdog is not None:
            self.watchdog.start()
        try:
            await self._stop.wait()
        finally:
            self.running = False
            log.info("stopping")
            self._notify(self.notifier.stopping)
            if self.watchdog is not None:
                self.watchdog.stop()
            self.dispatcher.submit(CONTROL_LANE, "orchestrator_shutdown", {})
            # The shutdown hooks get their bounded time before the lanes are cancelled.
            await self.dispatcher.drain(CONTROL_LANE, self.config.daemon.plugin_timeout_s + 0.5)
            await control.close()
            if self.metrics is not None:
                await self.metrics.close()
            await self.engine.close()
            self.moves.close()
            await self.dispatcher.close()

    # -- reload ---------------------------------------------------------------------------------------

    def reload(self) -> dict[str, Any]:
        """Re-read and validate the configuration; a bad file changes nothing, a good one is
        applied as a difference (SIGHUP, and ``orchestrator reload``)."""
        if not self.running:
            log.warning("reload ignored: the daemon is starting or stopping")
            return {"ok": False, "problems": ["the daemon is starting or stopping"]}
        self._notify(self.notifier.reloading)
        try:
            new = plugin_module.validate(self.config.path, self.infos)
        except config_module.ConfigError as error:
            more = f" (and {len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
            self.reload_problem = f"reload refused: {error.path}: {error.problems[0]}{more}"
            log.error("%s; the running policy stays", self.reload_problem)
            self._notify(self.notifier.ready, self.summary())
            return {"ok": False, "problems": error.problems}
        changes = self._apply(new)
        self.reload_problem = None
        log.info("reloaded %s: %s", new.path, "; ".join(changes) or "nothing changed")
        self._notify(self.notifier.ready, self.summary())
        return {"ok": True, "changes": changes}

    def _apply(self, new: config_module.Config) -> list[str]:
        """Plugins whose section or the ``[[interfaces]]`` policy changed are stopped and started
        again with the new configuration; the others, the network state and moves in flight stay."""
        old = self.config
        changes = [
            f"daemon.{key} changed: it applies after a restart"
            for key in config_module.RESTART_ONLY_KEYS
            if getattr(old.daemon, key) != getattr(new.daemon, key)
        ]
        if old.metrics != new.metrics:
            changes.append("[metrics] changed: it applies after a restart")
        policy_changed = old.interfaces != new.interfaces
        restarted = {
            name for name in set(old.enable) & set(new.enable)
            if policy_changed or old.section(name) != new.section(name)
        }
        stop = frozenset(set(old.enable) - set(new.enable) | restarted)
        start = frozenset(set(new.enable) - set(old.enable) | restarted)
        if stop:
            self.dispatcher.submit(CONTROL_LANE, "orchestrator_shutdown", {}, plugins=stop)
        self.config = new
        self.pm = plugin_module.activate(self.infos, new.enable)
        if plugin_module.watched_tables(self.pm, new) != self.engine.tables:
            changes.append("the routing tables watched change: that applies after a restart")
        # Queued calls keep the plugin objects they were made for: swapping the manager is safe.
        self.dispatcher.pm = self.pm
        self.dispatcher.timeout_s = new.daemon.plugin_timeout_s
        self.moves.timeout_s = new.daemon.move_timeout_s
        self.engine.state.reconfigure(new, plugin_module.uplink_reference(self.pm, new))
        for name in list(self.contexts):
            if name not in new.enable or name in start:
                del self.contexts[name]
        for name in new.enable:
            if name not in self.contexts:
                self.contexts[name] = self._context(name, new)
        if start:
            self.dispatcher.submit(CONTROL_LANE, "orchestrator_startup", {}, plugins=start)
        changes += [f"plugin {name} stopped" for name in sorted(stop - start)]
        changes += [f"plugin {name} started" for name in sorted(start - stop)]
        changes += [f"plugin {name} restarted with the new values" for name in sorted(start & stop)]
        if old.uplinks != new.uplinks or old.daemon != new.daemon:
            changes.append("core values updated")
        return changes

    # -- telling the init system ----------------------------------------------------------------------

    def summary(self) -> str:
        """One line for STATUS=: the uplink, the tunnels, the expected care-of address, the last move."""
        parts = [f"uplink {self._uplink_text()}"]
        for name, address in self.engine.state.tunnels().items():
            parts.append(f"{name} {address or 'no address'}")
        for context in self.contexts.values():
            if context.status.get("expected_coa"):
                parts.append(f"CoA {context.status['expected_coa']}")
        last = self.moves.recent[-1] if self.moves.recent else None
        if last is not None and last.finished:
            took = f"{last.phases.get('finished', 0) * 1000:.0f} ms"
            problem = f": {last.problems[0]}" if last.problems else ""
            parts.append(f"move {last.id} {last.outcome} after {took}{problem}")
        if self.watchdog is not None and self.watchdog.problem:
            parts.append(f"watchdog withheld: {self.watchdog.problem}")
        if self.reload_problem:
            parts.append(self.reload_problem)
        return "; ".join(parts)

    def _notify(self, send: Callable[..., None], *args: Any) -> None:
        try:
            send(*args)
        except OSError as error:
            log.error("cannot notify the init system: %s", error)

    def _context(self, name: str, config: config_module.Config) -> PluginContext:
        logger = logging.getLogger(f"orchestrator.{name}")
        return PluginContext(
            name, config, self.engine.state, self.moves, logger, self.counters, services=self.dispatcher
        )

    def _uplink_text(self) -> str:
        uplink = self.engine.state.tracker.current
        return f"{uplink.interface} {uplink.address}" if uplink else "none"

    # -- events to hook calls -----------------------------------------------------------------------

    def _on_event(self, event: AnyEvent, when: float) -> None:
        if self.metrics is not None:
            self.metrics.changed()
        if isinstance(event, UplinkChanged):
            self.counters["moves"] += 1
            move = self.moves.begin(event, when)
            move.phase("detected")
            log.info("move %d: uplink %s", move.id, describe_uplink(event))
            self.dispatcher.submit(
                UPLINK_LANE,
                "orchestrator_uplink_changed",
                {"event": event, "move": move},
                move,
                on_done=lambda: self.moves.dispatched(move),
            )
        elif isinstance(event, TunnelAddressChanged):
            current = self.moves.current
            self.dispatcher.submit(
                interface_lane(event.interface),
                "orchestrator_tunnel_address_changed",
                {"event": event, "move": current if current and not current.finished else None},
            )
            # Logged after the hooks started: a handover should not wait for a log line.
            log.info("tunnel %s address %s -> %s", event.interface, event.old, event.new)
            self._status_changed()
        elif isinstance(event, LinkChanged):
            log.debug("link %s up=%s carrier=%s", event.interface, event.up, event.carrier)
            self.dispatcher.submit(
                interface_lane(event.interface), "orchestrator_link_changed", {"event": event}
            )
        elif isinstance(event, StandbyUplinksChanged):
            log.info("standby uplinks: %s", describe_standby(event))
            self.dispatcher.submit(UPLINK_LANE, "orchestrator_standby_uplinks_changed", {"event": event})
            self._status_changed()
        elif isinstance(event, LinkAliasChanged):
            self.dispatcher.submit(
                interface_lane(event.interface), "orchestrator_link_alias_changed", {"event": event}
            )
        elif isinstance(event, (RouteEvent, RuleEvent)) and event.deleted and event.family == socket.AF_INET6:
            self.dispatcher.submit(POLICY_LANE, "orchestrator_policy_removed", {"event": event})
        elif isinstance(event, Resync):
            log.warning("resynchronised after a netlink overrun: %d changes replayed", event.replayed)
        elif isinstance(event, GatewayLearned):
            log.info("gateway %s on %s is at %s", event.gateway, event.interface, event.lladdr)
            self._record_uplink()
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s", event)

    def _record_uplink(self) -> None:
        """Keep the uplink for a restarted daemon (see ``uplink_record``) once it is served: not
        while a move to it is open, so that a daemon restarted before its plugins finished (a kick
        held back by its minimum interval, a wedged plugin) still finds the move missing, nor
        after a move that failed."""
        move = self.moves.current
        if move is None or move.finished:
            uplink_record.write(self.record, self.engine.state.tracker.current)

    def _on_phase(self, move: Move, phase: str) -> None:
        if self.metrics is not None:
            self.metrics.phase(phase, move.phases[phase])
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_move_phase", {"move": move, "phase": phase})

    def _on_finished(self, move: Move) -> None:
        self.counters[f"moves_{move.outcome}"] += 1
        if self.metrics is not None:
            self.metrics.phase("finished", move.phases["finished"])
        if move.outcome == "ok" and move is self.moves.current:
            self._record_uplink()
        problems = f": {'; '.join(move.problems)}" if move.problems else ""
        log.info("move %d %s after %.3f s%s", move.id, move.outcome, move.phases.get("finished", 0), problems)
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_move_finished", {"move": move})
        self._status_changed()

    def _status_changed(self, _reason: str | None = None) -> None:
        """Send STATUS= again; on the event path, so its line is built only when someone listens.
        The metrics' textfile follows (the watchdog withholding its ping is one such change)."""
        if self.metrics is not None:
            self.metrics.changed()
        if self.notifier.active:
            self._notify(self.notifier.status, self.summary())

    # -- status -----------------------------------------------------------------------------------

    def _uplinks(self) -> list[tuple[str, Uplink]]:
        """Every complete uplink with its role: the active one first, then the standby ones."""
        state = self.engine.state
        active = [("active", state.tracker.current)] if state.tracker.current else []
        return [*active, *(("standby", uplink) for uplink in state.standby)]

    def _metrics_snapshot(self) -> Snapshot:
        return Snapshot(
            counters=self.counters,
            plugin_failures=self.dispatcher.failures,
            uplinks=self._uplinks(),
            tunnels=self.engine.state.tunnels(),
        )

    def status(self) -> dict[str, Any]:
        state = self.engine.state
        uplink = state.tracker.current
        return {
            "uplink": uplink.to_json() if uplink else None,
            "uplinks": [{"role": role, **each.to_json()} for role, each in self._uplinks()],
            "tunnels": state.tunnels(),
            "moves": [move.to_json() for move in self.moves.recent],
            "counters": dict(self.counters, netlink_messages=self.engine.source.messages_seen),
            "plugins": [
                {
                    "name": info.name,
                    "source": info.distribution,
                    "state": "enabled"
                    if info.name in self.config.enable
                    else ("error" if info.error else "disabled"),
                    "error": info.error,
                    "stuck_threads": self.dispatcher.stuck_threads(info.name),
                    "status": self.contexts[info.name].status if info.name in self.contexts else {},
                }
                for info in self.infos
            ],
            "lanes": self.dispatcher.lanes_status(),
            "state": state.view.snapshot(),
            "config": str(self.config.path),
            "reload_problem": self.reload_problem,
            "watchdog": None if self.watchdog is None else {
                "interval_s": self.watchdog.interval_s,
                "withheld": self.watchdog.problem,
                "wedge_bound_s": self.dispatcher.wedge_bound_s,
            },
            "started": self.started,
            "metrics": None if self.metrics is None else self.metrics.status(),
        }
