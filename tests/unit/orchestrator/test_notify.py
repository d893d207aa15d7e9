"""sd_notify without systemd: what the wrapper sends, and when the watchdog is ours."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from orchestrator.notify import Notifier, watchdog_interval


def test_silent_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = Notifier()
    notifier.ready("anything")  # nothing to send to, nothing raised
    assert not notifier.enabled and notifier.watchdog_interval_s is None


def test_utf8_status_and_one_datagram_per_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        notifier = Notifier()
        notifier.ready("uplink wlän0\nsecond line")
        notifier.reloading()
        assert receiver.recv(4096).decode("utf-8") == "READY=1\nSTATUS=uplink wlän0 second line"
        reloading = receiver.recv(4096).decode().split("\n")
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")


def test_a_vanished_socket_is_an_error_not_a_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    notifier = Notifier()
    receiver.close()
    with pytest.raises(OSError):
        notifier.watchdog()


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec_when_it_is_ours(
    environ: dict[str, str], interval: float | None
) -> None:
    assert watchdog_interval(environ) == interval
