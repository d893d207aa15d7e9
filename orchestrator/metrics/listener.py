"""``/metrics`` over HTTP, served from the daemon's event loop.

Not ``prometheus_client.start_http_server``: its thread polls (wake-ups on an idle daemon) and runs
beside the loop that owns the state it would read.  A scrape is one short request, answered with
the text ``Metrics.text`` builds, then the connection is closed.  A listener that cannot bind (the
port in use) is said in the log and in status and tried again every ``RETRY_S``: the daemon keeps
doing its job, a fleet node does not lose handovers over a metrics port.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("orchestrator.metrics")

RETRY_S = 10.0
REQUEST_LIMIT = 8192  # a scrape's request line and headers fit easily
REQUEST_TIMEOUT_S = 5.0


class Listener:
    """Serves ``text()`` at ``/metrics`` on (host, port); ``problem`` says why it does not, if so."""

    def __init__(self, host: str, port: int, text: Callable[[], bytes]) -> None:
        self.host, self.port = host, port
        self.text = text
        self.problem: str | None = None
        self._server: asyncio.Server | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._attempt: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:9477``, ``[::1]:9477``: as ``metrics.listen`` spells it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, reuse_address=True, limit=REQUEST_LIMIT
            )
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)  # asyncio's own text is long
            problem = f"cannot listen on {self.address}: {reason}; retrying every {RETRY_S:g} s"
            if self.problem is None:  # said once, not at every retry
                log.error("metrics: %s", problem)
            self.problem = problem
            self._retry = asyncio.get_running_loop().call_later(RETRY_S, self._try_again)
            return
        if self.problem is not None:
            log.info("metrics: listening on %s now", self.address)
        self.problem = None

    def _try_again(self) -> None:
        self._attempt = asyncio.get_running_loop().create_task(self.start())

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._attempt is not None:
            await self._attempt  # a bind under way ends, so that its server is closed below
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            method, path, *_ = [*head.split(b"\r\n", 1)[0].split(b" "), b"", b""]
            writer.write(self._answer(method, path.split(b"?", 1)[0]))
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)  # a client that stops reading
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that sent no complete request in time, or went away: nothing to answer
        finally:
            writer.close()

    def _answer(self, method: bytes, path: bytes) -> bytes:
        if method not in (b"GET", b"HEAD"):
            allow = b"Allow: GET, HEAD\r\n"
            return _response(b"405 Method Not Allowed", b"text/plain", b"only GET and HEAD\n", allow)
        if path != b"/metrics":
            return _response(b"404 Not Found", b"text/plain", b"metrics are at /metrics\n")
        try:
            body = self.text()
        except Exception:  # a collector's bug must not end the listener: said, and answered 500
            log.exception("metrics: cannot build the exposition")
            return _response(b"500 Internal Server Error", b"text/plain", b"see the daemon's log\n")
        response = _response(b"200 OK", CONTENT_TYPE_LATEST.encode(), body)
        return response[: response.index(b"\r\n\r\n") + 4] if method == b"HEAD" else response


def _response(status: bytes, content_type: bytes, body: bytes, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\n" + extra
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    return head + body
