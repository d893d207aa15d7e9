"""Dispatcher with real pluggy plugins: order, lanes, superseding, isolation of failures."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orchestrator_testkit.configs import load, write

from orchestrator import hookimpl, plugins
from orchestrator.context import PluginContext
from orchestrator.dispatch import UPLINK_LANE, Dispatcher, interface_lane
from orchestrator.events import LinkChanged, Uplink, UplinkChanged
from orchestrator.moves import MoveLog
from orchestrator.state import NetworkState

A = Uplink("eth0", "10.1.0.100/24", "10.1.0.1")
B = Uplink("eth0", "10.2.0.100/24", "10.2.0.1")
C = Uplink("eth0", "10.3.0.100/24", "10.3.0.1")


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, Any]]) -> None:
        self.name, self.log = name, log

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged) -> None:
        self.log.append((self.name, (event.old, event.new)))

    @hookimpl
    def orchestrator_link_changed(self, event: LinkChanged) -> None:
        self.log.append((self.name, event.carrier))

    @hookimpl
    def orchestrator_on_error(self, plugin: str, hook: str, error: str) -> None:
        self.log.append((self.name, ("error", plugin, hook, error)))


class HoldsTheFirstCall(Recorder):
    """Records, and keeps its first call waiting until ``gate`` opens: later calls queue."""

    def __init__(self, name: str, log: list[tuple[str, Any]], gate: asyncio.Event) -> None:
        super().__init__(name, log)
        self.gate = gate

    @hookimpl
    async def orchestrator_uplink_changed(self, event: UplinkChanged) -> None:
        self.log.append((self.name, (event.old, event.new)))
        if len(self.log) == 1:
            await self.gate.wait()


class Raises:
    @hookimpl
    def orchestrator_uplink_changed(self) -> None:
        raise RuntimeError("boom")


class BlocksInAThread:
    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def orchestrator_uplink_changed(self) -> None:
        self.release.wait(30)


class NeverFinishes:
    @hookimpl
    async def orchestrator_uplink_changed(self) -> None:
        await asyncio.Event().wait()


class Harness:
    def __init__(self, tmp_path: Path, named: dict[str, object], timeout: float = 0.2) -> None:
        config = load(write(tmp_path))
        infos = [plugins.PluginInfo(name, "test", None, None, plugin=p) for name, p in named.items()]
        self.pm = plugins.activate(infos, list(named))
        self.counters: Counter[str] = Counter()
        self.finished: list[str] = []
        self.moves = MoveLog(5.0, lambda m, p: None, lambda m: self.finished.append(m.outcome or ""))
        state = NetworkState(config, lookup=lambda _d: None, reread=lambda _f, _t: [])
        contexts = {
            name: PluginContext(name, config, state, self.moves, logging.getLogger(name), self.counters)
            for name in named
        }
        self.dispatcher = Dispatcher(self.pm, contexts, timeout, self.counters)

    def move(self, old: Uplink | None, new: Uplink | None, number: int) -> None:
        event = UplinkChanged(old, new, number)
        move = self.moves.begin(event, time.monotonic())
        self.dispatcher.submit(UPLINK_LANE, "orchestrator_uplink_changed", {"event": event, "move": move},
                               move, on_done=lambda: self.moves.dispatched(move))

    async def settle(self) -> None:
        for name in list(self.dispatcher.lanes):
            assert await self.dispatcher.drain(name, 5.0)
        for name in list(self.dispatcher.lanes):  # errors queued by the first pass
            assert await self.dispatcher.drain(name, 5.0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_plugins_run_in_enable_order(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []

    async def go() -> None:
        h = Harness(tmp_path, {"first": Recorder("first", log), "second": Recorder("second", log)})
        h.move(A, B, 1)
        await h.settle()
        await h.dispatcher.close()

    run(go())
    assert log == [("first", (A, B)), ("second", (A, B))]


def test_failures_are_isolated_reported_and_counted(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    blocker = BlocksInAThread()

    async def go() -> Harness:
        h = Harness(tmp_path, {"raises": Raises(), "blocks": blocker, "hangs": NeverFinishes(),
                               "witness": Recorder("witness", log)})
        h.move(A, B, 1)
        await h.settle()
        await h.dispatcher.close()
        return h

    try:
        h = run(go())
    finally:
        blocker.release.set()
    assert ("witness", (A, B)) in log
    errors = sorted(entry[1][1:] for entry in log if entry[1][0] == "error")
    assert errors == [
        ("blocks", "orchestrator_uplink_changed", "timeout after 0.2 s"),
        ("hangs", "orchestrator_uplink_changed", "timeout after 0.2 s"),
        ("raises", "orchestrator_uplink_changed", "RuntimeError: boom"),
    ]
    assert h.counters["plugin_errors"] == 3 and h.counters["plugin_timeouts"] == 2
    move = h.moves.recent[-1]
    assert move.outcome == "failed" and len(move.problems) == 3


def test_queued_state_calls_are_superseded_keeping_the_oldest_old(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    gate = asyncio.Event()

    async def go() -> Harness:
        h = Harness(tmp_path, {"rec": HoldsTheFirstCall("rec", log, gate)}, timeout=5)
        h.move(A, B, 1)  # starts at once and waits: the next two queue behind it
        h.move(B, None, 2)
        h.move(None, C, 3)  # supersedes the queued (B, None): one call (B, C)
        gate.set()
        await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    assert log == [("rec", (A, B)), ("rec", (B, C))]
    assert h.counters["calls_superseded"] == 1
    assert h.finished == ["superseded", "superseded", "ok"]


def test_errors_are_never_superseded(tmp_path: Path) -> None:
    """Two failures queue behind a slow on_error: both are delivered."""
    reported: list[str] = []
    gate = asyncio.Event()

    class SlowErrorHandler:
        @hookimpl
        async def orchestrator_on_error(self, error: str, move: Any) -> None:
            reported.append(move.id)
            if len(reported) == 1:
                await gate.wait()

    async def go() -> None:
        h = Harness(tmp_path, {"raises": Raises(), "handler": SlowErrorHandler()}, timeout=5)
        h.move(A, B, 1)
        assert await h.dispatcher.drain(UPLINK_LANE, 5)
        h.move(B, C, 2)
        assert await h.dispatcher.drain(UPLINK_LANE, 5)
        gate.set()
        await h.settle()
        await h.dispatcher.close()

    run(go())
    assert reported == [1, 2]


def test_a_plugin_raising_cancelled_error_is_a_failure_not_the_end_of_its_lane(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []

    class Cancels:
        @hookimpl
        async def orchestrator_uplink_changed(self) -> None:
            raise asyncio.CancelledError

    async def go() -> Harness:
        h = Harness(tmp_path, {"cancels": Cancels(), "rec": Recorder("rec", log)})
        h.move(A, B, 1)
        h.move(B, C, 2)
        await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    assert [entry for entry in log if entry[1][0] != "error"] == [("rec", (A, B)), ("rec", (B, C))]
    assert h.counters["plugin_errors"] == 2


def test_changes_that_cancel_out_while_queued_are_not_delivered(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    gate = asyncio.Event()

    async def go() -> Harness:
        h = Harness(tmp_path, {"rec": HoldsTheFirstCall("rec", log, gate)}, timeout=5)
        h.move(A, B, 1)
        h.move(B, None, 2)  # lost ...
        h.move(None, B, 3)  # ... and back before anyone saw the loss
        gate.set()
        await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    assert log == [("rec", (A, B))]
    assert h.finished == ["superseded", "superseded", "ok"]


def test_lanes_run_in_parallel(tmp_path: Path) -> None:
    """A plugin stuck on one interface's lane does not delay the uplink lane."""
    log: list[tuple[str, Any]] = []
    gate = threading.Event()

    class SlowLink:
        @hookimpl
        def orchestrator_link_changed(self) -> None:
            gate.wait(10)

    async def go() -> None:
        h = Harness(tmp_path, {"slow": SlowLink(), "rec": Recorder("rec", log)}, timeout=20)
        h.dispatcher.submit(interface_lane("teredo"), "orchestrator_link_changed",
                            {"event": LinkChanged("teredo", True, True, True)})
        h.move(A, B, 1)
        assert await h.dispatcher.drain(UPLINK_LANE, 5.0)
        assert log == [("rec", (A, B))]  # the uplink move ran while the link lane is blocked
        gate.set()
        await h.settle()
        await h.dispatcher.close()

    run(go())
    assert log == [("rec", (A, B)), ("rec", True)]


