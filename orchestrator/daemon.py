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
from pathlib import Path
from typing import Any

from . import config as config_module
from . import plugins as plugin_module
from .context import PluginContext
from .dispatch import CONTROL_LANE, POLICY_LANE, UPLINK_LANE, Dispatcher, interface_lane
from .engine import Engine
from .events import (
    AnyEvent,
    GatewayLearned,
    LinkChanged,
    Resync,
    RouteEvent,
    RuleEvent,
    TunnelAddressChanged,
    UplinkChanged,
)
from .moves import Move, MoveLog

log = logging.getLogger("orchestrator")

COUNTERS = (
    "events", "moves", "resyncs", "plugin_errors", "plugin_timeouts", "plugin_failures", "calls_superseded"
)


def load(path: Path) -> tuple[config_module.Config, list[plugin_module.PluginInfo]]:
    """Discover plugins, then validate the config against the core's and their schemas."""
    infos = plugin_module.discover()
    loaded = {info.name for info in infos if info.loaded}
    broken = {info.name: info.error for info in infos if info.error and info.name not in loaded}
    config = config_module.load(path, plugin_module.sections(infos), loaded, broken)
    problems = plugin_module.check_config(plugin_module.activate(infos, config.enable), config)
    if problems:
        raise config_module.ConfigError(path, problems)
    return config, infos


def describe_uplink(event: UplinkChanged) -> str:
    def one(u: Any) -> str:
        if u is None:
            return "none"
        via = f" via {u.gateway}" if u.gateway else ""
        mac = f" ({u.gateway_lladdr})" if u.gateway_lladdr else ""
        return f"{u.interface} {u.address}{via}{mac}"

    return f"{one(event.old)} -> {one(event.new)}"


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
            logger = logging.getLogger(f"orchestrator.{name}")
            self.contexts[name] = PluginContext(
                name, config, self.engine.state, self.moves, logger, self.counters, services=self.dispatcher
            )
        self._stop = asyncio.Event()

    async def run(self) -> None:
        from .control import ControlServer

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(
            signal.SIGHUP, log.warning, "SIGHUP: reloading is not supported yet; restart to apply changes"
        )
        for warning in plugin_module.config_warnings(self.pm, self.config):
            log.warning("%s: %s", self.config.path, warning)
        self.engine.load()
        control = ControlServer(self.config.daemon.control_socket, {"status": lambda _: self.status()})
        await control.start()
        # Plugins reach their start-up state before the first event (which waits in the socket).
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_startup", {})
        await self.dispatcher.drain(CONTROL_LANE, self.config.daemon.plugin_timeout_s + 0.5)
        self.engine.stream()
        log.info(
            "running: plugins %s, uplink %s",
            ", ".join(self.config.enable) or "none",
            self._uplink_text(),
        )
        try:
            await self._stop.wait()
        finally:
            log.info("stopping")
            self.dispatcher.submit(CONTROL_LANE, "orchestrator_shutdown", {})
            # The shutdown hooks get their bounded time before the lanes are cancelled.
            await self.dispatcher.drain(CONTROL_LANE, self.config.daemon.plugin_timeout_s + 0.5)
            await control.close()
            await self.engine.close()
            self.moves.close()
            await self.dispatcher.close()

    def _uplink_text(self) -> str:
        uplink = self.engine.state.tracker.current
        return f"{uplink.interface} {uplink.address}" if uplink else "none"

    # -- events to hook calls -----------------------------------------------------------------------

    def _on_event(self, event: AnyEvent, when: float) -> None:
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
        elif isinstance(event, LinkChanged):
            log.debug("link %s up=%s carrier=%s", event.interface, event.up, event.carrier)
            self.dispatcher.submit(
                interface_lane(event.interface), "orchestrator_link_changed", {"event": event}
            )
        elif isinstance(event, (RouteEvent, RuleEvent)) and event.deleted and event.family == socket.AF_INET6:
            self.dispatcher.submit(POLICY_LANE, "orchestrator_policy_removed", {"event": event})
        elif isinstance(event, Resync):
            log.warning("resynchronised after a netlink overrun: %d changes replayed", event.replayed)
        elif isinstance(event, GatewayLearned):
            log.info("gateway %s on %s is at %s", event.gateway, event.interface, event.lladdr)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s", event)

    def _on_phase(self, move: Move, phase: str) -> None:
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_move_phase", {"move": move, "phase": phase})

    def _on_finished(self, move: Move) -> None:
        self.counters[f"moves_{move.outcome}"] += 1
        problems = f": {'; '.join(move.problems)}" if move.problems else ""
        log.info("move %d %s after %.3f s%s", move.id, move.outcome, move.phases.get("finished", 0), problems)
        self.dispatcher.submit(CONTROL_LANE, "orchestrator_move_finished", {"move": move})

    # -- status -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.engine.state
        uplink = state.tracker.current
        tunnels = {
            spec_name: state.tunnel_address(spec_name)
            for spec_name in sorted(
                link.name for link in state.view.links.values() if self.config.role(link.name) == "tunnel"
            )
        }
        return {
            "uplink": uplink.to_json() if uplink else None,
            "tunnels": tunnels,
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
                    "status": self.contexts[info.name].status if info.name in self.contexts else {},
                }
                for info in self.infos
            ],
            "lanes": self.dispatcher.lanes_status(),
            "state": state.view.snapshot(),
            "config": str(self.config.path),
            "started": self.started,
        }
