"""The ``exec`` plugin object: hands each event to the ``[[exec]]`` scripts that asked for it."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator import (
    CONTROL_LANE,
    UPLINK_LANE,
    Config,
    LinkChanged,
    Move,
    PluginContext,
    Section,
    TunnelAddressChanged,
    UplinkChanged,
    hookimpl,
    interface_lane,
)

from . import environment, scripts
from .environment import Invocation
from .runner import Job, LaneRunner


class ExecPlugin:
    """The plugin object (entry point ``orchestrator_exec.plugin:PLUGIN``)."""

    def __init__(self) -> None:
        self.context: PluginContext | None = None
        self.scripts: list[scripts.Script] = []
        self.lanes: dict[str, LaneRunner] = {}

    @hookimpl
    def orchestrator_config_schema(self) -> Mapping[str, Section]:
        return {"exec": scripts.SECTION}

    @hookimpl
    def orchestrator_check_config(self, config: Config) -> list[str]:
        return scripts.problems(config.section("exec"))

    @hookimpl
    async def orchestrator_startup(self, context: PluginContext) -> None:
        self.context = context
        self.scripts = scripts.scripts(context.section)
        for name in ("exec_runs", "exec_failures", "exec_timeouts"):
            context.counters[name] += 0
        context.status.update(scripts=len(self.scripts))

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        lanes, self.lanes, self.context = self.lanes, {}, None
        for runner in lanes.values():
            await runner.close()

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged, move: Move) -> None:
        self._submit(UPLINK_LANE, environment.uplink_changed(event, move), move, hold=True)

    @hookimpl
    async def orchestrator_tunnel_address_changed(
        self, event: TunnelAddressChanged, move: Move | None
    ) -> None:
        invocation = environment.tunnel_address_changed(event)
        self._submit(interface_lane(event.interface), invocation, move, hold=True)

    @hookimpl
    async def orchestrator_link_changed(self, event: LinkChanged) -> None:
        self._submit(interface_lane(event.interface), environment.link_changed(event), None, hold=False)

    @hookimpl
    async def orchestrator_move_finished(self, move: Move) -> None:
        self._submit(CONTROL_LANE, environment.move_finished(move), move, hold=False)

    def _submit(self, lane: str, invocation: Invocation, move: Move | None, hold: bool) -> None:
        """Queue the scripts that want this event in the lane's runner; a move in progress stays open
        until they have run, and their failures fail it."""
        context = self.context
        if context is None:
            return  # stopped: a late call
        wanted = [s for s in self.scripts if s.wants(invocation.event, invocation.interfaces)]
        if not wanted:
            return
        runner = self.lanes.get(lane)
        if runner is None:
            runner = self.lanes[lane] = LaneRunner(lane, context.report, self._count, self._forget)
        part = move.hold() if hold and move is not None and not move.finished else None
        runner.submit(Job(wanted, invocation, move, part))

    def _forget(self, runner: LaneRunner) -> None:
        if self.lanes.get(runner.lane) is runner:
            del self.lanes[runner.lane]

    def _count(self, name: str) -> None:
        if self.context is not None:
            self.context.counters[name] += 1


PLUGIN = ExecPlugin()
