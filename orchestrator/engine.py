"""Engine: the netlink source, the network state, and the timers and probes that complete it.

The daemon and ``orchestrator monitor`` share this so that the monitor shows exactly the events the
daemon would act on.  Everything here runs on the event loop; nothing polls: the loop wakes for a
netlink datagram, the pending-loss deadline, or a gateway probe's answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

from . import arp
from .config import Config
from .events import AnyEvent, RawEvent, Resync, Uplink
from .netlink import queries, wire
from .netlink.source import NetlinkSource
from .state import NetworkState
from .view import KernelView

log = logging.getLogger(__name__)

#: Receives every event (raw, derived, resync) with the monotonic time its burst was read.
Sink = Callable[[AnyEvent, float], None]


class Engine:
    def __init__(
        self,
        config: Config,
        sink: Sink,
        reference: str | None,
        counters: Counter[str] | None = None,
        tables: set[int] | None = None,
    ) -> None:
        self.config = config
        self.state = NetworkState(config, reference)
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.tables = tables if tables is not None else {wire.RT_TABLE_MAIN}
        self.source = NetlinkSource(
            config.daemon.netlink_rcvbuf_bytes,
            self.tables,
            self._on_raw,
            self._on_batch,
            self._on_overrun,
        )
        self._sink = sink
        self._burst_started: float | None = None
        self._loss_timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._raw_probe_denied = False

    def load(self) -> None:
        """Bind, then dump: the first picture is the state, not a change.  Changes from now on
        wait in the socket until ``stream``."""
        self.source.open_and_dump(self.state.view.apply)
        self.state.prime()

    def resume(self, last: Uplink | None) -> None:
        """Report what changed while no daemon watched (see ``NetworkState.resume``); called once
        the plugins have started, so they act on it like on any move."""
        now = time.monotonic()
        for event in self.state.resume(last, now):
            self._sink(event, now)

    def stream(self) -> None:
        """Start reading changes (and the timers and probes the first picture asks for)."""
        self._loop = asyncio.get_running_loop()
        self.source.start(self._loop)
        self._after_change()

    async def close(self) -> None:
        self.source.close()
        if self._loss_timer is not None:
            self._loss_timer.cancel()
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)

    # -- from the netlink source ----------------------------------------------------------------

    def _now(self) -> float:
        if self._burst_started is None:
            self._burst_started = time.monotonic()
        return self._burst_started

    def _on_raw(self, event: RawEvent) -> None:
        now = self._now()
        self.counters["events"] += 1
        self._sink(event, now)
        for derived in self.state.apply(event):
            self._sink(derived, now)

    def _on_batch(self) -> None:
        now = self._now()
        for derived in self.state.settle(now):
            self._sink(derived, now)
        self._burst_started = None
        self._after_change()

    def _on_overrun(self, fresh: KernelView) -> None:
        now = time.monotonic()
        self.counters["resyncs"] += 1
        changes, derived = self.state.resync(fresh, now)
        for event in [*changes, *derived]:
            self._sink(event, now)
        self._sink(Resync(replayed=len(changes)), now)
        self._after_change()

    # -- timers and probes ------------------------------------------------------------------------

    def _after_change(self) -> None:
        assert self._loop is not None
        deadline = self.state.tracker.loss_deadline
        if self._loss_timer is not None and (deadline is None or self._loss_timer.when() != deadline):
            self._loss_timer.cancel()
            self._loss_timer = None
        if deadline is not None and self._loss_timer is None:
            self._loss_timer = self._loop.call_at(deadline, self._loss_due)
        if self.state.tracker.probe_wanted and (self._probe is None or self._probe.done()):
            self.state.tracker.probe_wanted = False
            self._probe = self._loop.create_task(self._probe_gateway())

    def _loss_due(self) -> None:
        self._loss_timer = None
        now = time.monotonic()
        for event in self.state.expire(now):
            self._sink(event, now)
        self._after_change()

    async def _probe_gateway(self) -> None:
        """Learn the uplink gateway's link-layer address (see ``arp``): it tells routers apart."""
        uplink = self.state.tracker.current
        link = self.state.view.link_named(uplink.interface) if uplink else None
        if uplink is None or uplink.gateway is None or link is None or link.hwaddr is None:
            return
        lladdr: str | None = None
        if not self._raw_probe_denied:
            try:
                lladdr = await arp.probe(link.name, link.hwaddr, str(uplink.ip), uplink.gateway)
            except PermissionError:
                self._raw_probe_denied = True
                log.info("no CAP_NET_RAW: gateway link-layer addresses come from the neighbour table")
            except OSError as error:
                log.debug("gateway probe on %s failed: %s", link.name, error)
        if self._raw_probe_denied:
            lladdr = queries.neighbour_lladdr(link.index, uplink.gateway)
        if lladdr is not None:
            now = time.monotonic()
            for event in self.state.gateway_seen(uplink, lladdr):
                self._sink(event, now)
        self._after_change()  # a probe wanted while this one ran starts now
