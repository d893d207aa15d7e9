"""The control socket: who may ask what, and clients that misbehave.

A real ControlServer runs in the test's event loop on a socket in tmp_path; root clients talk from a
thread, other users from a child that drops to uid 65534 (nobody) with the gids a case needs (no
user is created on the host).  tests/kernel/test_control_socket.py runs the real daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit import control_client
from orchestrator_testkit.configs import check_config, load, write
from orchestrator_testkit.control_client import talk
from orchestrator_testkit.orchestrator_processes import NOBODY, NOGROUP, socket_owner_and_mode

from orchestrator.control import CLIENT_TIMEOUT_S, MAX_CLIENTS, MAX_REQUEST, ControlServer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to see other users' credentials")

CLIENT = Path(control_client.__file__)
OTHER_GID = 65533  # a gid outside it (setresgid does not need it to exist)
SHORT_TIMEOUT_S = 0.2
STATUS = b'{"command": "status"}\n'
RELOAD = b'{"command": "reload"}\n'


def _fail(_: str) -> dict[str, Any]:
    raise RuntimeError("deliberate failure")


COMMANDS = {
    "status": lambda command: {"answered": command},
    "reload": lambda command: {"answered": command},
    "fail": _fail,
    # More than the kernel buffers between the two ends: delivering it needs a client that reads.
    "big": lambda command: {"answered": command, "padding": "x" * (4 << 20)},
}


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 120))


@contextlib.asynccontextmanager
async def serving(path: Path, group: int | None = None,
                  timeout: float = CLIENT_TIMEOUT_S) -> AsyncIterator[ControlServer]:
    server = ControlServer(path, COMMANDS, group=group, client_timeout_s=timeout)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def as_root(path: Path, data: bytes, end: bool = False) -> dict[str, Any]:
    return await asyncio.to_thread(talk, str(path), data, end)


async def as_user(path: Path, data: bytes, gid: int, groups: tuple[int, ...] = ()) -> dict[str, Any]:
    """``talk`` from a child running as uid nobody with primary group ``gid`` and ``groups``."""
    argv = [str(path.parent), path.name, str(NOBODY), str(gid), json.dumps(groups), data.decode()]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def answered(result: dict[str, Any]) -> dict[str, Any]:
    """The answer of a connection the server closed after answering."""
    assert result["after"] == "", result
    answer: dict[str, Any] = result["answer"]
    return answer


def refused(result: dict[str, Any]) -> str:
    error: str = answered(result)["error"]
    return error


def socket_path(tmp_path: Path) -> Path:
    """In a directory ControlServer creates (0755): tmp_path itself is root's alone."""
    return tmp_path / "run" / "control.sock"


def test_without_a_group_the_socket_is_roots_alone(tmp_path: Path) -> None:
    path = socket_path(tmp_path)

    async def scenario() -> None:
        async with serving(path):
            assert socket_owner_and_mode(path) == (0, 0, 0o600)
            assert answered(await as_root(path, RELOAD)) == {"answered": "reload"}
            assert await as_user(path, STATUS, NOGROUP) == {"connect": "EACCES"}
            path.chmod(0o666)  # a loosened mode: the credentials check still refuses
            assert refused(await as_user(path, STATUS, NOGROUP)) == (
                f"permission denied: uid {NOBODY} gid {NOGROUP}: the control socket is root's only"
            )
            assert answered(await as_root(path, STATUS)) == {"answered": "status"}

    run(scenario())


def test_group_members_may_read_and_nothing_more(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    denied_reload = "permission denied: 'reload' is for root only"

    async def scenario() -> None:
        async with serving(path, group=NOGROUP):
            assert socket_owner_and_mode(path) == (0, NOGROUP, 0o660)
            assert answered(await as_user(path, STATUS, NOGROUP)) == {"answered": "status"}
            assert refused(await as_user(path, RELOAD, NOGROUP)) == denied_reload
            # A supplementary group counts as much as the primary one.
            assert answered(await as_user(path, STATUS, OTHER_GID, (NOGROUP,))) == {"answered": "status"}
            assert refused(await as_user(path, RELOAD, OTHER_GID, (NOGROUP,))) == denied_reload
            assert await as_user(path, STATUS, OTHER_GID) == {"connect": "EACCES"}
            path.chmod(0o666)  # past the file mode: the credentials check still refuses
            assert refused(await as_user(path, STATUS, OTHER_GID, (OTHER_GID - 1,))) == (
                f"permission denied: uid {NOBODY} gid {OTHER_GID} is neither root nor in group {NOGROUP}"
            )
            # More supplementary groups than can be read: refused, with the way out.
            many = tuple(range(1000, 1300))
            assert refused(await as_user(path, STATUS, OTHER_GID, many)).startswith(
                f"permission denied: uid {NOBODY} gid {OTHER_GID}: its supplementary groups cannot be read"
            )
            assert answered(await as_root(path, RELOAD)) == {"answered": "reload"}

    run(scenario())


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        (b"not json\n", 'expected one JSON object line like {"command": "status"}'),
        (b'["status"]\n', 'expected one JSON object line like {"command": "status"}'),
        (b'{"command": "nosuch"}\n', "unknown command 'nosuch'"),
        (b'{"command": 7}\n', "unknown command 7"),
        (b"x" * (1 << 20) + b"\n", f"request too long (limit {MAX_REQUEST} bytes)"),
        (b'{"command": "status"}', "request incomplete: no newline before the end of input"),
        (b'{"command": "fail"}\n', "command 'fail' failed; the daemon's log says why"),
    ],
    ids=["garbage", "not-an-object", "unknown", "not-a-name", "1-MiB", "no-newline", "handler-raises"],
)
def test_a_bad_request_gets_an_error_and_the_server_goes_on(
    tmp_path: Path, request_line: bytes, error: str
) -> None:
    """Each request is followed by the end of input, as a client that has said all it will."""
    path = socket_path(tmp_path)

    async def scenario() -> None:
        async with serving(path):
            assert refused(await as_root(path, request_line, end=True)) == error
            assert answered(await as_root(path, STATUS)) == {"answered": "status"}

    run(scenario())


