"""The control socket: one JSON request line in, one JSON answer line out.

Root may call every command.  With ``daemon.control_group`` set, members of that group (as their
primary or a supplementary group) may call the read-only ones, so monitoring needs no root; everyone
else is refused.  The file mode is the first gate (0600 root:root, or 0660 root:GROUP) and the peer's
credentials, as the kernel recorded them at connect(), the second, so a loosened file or directory
mode cannot open the socket to others.  Reads are bounded in size and time, answers are written
with a deadline and the number of clients is capped, so a stuck or hostile client costs the daemon
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_REQUEST = 4096
CLIENT_TIMEOUT_S = 5.0
MAX_CLIENTS = 16
READ_ONLY = frozenset({"status"})
# getsockopt() buffers are capped at 1024 bytes by Python: room for 256 supplementary groups.
GROUPS_BUFFER = 1024

Handler = Callable[[str], dict[str, Any]]


def _so_peergroups() -> int:
    """SO_PEERGROUPS (Linux 4.13), which the socket module does not name: asm-generic's 59 on every
    architecture but parisc and sparc, whose socket option numbers are their own."""
    machine = os.uname().machine
    if machine.startswith("parisc"):
        return 0x4034
    return 0x3D if machine.startswith("sparc") else 59


SO_PEERGROUPS = _so_peergroups()


def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """The peer's effective uid and gid, as the kernel recorded them when it connected."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, gid = struct.unpack("3i", creds)
    return int(uid), int(gid)


def peer_groups(sock: socket.socket) -> tuple[int, ...]:
    """The peer's supplementary groups, recorded by the kernel at connect() like SO_PEERCRED's ids.

    Not /proc/<pid>/status "Groups:" of SO_PEERCRED's pid: an open connection does not pin that
    pid (the connecting process can exit and leave the socket to a child), so the number could name
    another process by the time it is read.  A peer in more groups than fit the buffer raises
    OSError(ERANGE).
    """
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, GROUPS_BUFFER)
    return struct.unpack(f"{len(raw) // 4}I", raw)


class ControlServer:
    """Serves ``commands`` on a Unix socket at ``path``: root may call them all, members of
    ``group`` (a gid) the ``read_only`` ones.  ``client_timeout_s`` bounds the wait for a request
    line and the delivery of its answer."""

    def __init__(
        self,
        path: Path,
        commands: dict[str, Handler],
        read_only: frozenset[str] = READ_ONLY,
        group: int | None = None,
        client_timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self.path = path
        self.commands = commands
        self.read_only = read_only
        self.group = group
        self.client_timeout_s = client_timeout_s
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if _answers(self.path):
            raise OSError(errno.EADDRINUSE, f"another daemon answers on {self.path}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket left by a daemon that died
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old_umask)
        # The group is set before the mode opens to it, so no other group ever has access.
        if self.group is not None:
            try:
                os.chown(self.path, -1, self.group)
            except OSError as error:
                await self.close()
                raise OSError(
                    error.errno,
                    f"cannot give {self.path} to group {self.group} (daemon.control_group): "
                    f"{error.strerror}; without CAP_CHOWN the daemon must be a member of that group",
                ) from error
        os.chmod(self.path, 0o600 if self.group is None else 0o660)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Python 3.12's wait_closed() waits for the connections too: end them now.
            for writer in self._clients:
                writer.transport.abort()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        # No buffering beyond the kernel's: drain() returns only once the whole answer is delivered,
        # so a client that never reads is aborted below instead of pinning its answer after close().
        writer.transport.set_write_buffer_limits(high=0)
        try:
            answer = await self._answer(reader, writer)
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), self.client_timeout_s)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        if len(self._clients) > MAX_CLIENTS:
            return {"error": f"busy: {MAX_CLIENTS} clients already connected; try again"}
        allowed = self._allowed(writer.get_extra_info("socket"))
        if isinstance(allowed, str):  # refused before a byte is read
            return {"error": allowed}
        try:
            line = await asyncio.wait_for(reader.readline(), self.client_timeout_s)
        except ValueError:  # longer than the stream limit
            return {"error": f"request too long (limit {MAX_REQUEST} bytes)"}
        except asyncio.TimeoutError:
            return {"error": f"no request line within {self.client_timeout_s:g} s"}
        if len(line) > MAX_REQUEST:
            return {"error": f"request too long (limit {MAX_REQUEST} bytes)"}
        if not line.endswith(b"\n"):
            return {"error": "request incomplete: no newline before the end of input"}
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, TypeError, KeyError):
            return {"error": 'expected one JSON object line like {"command": "status"}'}
        handler = self.commands.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"error": f"unknown command {command!r}"}
        if command not in allowed:
            return {"error": f"permission denied: {command!r} is for root only"}
        try:
            return handler(command)
        except Exception:
            log.exception("control command %r failed", command)
            return {"error": f"command {command!r} failed; the daemon's log says why"}

    def _allowed(self, sock: socket.socket) -> frozenset[str] | str:
        """The commands this peer may call, or the refusal that tells it why it may call none."""
        uid, gid = peer_credentials(sock)
        if uid == 0:
            return frozenset(self.commands)
        who = f"uid {uid} gid {gid}"
        if self.group is None:
            return f"permission denied: {who}: the control socket is root's only"
        if gid == self.group:
            return self.read_only
        try:
            groups = peer_groups(sock)
        except OSError as error:
            return (
                f"permission denied: {who}: its supplementary groups cannot be read ({error.strerror}): "
                f"at most {GROUPS_BUFFER // 4} can, or make {self.group} its primary group"
            )
        if self.group in groups:
            return self.read_only
        return f"permission denied: {who} is neither root nor in group {self.group}"


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Client side: send one command, return the decoded answer line.

    A refused or busy client is answered and closed before its request is read: sending may then
    fail, and the close may follow the answer with a reset, so only the first line is read.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    answer: dict[str, Any] = json.loads(line)
    return answer