def test_hold_keeps_the_move_open_until_released(tmp_path: Path) -> None:
    parts: list[Any] = []

    class Holder:
        @hookimpl
        async def orchestrator_uplink_changed(self, move: Any) -> None:
            parts.append(move.hold())

    async def go() -> Harness:
        h = Harness(tmp_path, {"holder": Holder()})
        h.move(A, B, 1)
        await h.settle()
        assert h.finished == []
        parts[0].done()
        return h

    h = run(go())
    assert h.finished == ["ok"]


class Predicts:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    @hookimpl
    def orchestrator_expected_coa(self) -> str | None:
        return self.answer


class PredictsBadly:
    @hookimpl
    def orchestrator_expected_coa(self) -> str | None:
        raise RuntimeError("no idea")


def test_a_question_gets_the_first_answer_in_enable_order_past_failures(tmp_path: Path) -> None:
    async def go() -> None:
        named = {"bad": PredictsBadly(), "silent": Predicts(None), "a": Predicts("2001:db8::a"),
                 "b": Predicts("2001:db8::b")}
        h = Harness(tmp_path, named)
        question = {"config": None, "state": None, "exclude": None}
        answer = h.dispatcher.ask("orchestrator_expected_coa", question)
        assert answer == "2001:db8::a" and h.counters["plugin_errors"] == 1
        await h.dispatcher.close()

    run(go())


