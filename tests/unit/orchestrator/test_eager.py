"""eager.start: the first step runs at once, yet inside the coroutine's own task."""

from __future__ import annotations

import asyncio
import sys

import pytest

from orchestrator import eager


def test_a_coroutine_that_does_not_wait_is_done_before_start_returns() -> None:
    seen: list[object] = []

    async def quick() -> str:
        seen.append(asyncio.current_task())
        return "done"

    async def main() -> None:
        outer = asyncio.current_task()
        future = eager.start(quick())
        assert future.done() and future.result() == "done"
        assert seen[0] is not None and seen[0] is not outer
        assert asyncio.current_task() is outer

    asyncio.run(main())


def test_an_error_in_the_first_step_is_the_future_s_error() -> None:
    async def broken() -> None:
        raise ValueError("first step")

    async def main() -> None:
        future = eager.start(broken())
        assert future.done()
        with pytest.raises(ValueError, match="first step"):
            future.result()

    asyncio.run(main())


def test_a_waiting_coroutine_carries_on_and_can_be_cancelled() -> None:
    steps: list[str] = []

    async def waits(gate: asyncio.Event) -> str:
        steps.append("first")
        await gate.wait()
        steps.append("second")
        return "finished"

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    async def main() -> None:
        gate = asyncio.Event()
        future = eager.start(waits(gate))
        assert steps == ["first"] and not future.done()
        gate.set()
        assert await future == "finished"
        stuck = eager.start(forever())
        await asyncio.sleep(0)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck

    asyncio.run(main())
    assert steps == ["first", "second", "cancelled"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_asyncio_timeout_in_the_first_step_cancels_the_hook_not_its_caller() -> None:
    async def hook() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await eager.start(hook())
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0

    asyncio.run(main())
