"""The Teredo plugin's rules without a network: when it kicks, and whom it may signal.

The real-kernel behaviour (real miredo, real DHCP) is in ``test_teredo.py``; here the rules are
driven by a clock advanced by hand, so every interval and back-off is checked exactly.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from orchestrator_teredo import miredo_conf
from orchestrator_teredo.requalify import COALESCED, KICKS, MIREDO_ABSENT, TIMEOUTS, Requalifier
from orchestrator_teredo.supervisor import NotStarted, Supervisor, SupervisorMissing
from orchestrator_testkit.configs import check_config, write
from orchestrator_testkit.orchestrator_processes import spawn_named

from orchestrator.events import Uplink, UplinkChanged
from orchestrator.moves import Move

# -- a clock advanced by hand, a miredo that only counts ------------------------------------------


@dataclass
class Timer:
    when: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class HandClock:
    now: float = 1000.0
    timers: list[Timer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Run every timer due by then, in order (a timer may add timers)."""
        end = self.now + seconds
        while due := [t for t in self.timers if not t.cancelled and t.when <= end]:
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = timer.when
            timer.callback(*timer.args)
        self.now = end


@dataclass
class CountingMiredo:
    running: bool = True
    reloads: list[float] = field(default_factory=list)
    clock: HandClock | None = None
    started: bool = True  # False: no pid file at all (running is then False too)

    def pid(self) -> int:
        if not self.started:
            raise NotStarted("miredo is not running: no pid file /run/miredo.pid")
        if not self.running:
            raise SupervisorMissing("miredo is not running: /run/miredo.pid names pid 99, which is gone")
        return 4242

    def reload(self) -> int:
        pid = self.pid()
        assert self.clock is not None
        self.reloads.append(self.clock.now)
        return pid


@dataclass
class Rig:
    clock: HandClock
    miredo: CountingMiredo
    counters: Counter[str]
    status: dict[str, Any]
    uplink: list[bool]
    requalifier: Requalifier
    moves: int = 0

    def move(self) -> Move:
        """A complete new uplink, as the core reports it."""
        self.moves += 1
        self.uplink[0] = True
        new = Uplink("eth0", f"10.{self.moves}.0.100/24", f"10.{self.moves}.0.1")
        move = Move(self.moves, UplinkChanged(None, new, self.moves), 0.0, self.clock.now)
        self.requalifier.request("test move", move)
        return move

    def lose(self) -> None:
        self.uplink[0] = False
        self.requalifier.uplink_lost()


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def make_rig(address: str | None = "2001:0:c633:6401::1", uplink: bool = True, running: bool = True,
             started: bool = True) -> Rig:
    clock = HandClock()
    miredo = CountingMiredo(running and started, clock=clock, started=started)
    counters: Counter[str] = Counter()
    status: dict[str, Any] = {}
    present = [uplink]
    requalifier = Requalifier(
        miredo, clock, min_interval_s=1.0, timeout_s=8.0, uplink_present=lambda: present[0],
        counters=counters, status=status, log=logging.getLogger("test.teredo"),
    )
    requalifier.start(address)
    return Rig(clock, miredo, counters, status, present, requalifier)


# -- the rules ---------------------------------------------------------------------------------------


def test_start_up_with_an_address_does_not_kick(rig: Rig) -> None:
    assert rig.miredo.reloads == [] and rig.status["state"] == "up"


def test_start_up_kicks_only_on_a_complete_uplink_without_address() -> None:
    assert make_rig(address=None, uplink=True).miredo.reloads != []
    idle = make_rig(address=None, uplink=False)
    assert idle.miredo.reloads == [] and idle.status["state"] == "stale"


def test_a_move_kicks_once_and_the_address_ends_it(rig: Rig) -> None:
    move = rig.move()
    assert rig.miredo.reloads == [rig.clock.now] and rig.status["state"] == "qualifying"
    assert "requalify-sent" in move.phases and move.parts_open
    rig.requalifier.address_changed(None)  # miredo's own restart: down, destroy, new link, up
    rig.requalifier.link_vanished()
    rig.requalifier.link_appeared()
    rig.requalifier.address_changed("2001:0:c633:6401::2")
    assert "tunnel-up" in move.phases and not move.parts_open and move.problems == []
    assert rig.status == {"state": "up", "reason": "", "address": "2001:0:c633:6401::2"}
    rig.clock.advance(600)
    assert len(rig.miredo.reloads) == 1 and rig.counters[KICKS] == 1


