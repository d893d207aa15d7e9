"""A control-socket client for the tests: ``talk`` in the test process (as root), or this file run
as a child that drops to another user first (``python control_client.py DIR NAME UID GID GROUPS
DATA``, GROUPS a JSON list), so the server sees that user's credentials without creating one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
from typing import Any


def talk(path: str, data: bytes, end: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """Send ``data`` on a new connection (then the end of input if ``end``) and report what came
    back: ``answer`` (the first line, decoded; None if there was none) and ``after`` (anything sent
    after it before the server closed), or ``connect`` (the errno name) when connecting failed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as error:
            return {"connect": errno.errorcode[error.errno or 0]}
        # The server may answer and close before reading (refused, busy, too long): keep reading.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if end:
                sock.shutdown(socket.SHUT_WR)
        with sock.makefile("rb") as stream:
            line = stream.readline()
            try:
                after = stream.read()
            except ConnectionResetError:  # closed with our request unread: a close all the same
                after = b""
    return {"answer": json.loads(line) if line else None, "after": after.decode()}


def main(argv: list[str]) -> None:
    directory, name, uid, gid, groups, data = argv
    # Entered as root: the test's own directories above the socket's are root's alone, and only the
    # socket file's mode and the server's own check are under test.
    os.chdir(directory)
    os.setgroups(json.loads(groups))
    os.setresgid(int(gid), int(gid), int(gid))
    os.setresuid(int(uid), int(uid), int(uid))
    print(json.dumps(talk(name, data.encode())))


if __name__ == "__main__":
    main(sys.argv[1:])