def test_idle_and_slow_clients_are_answered_at_the_deadline(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    error = f"no request line within {SHORT_TIMEOUT_S:g} s"

    async def scenario() -> None:
        async with serving(path, timeout=SHORT_TIMEOUT_S):
            assert refused(await as_root(path, b"")) == error  # connects and says nothing
            assert refused(await as_root(path, b'{"command": "sta')) == error  # never finishes the line
            assert answered(await as_root(path, STATUS)) == {"answered": "status"}

    run(scenario())


def connected(stack: contextlib.ExitStack, path: Path) -> socket.socket:
    sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    sock.settimeout(30)
    sock.connect(str(path))
    return sock


def hung_up(sock: socket.socket) -> bool:
    """Wait, without reading, until the server closes its end (poll reports POLLHUP unasked)."""
    poller = select.poll()
    poller.register(sock.fileno(), 0)
    return any(events & select.POLLHUP for _, events in poller.poll(30_000))


def read_line(sock: socket.socket) -> bytes:
    with sock.makefile("rb") as stream:
        return stream.readline()


def test_clients_that_never_read_their_answer_are_dropped(tmp_path: Path) -> None:
    """As many as the cap allows, each with an answer larger than the kernel buffers: each is cut
    off at the deadline (its answer not kept for it), and then the server has room again."""
    path = socket_path(tmp_path)

    async def scenario() -> None:
        async with serving(path, timeout=SHORT_TIMEOUT_S):
            with contextlib.ExitStack() as stack:
                silent = [connected(stack, path) for _ in range(MAX_CLIENTS)]
                for sock in silent:
                    sock.sendall(b'{"command": "big"}\n')
                assert all(await asyncio.gather(*(asyncio.to_thread(hung_up, s) for s in silent)))
            assert answered(await as_root(path, STATUS)) == {"answered": "status"}

    run(scenario())


def test_one_client_more_than_the_cap_is_told_busy(tmp_path: Path) -> None:
    """The cap's clients connect first and say nothing yet; the next one is answered "busy" at
    once, the waiting ones are still served, and so is the next client after them."""
    path = socket_path(tmp_path)

    async def scenario() -> None:
        async with serving(path, timeout=60):  # the waiting clients must outlast the whole test
            with contextlib.ExitStack() as stack:
                waiting = [connected(stack, path) for _ in range(MAX_CLIENTS)]
                busy = refused(await as_root(path, STATUS))
                assert busy == f"busy: {MAX_CLIENTS} clients already connected; try again"
                for sock in waiting:
                    sock.sendall(STATUS)
                    assert json.loads(await asyncio.to_thread(read_line, sock)) == {"answered": "status"}
            assert answered(await as_root(path, STATUS)) == {"answered": "status"}

    run(scenario())


@pytest.mark.parametrize("group", ['"nogroup"', str(NOGROUP), f'"{NOGROUP}"'])
def test_control_group_is_resolved_to_a_gid_when_the_file_is_loaded(tmp_path: Path, group: str) -> None:
    assert load(write(tmp_path, daemon=f"control_group = {group}")).daemon.control_group == NOGROUP
    assert load(write(tmp_path)).daemon.control_group is None


@pytest.mark.parametrize(
    ("group", "problem"),
    [
        ('"no-such-group"', "no group 'no-such-group' in the group database"),
        ("4294967294", "no group 4294967294 in the group database"),
        ("-1", "expected a value >= 0, got -1"),
    ],
)
def test_an_unknown_control_group_is_a_configuration_error(tmp_path: Path, group: str, problem: str) -> None:
    config = write(tmp_path, daemon=f"control_group = {group}")
    result = check_config(config)
    assert (result.returncode, result.stderr) == (2, f"{config}: daemon.control_group: {problem}\n")