def test_moves_inside_the_interval_coalesce_into_one_kick_for_the_newest(rig: Rig) -> None:
    first = rig.move()
    rig.clock.advance(0.1)
    moves = []
    for _ in range(9):
        moves.append(rig.move())
        rig.clock.advance(0.05)
    assert len(rig.miredo.reloads) == 1
    rig.clock.advance(1.0)
    assert rig.miredo.reloads == [1000.0, 1001.0], "the coalesced kick is sent as soon as allowed"
    assert rig.counters[COALESCED] == 9
    assert "requalify-sent" in moves[-1].phases and not any("requalify-sent" in m.phases for m in moves[:-1])
    assert not first.parts_open and all(not m.parts_open for m in moves[:-1])
    rig.requalifier.address_changed("2001:0:c633:6401::3")
    assert rig.status["state"] == "up" and not moves[-1].parts_open


def test_an_address_from_an_older_kick_does_not_end_a_pending_one(rig: Rig) -> None:
    rig.move()
    rig.clock.advance(0.2)
    newest = rig.move()  # coalesced: due 0.8 s later
    rig.requalifier.address_changed("2001:0:c633:6401::4")  # from the first kick, old network
    assert rig.status["state"] == "qualifying" and newest.parts_open
    rig.clock.advance(1.0)
    assert len(rig.miredo.reloads) == 2


def test_uplink_lost_never_kicks_and_cancels_a_pending_kick(rig: Rig) -> None:
    rig.move()
    rig.clock.advance(0.2)
    rig.move()  # pending
    rig.lose()
    rig.clock.advance(600)
    assert len(rig.miredo.reloads) == 1 and rig.status["state"] == "stale"
    rig.move()  # back
    assert len(rig.miredo.reloads) == 2


def test_an_address_that_arrives_after_the_loss_leaves_the_tunnel_stale(rig: Rig) -> None:
    rig.move()
    rig.lose()
    rig.requalifier.address_changed("2001:0:c633:6401::7")
    assert rig.status["state"] == "stale" and rig.status["address"] == "2001:0:c633:6401::7"


def test_no_address_in_time_fails_the_move_and_kicks_again_with_backoff(rig: Rig) -> None:
    move = rig.move()
    rig.clock.advance(8.0)
    assert rig.status["state"] == "failed" and rig.counters[TIMEOUTS] == 1
    assert move.problems == ["no Teredo address 8 s after the SIGHUP"] and not move.parts_open
    rig.clock.advance(8.0 + 8.0 + 16.0 + 8.0 + 32.0)
    gaps = [b - a for a, b in pairwise(rig.miredo.reloads)]
    assert gaps == [16.0, 24.0, 40.0], "8 s of waiting, then back-offs of 8, 16, 32 s"
    rig.requalifier.address_changed("2001:0:c633:6401::5")
    assert rig.status["state"] == "up"
    rig.clock.advance(3600)
    assert len(rig.miredo.reloads) == 4


def test_backoff_is_capped() -> None:
    rig = make_rig()
    rig.move()
    rig.clock.advance(4 * 3600)
    gaps = [b - a for a, b in pairwise(rig.miredo.reloads)]
    assert max(gaps) == 8.0 + 300.0


def test_a_new_move_replaces_the_backoff(rig: Rig) -> None:
    rig.move()
    rig.clock.advance(9.0)  # failed, retry due in 7 s
    rig.move()
    assert len(rig.miredo.reloads) == 2 and rig.miredo.reloads[-1] == rig.clock.now


def test_miredo_absent_is_reported_counted_and_not_retried() -> None:
    rig = make_rig(running=False)
    assert rig.status["state"] == "failed" and "not running" in rig.status["reason"]
    move = rig.move()
    rig.clock.advance(3600)
    assert rig.miredo.reloads == [] and rig.counters[MIREDO_ABSENT] == 2
    assert move.problems and "not running" in move.problems[0]
    rig.miredo.running = True
    rig.requalifier.link_appeared()  # miredo started again by its init system
    assert rig.status["state"] == "qualifying"
    rig.requalifier.address_changed("2001:0:c633:6401::6")
    assert rig.status["state"] == "up"
    rig.move()
    assert len(rig.miredo.reloads) == 1


def test_a_miredo_not_started_yet_is_waited_for_not_failed() -> None:
    """A standby's miredo starts after the daemon (its unit is ordered so): no error, no count."""
    rig = make_rig(address=None, started=False)
    assert rig.status["state"] == "stale" and "waiting for it" in rig.status["reason"]
    assert rig.counters[MIREDO_ABSENT] == 0 and rig.miredo.reloads == []
    rig.miredo.started = rig.miredo.running = True
    rig.requalifier.link_appeared()
    assert rig.status["state"] == "qualifying"
    rig.requalifier.address_changed("2001:0:c633:6401::6")
    assert rig.status["state"] == "up" and rig.miredo.reloads == []


