"""Dispatcher with real pluggy plugins: order, lanes, superseding, isolation of failures."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit.configs import load, write

from orchestrator import hookimpl, plugins, workers
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
    async def orchestrator_on_error(self, plugin: str, hook: str, error: str) -> None:
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
    def __init__(self, tmp_path: Path, named: dict[str, object], timeout: float = 10.0) -> None:
        """``timeout``: the plugin call bound; short only in tests about calls that time out, so
        that no other call depends on how soon a worker thread gets a CPU."""
        config = load(write(tmp_path))
        infos = [plugins.PluginInfo(name, "test", None, None, plugin=p) for name, p in named.items()]
        self.pm = plugins.activate(infos, list(named))
        self.counters: Counter[str] = Counter()
        self.finished: list[str] = []
        self.moves = MoveLog(5.0, lambda m, p: None, lambda m: self.finished.append(m.outcome or ""))
        state = NetworkState(config, lookup=lambda _d: None, reread=lambda _f, _t: [])
        contexts: dict[str, PluginContext] = {}
        self.dispatcher = Dispatcher(self.pm, contexts, timeout, self.counters)
        for name in named:  # as the daemon makes them: the dispatcher serves their ask and report
            contexts[name] = PluginContext(name, config, state, self.moves, logging.getLogger(name),
                                           self.counters, services=self.dispatcher)

    def move(self, old: Uplink | None, new: Uplink | None, number: int) -> None:
        event = UplinkChanged(old, new, number)
        move = self.moves.begin(event, time.monotonic())
        self.dispatcher.submit(UPLINK_LANE, "orchestrator_uplink_changed", {"event": event, "move": move},
                               move, on_done=lambda: self.moves.dispatched(move))

    async def settle(self) -> None:
        for _ in range(2):  # the second pass: errors queued by the first
            for name in list(self.dispatcher.lanes):
                assert await self.dispatcher.drain(name, 5.0), f"lane {name} never became idle"


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
                               "witness": Recorder("witness", log)}, timeout=0.2)
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


class PredictsOnTheLoop:
    """Answers only on the event loop, where questions are answered (``get_running_loop`` raises
    in a thread without one)."""

    @hookimpl
    def orchestrator_expected_coa(self) -> str:
        asyncio.get_running_loop()
        return "2001:db8::1"


class ReportsFromAThread:
    """A plain-function hook, so it runs in a worker thread: it asks a question and reports a problem."""

    def __init__(self) -> None:
        self.answers: list[Any] = []

    @hookimpl
    def orchestrator_uplink_changed(self, context: PluginContext, move: Any) -> None:
        self.answers.append(context.ask("orchestrator_expected_coa", config=None, state=None, exclude=None))
        context.report(f"found in a thread during move {move.id}", move)


def test_report_and_ask_from_a_plain_function_are_handed_to_the_loop(tmp_path: Path) -> None:
    log: list[tuple[str, Any]] = []
    threaded = ReportsFromAThread()

    async def go() -> Harness:
        named = {"threaded": threaded, "predicts": PredictsOnTheLoop(), "witness": Recorder("witness", log)}
        h = Harness(tmp_path, named)
        for number, (old, new) in enumerate([(A, B), (B, C), (C, A)], 1):
            h.move(old, new, number)
            await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    problems = [f"found in a thread during move {n}" for n in (1, 2, 3)]
    errors = [entry[1] for entry in log if entry[1][0] == "error"]
    assert errors == [("error", "threaded", "report", problem) for problem in problems]
    assert threaded.answers == ["2001:db8::1"] * 3
    assert [move.problems for move in h.moves.recent] == [[problem] for problem in problems]
    assert h.finished == ["failed"] * 3
    assert h.counters["plugin_failures"] == 3 and h.counters["plugin_errors"] == 0


class WorksOnItsMoveFromAThread:
    """A plain-function hook (a worker thread) that records a phase, takes a part and releases it,
    and keeps a second part, failed only after its move has ended."""

    def __init__(self) -> None:
        self.kept: list[Any] = []

    @hookimpl
    def orchestrator_uplink_changed(self, move: Any) -> None:
        move.phase("threaded")
        move.hold().done()
        self.kept.append(move.hold())


def test_a_plain_function_may_work_on_its_move_and_fail_a_part_late(tmp_path: Path) -> None:
    threaded = WorksOnItsMoveFromAThread()
    heard: list[tuple[str, str, str]] = []

    class Listens:
        @hookimpl
        async def orchestrator_on_error(self, plugin: str, hook: str, error: str) -> None:
            heard.append((plugin, hook, error))

    async def go() -> None:
        h = Harness(tmp_path, {"threaded": threaded, "listens": Listens()})
        h.move(A, B, 1)
        await h.settle()
        h.move(B, C, 2)  # the first move ends, superseded, while its part is still held
        await h.settle()
        first = h.moves.recent[0]
        await asyncio.to_thread(threaded.kept[0].failed, "too late")
        await h.settle()
        assert (first.outcome, first.problems) == ("superseded", [])
        assert "threaded" in first.phases
        await h.dispatcher.close()

    run(go())
    assert heard == [("threaded", "report", "too late")]


def test_a_thread_waits_for_the_loop_at_most_its_bound() -> None:
    """The loop is kept busy (it waits for the thread) until the thread has given up: the question
    is then never run."""
    ran: list[str] = []
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            workers.answer_from(loop, lambda: ran.append("asked"), 0.05)
        except TimeoutError as error:
            outcome.append(error)

    async def go() -> None:
        thread = threading.Thread(target=ask)
        thread.start()
        thread.join()  # blocks the loop on purpose
        await asyncio.sleep(0)  # the handed-over question's turn, now that nobody waits for it

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()
    assert [str(error) for error in outcome] == ["the event loop did not answer within 0.05 s"]
    assert ran == []


# -- a problem after its move ended: logged, counted, passed to on_error; the ended move stays ----------

class HearsErrors:
    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str, int | None]] = []

    @hookimpl
    def orchestrator_on_error(self, plugin: str, hook: str, error: str, move: Any) -> None:
        self.heard.append((plugin, hook, error, move.id if move is not None else None))


def test_a_call_that_fails_after_its_move_ended_leaves_the_move_as_it_was(tmp_path: Path) -> None:
    gate = asyncio.Event()

    class FailsLate:
        @hookimpl
        async def orchestrator_uplink_changed(self, move: Any) -> None:
            if move.id == 1:
                await gate.wait()
                raise RuntimeError("too late")

    listener = HearsErrors()

    async def go() -> Harness:
        h = Harness(tmp_path, {"fails": FailsLate(), "listener": listener}, timeout=5)
        h.move(A, B, 1)  # waits at the gate ...
        h.move(B, C, 2)  # ... while a newer move supersedes its move
        gate.set()
        await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    first, second = h.moves.recent
    assert (first.outcome, first.problems) == ("superseded", [])
    assert (second.outcome, second.problems) == ("ok", [])
    assert listener.heard == [("fails", "orchestrator_uplink_changed", "RuntimeError: too late", 1)]
    assert h.counters["plugin_errors"] == 1


def test_a_part_failed_after_its_move_ended_is_reported_as_its_holders(tmp_path: Path) -> None:
    parts: list[Any] = []

    class Holder:
        @hookimpl
        async def orchestrator_uplink_changed(self, move: Any) -> None:
            parts.append(move.hold())

    listener = HearsErrors()

    async def go() -> Harness:
        h = Harness(tmp_path, {"holder": Holder(), "listener": listener})
        h.move(A, B, 1)
        await h.settle()
        h.moves.finish(h.moves.recent[-1], "timeout")
        parts[0].failed("the tunnel never came up")
        await h.settle()
        await h.dispatcher.close()
        return h

    h = run(go())
    move = h.moves.recent[-1]
    assert (move.outcome, move.problems) == ("timeout", [])
    assert listener.heard == [("holder", "report", "the tunnel never came up", 1)]
    assert h.counters["plugin_failures"] == 1


def test_a_part_taken_while_answering_a_question_is_the_answering_plugins(tmp_path: Path) -> None:
    """The answer runs inside the asking plugin's call, yet the part it takes is its own."""

    class Asks:
        @hookimpl
        async def orchestrator_uplink_changed(self, context: PluginContext) -> None:
            context.ask("orchestrator_requalify_tunnel", interface="teredo", reason="no answer")

    class Answers:
        def __init__(self) -> None:
            self.moves: MoveLog | None = None
            self.parts: list[Any] = []

        @hookimpl
        def orchestrator_requalify_tunnel(self) -> bool:
            assert self.moves is not None and self.moves.current is not None
            self.parts.append(self.moves.current.hold())
            return True

    answers, listener = Answers(), HearsErrors()

    async def go() -> None:
        h = Harness(tmp_path, {"asks": Asks(), "answers": answers, "listener": listener})
        answers.moves = h.moves
        h.move(A, B, 1)
        await h.settle()
        h.moves.finish(h.moves.recent[-1], "superseded")
        answers.parts[0].failed("the re-qualification failed")
        await h.settle()
        await h.dispatcher.close()

    run(go())
    assert listener.heard == [("answers", "report", "the re-qualification failed", 1)]


