"""miredo's supervisor, found through its pid file: the one process a kick may signal.

SIGHUP to the supervisor is miredo's only "re-qualify now" lever (a full restart of its worker).  A
pid file outlives its process and a pid is reused, so the process is pinned with a pidfd *before*
it is checked to be miredo: the signal then reaches that process or nothing, never a stranger that
inherited the number.  The same pidfd, kept open and watched on the event loop, says the moment
miredo exits (a pidfd becomes readable then), so a killed miredo is reported at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

PROGRAM = "miredo"


class SupervisorMissing(Exception):
    """No live miredo behind the pid file; the message says plainly what was found instead."""


class NotStarted(SupervisorMissing):
    """No pid file at all: miredo has not started (yet), as opposed to a dead or foreign pid."""


class Supervisor:
    """The pid file's miredo.  With ``on_exit``, every successful contact (``pid``, ``reload``) also
    watches that process, and ``on_exit(reason)`` is called once when it exits."""

    def __init__(self, pidfile: Path, on_exit: Callable[[str], None] | None = None) -> None:
        self.pidfile = pidfile
        self.on_exit = on_exit
        self._watched: tuple[int, int] | None = None  # (pidfd, pid)

    def pid(self) -> int:
        """The live miredo supervisor's pid, or ``SupervisorMissing``."""
        fd, pid = self._pin()
        self._keep(fd, pid)
        return pid

    def reload(self) -> int:
        """SIGHUP the supervisor (miredo restarts its worker and re-qualifies); returns its pid."""
        fd, pid = self._pin()
        try:
            signal.pidfd_send_signal(fd, signal.SIGHUP)
        except ProcessLookupError:
            os.close(fd)
            raise SupervisorMissing(f"miredo (pid {pid} in {self.pidfile}) exited just now") from None
        except OSError as error:
            os.close(fd)
            raise SupervisorMissing(f"cannot signal miredo (pid {pid}): {error.strerror}") from None
        self._keep(fd, pid)
        return pid

    def close(self) -> None:
        if self._watched is not None:
            fd, _ = self._watched
            self._watched = None
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _keep(self, fd: int, pid: int) -> None:
        if self.on_exit is None or (self._watched is not None and self._watched[1] == pid):
            os.close(fd)
            return
        self.close()
        asyncio.get_running_loop().add_reader(fd, self._exited)
        self._watched = (fd, pid)

    def _exited(self) -> None:
        assert self._watched is not None and self.on_exit is not None
        pid = self._watched[1]
        self.close()
        self.on_exit(f"miredo (pid {pid}, {self.pidfile}) exited")

    def config_path(self) -> Path | None:
        """The configuration file the running miredo was started with (``-c``/``--config``), if any."""
        try:
            pid = self.pid()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (SupervisorMissing, OSError):
            return None
        words = [word.decode(errors="replace") for word in argv]
        for index, word in enumerate(words):
            if word in ("-c", "--config") and index + 1 < len(words):
                return Path(words[index + 1])
            for prefix in ("--config=", "-c"):
                if word.startswith(prefix) and len(word) > len(prefix):
                    return Path(word[len(prefix):])
        return None

    def _pin(self) -> tuple[int, int]:
        """A pidfd on the pid file's process, checked to be miredo."""
        try:
            text = self.pidfile.read_text()
        except FileNotFoundError:
            raise NotStarted(f"miredo is not running: no pid file {self.pidfile}") from None
        except OSError as error:
            raise SupervisorMissing(f"cannot read miredo's pid file {self.pidfile}: {error}") from None
        words = text.split()
        if not words or not words[0].isdigit() or int(words[0]) <= 1:
            raise SupervisorMissing(f"{self.pidfile} holds no usable pid ({text.strip()[:40]!r})")
        pid = int(words[0])
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OverflowError):
            gone = f"miredo is not running: {self.pidfile} names pid {pid}, which is gone"
            raise SupervisorMissing(gone) from None
        except OSError as error:
            raise SupervisorMissing(f"cannot watch miredo (pid {pid}): {error.strerror}") from None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = "?"
        if comm != PROGRAM:
            os.close(fd)
            raise SupervisorMissing(
                f"miredo is not running: {self.pidfile} names pid {pid}, which is {comm!r}, not miredo"
            )
        return fd, pid

