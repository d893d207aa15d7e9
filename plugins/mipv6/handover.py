"""A handover, from the move that calls for it to the Binding Acknowledgement that proves it.

A handover is pending from the moment one is due (a new uplink while the expected care-of address
is a tunnel's, or the purge leaving another address as the expected one) until the home agent
accepted a Binding Update from the expected care-of address, refused it, or ``handover_timeout_s``
passed.  Signals are heard from the capture while it is open; the ones heard before the new
care-of address was known are kept briefly and judged once it is (mip6d sends its BU about 1 ms
after the address appears, often before the daemon hears of the address itself).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator import Move, Part

from .mobility import ACCEPTED_BELOW, Signal

RECENT_SIGNALS = 64


@dataclass
class Pending:
    previous: str | None  # the care-of address before the handover: never the awaited one
    coa: str | None  # the awaited care-of address, once known
    tunnel: str | None  # its interface when it is a tunnel's
    move: Move | None
    part: Part | None
    timer: Any  # asyncio.TimerHandle (or a test's handle)
    bu_sequence: int | None = None  # the BU seen on the wire
    kernel_bu: bool = False  # mip6d's kernel state moved to the care-of address (IPsec case)


class Handovers:
    """Judges the signals heard against the pending handover; reports through callbacks."""

    def __init__(
        self, home_agent: str | None, on_result: Callable[[Pending, str | None, bool], None]
    ) -> None:
        self.home_agent = home_agent
        self.on_result = on_result  # (handover, problem or None when confirmed, requalify?)
        self.pending: Pending | None = None
        self.recent: deque[Signal] = deque(maxlen=RECENT_SIGNALS)

    def begin(self, pending: Pending) -> None:
        """From now on, signals are judged against ``pending`` (``expect`` also judges the ones
        heard since listening began)."""
        self.pending = pending

    def expect(self, coa: str, tunnel: str | None) -> None:
        """The awaited care-of address is now known: judge what was already heard."""
        pending = self.pending
        if pending is None or coa == pending.previous or coa == pending.coa:
            return
        pending.coa, pending.tunnel, pending.bu_sequence, pending.kernel_bu = coa, tunnel, None, False
        for signal in list(self.recent):
            self.heard(signal, keep=False)

    def heard(self, signal: Signal, keep: bool = True) -> None:
        if keep:
            self.recent.append(signal)
        pending = self.pending
        if pending is None or pending.coa is None or self.home_agent is None:
            return
        if signal.kind in ("bu", "kernel-bu") and (signal.source, signal.destination) == (
            pending.coa,
            self.home_agent,
        ):
            if signal.kind == "bu":
                pending.bu_sequence = signal.sequence
            else:
                pending.kernel_bu = True
            if pending.move is not None:
                pending.move.phase("bu-sent")
        elif signal.kind == "kernel-home-path" and pending.kernel_bu:
            self._end(None, False)
        elif signal.kind == "ba" and (signal.source, signal.destination) == (self.home_agent, pending.coa):
            if pending.bu_sequence is not None and signal.sequence != pending.bu_sequence:
                return  # an answer to an older BU
            assert signal.status is not None
            if signal.status < ACCEPTED_BELOW:
                self._end(None, False)
            else:
                refused = f"the home agent refused the binding from {pending.coa} (status {signal.status})"
                self._end(refused, False)

    def expired(self, timeout_s: float) -> None:
        pending = self.pending
        if pending is None:
            return
        if pending.coa is None:
            self._end(f"no new care-of address within {timeout_s:g} s", False)
        elif pending.bu_sequence is None and not pending.kernel_bu:
            silent = f"no Binding Update from {pending.coa} to {self.home_agent} within {timeout_s:g} s"
            self._end(silent, True)
        else:
            self._end(f"no Binding Acknowledgement for {pending.coa} within {timeout_s:g} s", True)

    def abandon(self) -> None:
        """A newer move or a loss makes this handover moot (its move is superseded)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.timer.cancel()
            if pending.part is not None:
                pending.part.done()

    def _end(self, problem: str | None, requalify: bool) -> None:
        pending, self.pending = self.pending, None
        assert pending is not None
        pending.timer.cancel()
        self.on_result(pending, problem, requalify)