def test_a_part_taken_outside_any_plugin_call_is_only_logged_when_it_fails_late(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> Harness:
        h = Harness(tmp_path, {"listener": HearsErrors()})
        move = h.moves.begin(UplinkChanged(A, B, 1), time.monotonic())
        part = move.hold()  # the test's own code: no plugin is running
        h.moves.finish(move, "superseded")
        part.failed("late")
        await h.dispatcher.close()
        return h

    h = run(go())
    assert h.moves.recent[-1].problems == []
    assert "a part of move 1 failed after the move ended: late" in caplog.text


# -- threads a plugin leaves behind -------------------------------------------------------------------

class Stuck:
    """A plain function that returns only when the test lets one call go: each call abandoned at the
    timeout keeps its thread meanwhile."""

    def __init__(self) -> None:
        self.started = 0
        self.go = threading.Semaphore(0)

    @hookimpl
    def orchestrator_uplink_changed(self) -> None:
        self.started += 1
        self.go.acquire(timeout=60)  # bounded only so that a failing test leaves no thread for long


async def until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` on the loop; fail after 10 s (a deadline for a broken test only)."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        await asyncio.sleep(0.01)


def test_a_plugin_holding_too_many_stuck_threads_gets_no_more_until_one_returns(tmp_path: Path) -> None:
    bound = workers.STUCK_THREADS_PER_PLUGIN
    stuck, listener = Stuck(), HearsErrors()
    timeout = "stuck: orchestrator_uplink_changed: timeout after 0.05 s"
    refused = f"plugin stuck holds {bound} threads that never returned: call not started"

    async def go() -> Harness:
        h = Harness(tmp_path, {"stuck": stuck, "listener": listener}, timeout=0.05)
        uplinks = [A, B] * bound + [A, B, A]
        for number in range(1, bound + 2):  # ``bound`` calls abandoned, then one more
            h.move(uplinks[number - 1], uplinks[number], number)
            await h.settle()
        assert h.moves.recent[-1].problems == [f"stuck: orchestrator_uplink_changed: {refused}"]
        assert h.dispatcher.stuck_threads("stuck") == bound
        stuck.go.release()  # one of them returns at last: the plugin's calls run again
        await until(lambda: h.dispatcher.stuck_threads("stuck") == bound - 1, "the thread's return")
        h.move(uplinks[bound + 1], uplinks[bound + 2], bound + 2)
        await h.settle()
        await h.dispatcher.close()
        return h

    try:
        h = run(go())
    finally:
        for _ in range(bound + 2):
            stuck.go.release()
    assert [move.problems for move in h.moves.recent] == [[timeout]] * bound + [
        [f"stuck: orchestrator_uplink_changed: {refused}"], [timeout]]
    assert stuck.started == bound + 1  # the refused call never started, the next one did
    assert [heard for heard in listener.heard if heard[2] == refused] == [
        ("stuck", "orchestrator_uplink_changed", refused, bound + 1)]
    assert h.counters["plugin_calls_refused"] == 1 and h.counters["plugin_errors"] == bound + 2
