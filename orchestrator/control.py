"""The control socket: one JSON request line in, one JSON answer line out.

Root only: the socket is created mode 0600 and every peer's credentials are checked with
SO_PEERCRED, so a loose directory mode cannot open it to others.  Reads are bounded in size and
time and the number of clients is capped, so a stuck or hostile client costs the daemon nothing.
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

Handler = Callable[[str], dict[str, Any]]


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    def __init__(self, path: Path, commands: dict[str, Handler]) -> None:
        self.path = path
        self.commands = commands
        self._server: asyncio.AbstractServer | None = None
        self._clients = 0

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
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        try:
            answer = await self._answer(reader, writer)
            writer.write(json.dumps(answer).encode() + b"\n")
            await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        if self._clients > MAX_CLIENTS:
            return {"error": "too many clients"}
        sock = writer.get_extra_info("socket")
        if sock is None or peer_uid(sock) != 0:
            return {"error": "permission denied"}
        try:
            line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT_S)
        except ValueError:  # longer than the stream limit
            return {"error": "request too long"}
        if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
            return {"error": "request too long or incomplete"}
        try:
            request = json.loads(line)
            command = request["command"]
        except (ValueError, TypeError, KeyError):
            return {"error": 'expected one JSON object line like {"command": "status"}'}
        handler = self.commands.get(command) if isinstance(command, str) else None
        if handler is None:
            return {"error": f"unknown command {command!r}"}
        return handler(command)


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def request(path: Path, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Client side: send one command, return the decoded answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer: dict[str, Any] = json.loads(b"".join(chunks))
    return answer
