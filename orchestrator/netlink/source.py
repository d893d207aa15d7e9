"""NetlinkSource: one rtnetlink socket, bound first, then dumped, then streamed; repaired on overrun.

Binding before dumping means no change can fall between the dump and the stream: a change made
during the dump arrives as a notification after it.  When the kernel reports ENOBUFS the socket's
view is incomplete; the only repair is a new socket, a new dump, and the difference against what
the engine believed — which is what ``resync`` hands back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from ..events import RawEvent
from ..view import KernelView
from . import decode, queries, wire

log = logging.getLogger(__name__)

RECV_BYTES = 1 << 16
BATCH_LIMIT = 4096  # datagrams per wake-up before yielding to other tasks
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0  # re-opening the socket after a failed resync


class NetlinkSource:
    """Reads raw events and hands them on in batches.

    ``on_event`` gets each raw event of the stream; ``on_batch`` is called after each burst has been
    drained (so the state judges the uplink once per burst); ``on_overrun`` gets a fresh
    ``KernelView`` after an overrun.
    """

    def __init__(
        self,
        rcvbuf_bytes: int,
        tables: set[int],
        on_event: Callable[[RawEvent], None],
        on_batch: Callable[[], None],
        on_overrun: Callable[[KernelView], None],
    ) -> None:
        self.rcvbuf_bytes = rcvbuf_bytes
        self.decoder = decode.RawDecoder(tables)
        self.on_event = on_event
        self.on_batch = on_batch
        self.on_overrun = on_overrun
        self.sock: socket.socket | None = None
        self.messages_seen = 0
        self._buffer = bytearray(RECV_BYTES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry_s = RETRY_FIRST_S

    def open_and_dump(self, into: Callable[[RawEvent], None]) -> None:
        """Bind, then dump every watched object into ``into``.  Blocking: the kernel answers at once.

        Notifications that arrive while dumping are passed in arrival order too, so the result is
        the state after the last of them.
        """
        while True:
            sock = queries.open_socket(wire.WATCHED_GROUPS, self.rcvbuf_bytes)
            try:
                for kind, body in queries.dump_requests(self.decoder.tables):
                    self._dump_one(sock, kind, body, into)
            except decode.NetlinkOverrun:
                sock.close()
                log.warning("netlink overrun during the dump; dumping again")
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return

    def _dump_one(
        self, sock: socket.socket, kind: int, body: bytes, into: Callable[[RawEvent], None]
    ) -> None:
        seq, request = wire.build_request(kind, wire.NLM_F_DUMP, body)
        sock.settimeout(5.0)
        sock.send(request)
        while True:
            try:
                size = sock.recv_into(self._buffer)
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    raise decode.NetlinkOverrun from error
                raise
            data = memoryview(self._buffer)
            for msg_kind, offset, length in wire.messages(data, size):
                is_ours = wire.sequence_of(data, offset) == seq
                if is_ours and msg_kind == wire.NLMSG_DONE:
                    return
                if is_ours and msg_kind == wire.NLMSG_ERROR:
                    wire.check_error(data, offset)
                    return
                event = self.decoder.decode(data, msg_kind, offset, length)
                if event is not None:
                    into(event)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.sock is not None, "open_and_dump() first"
        self._loop = loop
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        """Drain what the socket holds (bounded), then let the state judge the burst once."""
        assert self.sock is not None
        sock, buffer, decode, on_event = self.sock, self._buffer, self.decoder.decode, self.on_event
        data = memoryview(buffer)
        try:
            for _ in range(BATCH_LIMIT):
                try:
                    size = sock.recv_into(buffer)
                except BlockingIOError:
                    break
                for kind, offset, length in wire.messages(buffer, size):
                    self.messages_seen += 1
                    event = decode(data, kind, offset, length)
                    if event is not None:
                        on_event(event)
        except OSError as error:
            # ENOBUFS: the kernel dropped notifications.  Anything else leaves the socket in doubt
            # too; either way a fresh socket and dump is the only way back to the truth.
            if error.errno == errno.ENOBUFS:
                log.warning("netlink receive buffer overran; re-reading the kernel state")
            else:
                log.error("netlink socket failed (%s); re-reading the kernel state", error)
            self.on_batch()
            self._resync()
            return
        self.on_batch()

    def _resync(self) -> None:
        """Replace the socket and hand a fresh dump to ``on_overrun``; retry with backoff on failure
        (until it succeeds the engine sees nothing, and says so)."""
        loop = self._loop
        assert loop is not None
        self.close()
        fresh = KernelView()
        try:
            self.open_and_dump(fresh.apply)
        except OSError as error:
            log.error("cannot re-open the netlink socket (%s); retrying in %.1f s", error, self._retry_s)
            loop.call_later(self._retry_s, self._resync)
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            return
        self._retry_s = RETRY_FIRST_S
        self.start(loop)
        self.on_overrun(fresh)