def test_miredo_exiting_is_reported_at_once(rig: Rig) -> None:
    rig.requalifier.miredo_exited("miredo (pid 4242, /run/miredo.pid) exited")
    assert rig.status["state"] == "failed" and rig.counters[MIREDO_ABSENT] == 1


def test_a_link_vanishing_on_its_own_is_not_a_reason_to_kick(rig: Rig) -> None:
    rig.requalifier.address_changed(None)
    rig.requalifier.link_vanished()  # someone ran `systemctl reload miredo`
    assert rig.status["state"] == "qualifying" and rig.miredo.reloads == []


# -- whom a kick may signal --------------------------------------------------------------------------


FakeMiredo = tuple[subprocess.Popen[bytes], Path]


@pytest.fixture
def fake_miredo(tmp_path: Path) -> Iterator[FakeMiredo]:
    """A process whose name is ``miredo`` (a copy of sleep) and its pid file."""
    binary = tmp_path / "miredo"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    proc = spawn_named([str(binary), "600"], "miredo")
    pidfile = tmp_path / "miredo.pid"
    pidfile.write_text(f"{proc.pid}\n")
    try:
        yield proc, pidfile
    finally:
        proc.kill()
        proc.wait()


def test_reload_sends_sighup_to_the_pidfile_process(fake_miredo: FakeMiredo) -> None:
    proc, pidfile = fake_miredo
    assert Supervisor(pidfile).reload() == proc.pid
    assert proc.wait(timeout=10) == -signal.SIGHUP


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    stranger = spawn_named(["sleep", "600"], "sleep")
    try:
        pidfile = tmp_path / "miredo.pid"
        pidfile.write_text(f"{stranger.pid}\n")
        with pytest.raises(SupervisorMissing, match="which is 'sleep', not miredo"):
            Supervisor(pidfile).reload()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no pid file"), ("", "no usable pid"), ("1\n", "no usable pid"), ("99999999\n", "which is gone"),
     ("9" * 30 + "\n", "which is gone")],
)
def test_a_pidfile_without_miredo_is_said_plainly(tmp_path: Path, content: str | None, message: str) -> None:
    pidfile = tmp_path / "miredo.pid"
    if content is not None:
        pidfile.write_text(content)
    with pytest.raises(SupervisorMissing, match=message):
        Supervisor(pidfile).pid()


def test_the_exit_of_a_watched_miredo_is_reported(fake_miredo: FakeMiredo) -> None:
    proc, pidfile = fake_miredo

    async def watch() -> str:
        exited: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        supervisor = Supervisor(pidfile, on_exit=exited.set_result)
        assert supervisor.pid() == proc.pid
        proc.terminate()
        return await asyncio.wait_for(exited, 10)

    assert asyncio.run(watch()) == f"miredo (pid {proc.pid}, {pidfile}) exited"


# -- miredo's own configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "configured", "expected"),
    [
        ("ServerAddress teredo.example.net\n", "198.51.100.1", "names the Teredo server by host name"),
        ("# ServerAddress teredo.example.net\nServerAddress 198.51.100.1\n", "198.51.100.1", None),
        ("ServerAddress 198.51.100.1\nServerAddress example.net\n", None, "teredo.server: not set"),
        ("serveraddress 198.51.100.9 # the other one\n", "198.51.100.1", "differs from 198.51.100.9"),
        ("RelayType client\n", None, None),
    ],
)
def test_miredo_conf_warnings(
    tmp_path: Path, text: str, configured: str | None, expected: str | None
) -> None:
    path = tmp_path / "miredo.conf"
    path.write_text(text)
    found = miredo_conf.warnings(path, configured)
    assert (expected in found[0]) if expected else found == [], found


def test_check_config_warns_about_the_running_miredos_server_name(tmp_path: Path) -> None:
    """The miredo.conf checked is the one the running miredo was started with (``-c``)."""
    conf = tmp_path / "miredo.conf"
    conf.write_text("RelayType client\nServerAddress teredo.example.net\n")
    fake = tmp_path / "miredo"  # a script's process is named after the script
    fake.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
    fake.chmod(0o755)
    proc = spawn_named([str(fake), "-c", str(conf)], "miredo")
    try:
        pidfile = tmp_path / "miredo.pid"
        pidfile.write_text(f"{proc.pid}\n")
        config = write(tmp_path, enable=["teredo"], extra=f'[teredo]\npidfile = "{pidfile}"\n')
        result = check_config(config)
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 0, result.stderr
    warning = f"warning: teredo: {conf} names the Teredo server by host name (teredo.example.net)"
    assert warning in result.stderr
