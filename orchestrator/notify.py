"""Telling the init system the truth: sd_notify through ``sdnotify``, wrapped.

Why a wrapper: ``sdnotify`` swallows every error unless built with ``debug=True``, and encodes the
state as Latin-1, so a STATUS line with a non-ASCII interface name or reason would be lost without
a word.  Here the socket is connected by ``sdnotify`` (it knows the abstract ``@`` form) and every
message is sent as UTF-8, without blocking; a failure (a full queue included) raises ``OSError``
to the caller, which logs it.  Without
``NOTIFY_SOCKET`` (a terminal, procd) every call does nothing and the daemon runs the same.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import sdnotify


class Notifier:
    """Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment (as sdnotify does)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self.problem: str | None = None  # why notifications are off although NOTIFY_SOCKET is set
        self._notifier: sdnotify.SystemdNotifier | None = None
        if self.enabled:
            try:
                self._notifier = sdnotify.SystemdNotifier(debug=True)
                self._notifier.socket.setblocking(False)  # the loop must never wait for the init system
            except OSError as error:  # a stale NOTIFY_SOCKET inherited from elsewhere
                self.problem = f"NOTIFY_SOCKET {os.environ['NOTIFY_SOCKET']}: {error.strerror or error}"
        self.watchdog_interval_s = watchdog_interval(os.environ)

    @property
    def active(self) -> bool:
        """Whether anything sent reaches an init system (else building a message is wasted work)."""
        return self._notifier is not None

    def send(self, *fields: str) -> None:
        """One datagram of ``KEY=value`` lines (a newline in a value would end it: replaced)."""
        if self._notifier is None:
            return
        text = "\n".join(field.replace("\n", " ") for field in fields)
        self._notifier.socket.sendall(text.encode("utf-8"))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def failed(self, errno: int, status: str) -> None:
        self.send(f"ERRNO={errno}", f"STATUS={status}")


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` (as sd_watchdog_enabled() advises), or None when the watchdog is
    off or meant for another process (``WATCHDOG_PID``)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
