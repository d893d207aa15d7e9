"""Run scripts one after the other per lane, each bounded by its timeout.

The hook that hands an event over returns at once: a script may take seconds, and a lane of the
daemon blocked on it would delay every other plugin's next event (a Teredo kick after a move).
So each of the daemon's lanes has its own queue here, worked by one task: the scripts of a lane run
in order and never concurrently, while lanes run side by side, as plugins do.  A script runs in a
new session, so that a timeout kills its whole process group (a background child included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator import Move, Part

from .environment import Invocation
from .scripts import Script

#: Events waiting in one lane beyond which a new one is refused (reported, never silently lost).
MAX_QUEUED = 100

log = logging.getLogger("orchestrator.exec")


@dataclass
class Job:
    """The scripts one event runs, and the part of its move they hold (None: no move to hold).
    Failures reach the move through ``report``; the part only keeps the move open until then."""

    scripts: Sequence[Script]
    invocation: Invocation
    move: Move | None
    part: Part | None

    def release(self) -> None:
        if self.part is not None:
            self.part.done()
            self.part = None


#: How a lane reports a script that failed: ``report(problem, move)``, the plugin's context.report.
Report = Callable[[str, "Move | None"], None]


class LaneRunner:
    """One lane's queue and the task that works it."""

    def __init__(
        self, lane: str, report: Report, counters: Callable[[str], None], idle: Callable[[LaneRunner], None]
    ) -> None:
        self.lane = lane
        self.report = report
        self.count = counters
        self.idle = idle
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._work(), name=f"exec {lane}")

    def submit(self, job: Job) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            waiting = f"exec: lane {self.lane} has {MAX_QUEUED} events waiting"
            try:
                self.report(f"{waiting}; {job.invocation.event} dropped", job.move)
            finally:
                job.release()
            return
        self.queue.put_nowait(job)

    async def close(self) -> None:
        """Stop at once: a running script's group is killed, queued events are not run."""
        self.task.cancel()
        await asyncio.wait({self.task})  # unlike awaiting the task, lets the caller's own cancel through
        while not self.queue.empty():
            self.queue.get_nowait().release()

    async def _work(self) -> None:
        """Work the queue until it is empty, then tell the owner, who forgets this runner (so that
        interfaces that come and go, ppp units say, leave no task behind): a later event starts a
        new one.  Nothing can be queued between the last check and ``idle``: both run in one step."""
        try:
            while not self.queue.empty():
                job = self.queue.get_nowait()
                try:
                    for script in job.scripts:
                        try:
                            problem = await self._run(script, job.invocation)
                        except Exception as error:  # a bug must not end the lane: report it, go on
                            problem = f"exec {script.name}: {type(error).__name__}: {error}"
                        if problem is not None:
                            self.report(problem, job.move)
                finally:
                    job.release()
        finally:
            self.idle(self)

    async def _run(self, script: Script, invocation: Invocation) -> str | None:
        """Run one script to its end; the problem to report, or None when it succeeded."""
        argv = script.argv(invocation.interface, invocation.action)
        self.count("exec_runs")
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, env=invocation.environment(), stdin=subprocess.DEVNULL,
                stdout=2, stderr=2, start_new_session=True,  # its output goes to the daemon's log stream
            )
        except (OSError, ValueError) as error:  # ValueError: an argument holding a NUL character
            self.count("exec_failures")
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            return f"exec {script.name}: cannot run {argv[0]}: {reason}"
        # asyncio.wait, not wait_for: it never swallows a cancellation that meets the exit (3.10).
        waiter = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({waiter}, timeout=script.timeout_s)
        except asyncio.CancelledError:
            await _kill_group(process)
            raise
        if not waiter.done():
            await _kill_group(process)
            self.count("exec_timeouts")
            return f"exec {script.name}: still running after {script.timeout_s:g} s: process group killed"
        status = waiter.result()
        elapsed_ms = (time.monotonic() - started) * 1000
        if status == 0:
            log.debug("exec %s (%s %s) succeeded in %.0f ms", script.name, invocation.event,
                      invocation.action, elapsed_ms)
            return None
        self.count("exec_failures")
        if status < 0:
            return f"exec {script.name}: killed by {_signal_name(-status)}"
        return f"exec {script.name}: exited with status {status}"


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the script's whole process group (it leads its own session) and reap the script."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal between SIGRTMIN and SIGRTMAX has no name of its own
        return f"signal {number}"