class PredictsThroughACoroutine:
    """A plain function returning a coroutine (as a decorator around ``async def`` can): loading
    cannot tell, so the question takes it for no answer."""

    @hookimpl
    def orchestrator_expected_coa(self) -> Any:
        async def predicted() -> str:
            return "2001:db8::c"

        return predicted()


def test_a_coroutine_is_no_answer_to_a_question(tmp_path: Path) -> None:
    async def go() -> None:
        h = Harness(tmp_path, {"wrapped": PredictsThroughACoroutine(), "a": Predicts("2001:db8::a")})
        question = {"config": None, "state": None, "exclude": None}
        assert h.dispatcher.ask("orchestrator_expected_coa", question) == "2001:db8::a"
        assert h.counters["plugin_errors"] == 1
        await h.dispatcher.close()

    run(go())


def test_a_reported_failure_reaches_on_error_and_the_move(tmp_path: Path) -> None:
    heard: list[tuple[str, str, str]] = []

    class Listens:
        @hookimpl
        def orchestrator_on_error(self, plugin: str, hook: str, error: str) -> None:
            heard.append((plugin, hook, error))

    async def go() -> None:
        h = Harness(tmp_path, {"listens": Listens()})
        event = UplinkChanged(A, B, 1)
        move = h.moves.begin(event, time.monotonic())
        h.dispatcher.report("mipv6", "no Binding Acknowledgement", move)
        await h.settle()
        assert heard == [("mipv6", "report", "no Binding Acknowledgement")]
        assert move.problems == ["no Binding Acknowledgement"] and h.counters["plugin_failures"] == 1
        h.moves.finish(move, "failed")
        h.dispatcher.report("exec", "a script of the ended move failed late", move)
        await h.settle()
        assert move.problems == ["no Binding Acknowledgement"]  # an ended move keeps what it had
        assert heard[-1] == ("exec", "report", "a script of the ended move failed late")
        assert h.counters["plugin_failures"] == 2
        await h.dispatcher.close()

    run(go())
