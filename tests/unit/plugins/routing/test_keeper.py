"""The keeper's life: what it restores while the plugin runs, and that it writes nothing after
``orchestrator_shutdown``, neither a restore already scheduled nor a call that arrives late (queued
before the shutdown in another lane).  The kernel is a recorder: these tests are about when."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from orchestrator_routing import kernel
from orchestrator_routing.endstate import Step
from orchestrator_routing.follow import address_changed
from orchestrator_routing.keeper import COUNTER, Keeper
from orchestrator_testkit import recorded_netlink as recorded
from orchestrator_testkit.configs import load, write

from orchestrator.context import PluginContext
from orchestrator.events import RuleEvent, TunnelAddressChanged, UplinkChanged
from orchestrator.moves import MoveLog

A1 = "2001:0:c633:6401:8000:f227:9c3a:73f0"
A2 = "2001:0:c633:6401:8000:f227:9c3a:73f1"
LL = "fe80::ffff:ffff:ffff"
TEREDO = 7
PROFILE = "[routing.profiles.teredo]\ntable = 100\nsource_rule = true\nfollow_address = true\n"
RULE_REMOVED = RuleEvent(socket.AF_INET6, 32765, 100, A1, 128, deleted=True)

Scenario = Callable[[Keeper, list[str]], Coroutine[Any, Any, None]]


async def next_turn() -> None:
    """Return once every callback the loop already had scheduled (``call_soon``) has run."""
    loop = asyncio.get_running_loop()
    turned = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned


def keeper_context(tmp_path: Path, *datagrams: bytes) -> PluginContext:
    """The routing plugin's context over a state primed with ``datagrams`` (a first dump)."""
    config = load(write(tmp_path, enable=["routing"], tunnel_profile="teredo", extra=PROFILE))
    state = recorded.primed_state(config, *datagrams)
    moves = MoveLog(5.0, lambda _m, _p: None, lambda _m: None)
    return PluginContext("routing", config, state, moves, logging.getLogger("routing"), Counter())


def run_keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: Scenario) -> None:
    """Start a keeper defending the teredo tunnel at ``A1``, then play ``scenario`` with the list of
    the interfaces it writes to the kernel."""
    written: list[str] = []

    def converge(interface: str, *_: Any) -> list[str]:
        written.append(interface)
        return ["an operation"]

    monkeypatch.setattr(kernel, "converge", converge)
    # The tunnel holds the step's address: its routes and rule are defended.
    context = keeper_context(tmp_path, recorded.link(TEREDO, "teredo"), recorded.address(TEREDO, f"{A1}/128"))

    async def go() -> None:
        keeper = Keeper()
        keeper.start(context)
        keeper.settled("teredo", Step("up", "teredo", A1, LL, 1280), None)  # as when a hook run ended
        await scenario(keeper, written)
        assert context.counters[COUNTER] == len(written)

    asyncio.run(go())


def test_a_removal_is_restored_once_its_burst_has_been_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(keeper: Keeper, written: list[str]) -> None:
        keeper.policy_removed(RULE_REMOVED)
        keeper.policy_removed(RULE_REMOVED)
        assert written == []
        await next_turn()
        assert written == ["teredo"]
        keeper.stop()

    run_keeper(tmp_path, monkeypatch, scenario)


def test_a_restore_scheduled_before_shutdown_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(keeper: Keeper, written: list[str]) -> None:
        keeper.policy_removed(RULE_REMOVED)
        keeper.stop()
        await next_turn()
        assert written == []

    run_keeper(tmp_path, monkeypatch, scenario)


def test_calls_after_shutdown_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(keeper: Keeper, written: list[str]) -> None:
        keeper.stop()
        keeper.policy_removed(RULE_REMOVED)
        address_changed(keeper, TunnelAddressChanged("teredo", A1, A2), None)
        await next_turn()
        assert written == []

    run_keeper(tmp_path, monkeypatch, scenario)


def test_stopping_releases_the_move_a_hook_run_was_holding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload stops the plugin between a hook run's begin and its end: the move it held goes on
    (its end will not be heard) instead of waiting for its timeout."""
    async def scenario(keeper: Keeper, written: list[str]) -> None:
        moves = MoveLog(5.0, lambda _m, _p: None, lambda _m: None)
        move = moves.begin(UplinkChanged(None, None, 1), time.monotonic())
        keeper.parts["teredo"] = part = move.hold()
        keeper.stop()
        assert keeper.parts == {} and part.token not in move._open_parts
        moves.close()

    run_keeper(tmp_path, monkeypatch, scenario)


def test_nothing_is_restored_once_the_address_was_purged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mipv6 plugin purges the care-of address when the uplink is lost, possibly before the
    routing plugin hears of the loss: the routes that go with the address are not put back."""
    async def scenario(keeper: Keeper, written: list[str]) -> None:
        assert keeper.context is not None
        for event in recorded.decode(recorded.address(TEREDO, f"{A1}/128", deleted=True)):
            keeper.context.state.apply(event)
        keeper.policy_removed(RULE_REMOVED)
        await next_turn()
        assert written == [] and "teredo" in keeper.stale

    run_keeper(tmp_path, monkeypatch, scenario)


@pytest.mark.parametrize("up", [True, False])
def test_a_run_that_ended_before_the_daemon_started_is_defended(tmp_path: Path, up: bool) -> None:
    """The tunnel's alias says which step the hook last brought it to; a tunnel that is down since
    has nothing to defend."""
    marked = recorded.link(TEREDO, "teredo", up=up, alias=f"orchestrator hook: up {A1} {LL} 1280")
    context = keeper_context(tmp_path, marked, recorded.address(TEREDO, f"{A1}/128"))

    async def go() -> None:
        keeper = Keeper()
        keeper.start(context)
        if up:
            assert keeper.steps["teredo"].address == A1 and "teredo" not in keeper.stale
        else:
            assert "teredo" not in keeper.steps and "teredo" in keeper.stale
        keeper.stop()

    asyncio.run(go())
