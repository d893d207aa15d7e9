"""The Teredo lab's parts that need no lab: decoding Teredo addresses, the hook's safety checks, the
client configuration, the packaged hook, ``ip -ts monitor`` time stamps and the routed-address watch
(on lines ``ip`` printed here).  tests/kernel/testkit/test_teredo_lab.py runs the lab itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from orchestrator_testkit.ip_monitor import Event, monitor_time
from orchestrator_testkit.teredo_lab import (
    SERVER_ADDRESS,
    STOCK_HOOK,
    _check_hook,
    is_teredo,
    miredo_client_config,
    stock_hook_path,
    teredo_client_ipv4,
    teredo_client_port,
    teredo_server_ipv4,
)
from orchestrator_testkit.teredo_watch import TunnelState, fold


# --------------------------------------------------------------------------------------------------
# no lab needed
# --------------------------------------------------------------------------------------------------
def test_teredo_address_decoding() -> None:
    # RFC 4380 section 4's example: server 65.54.227.120, client 192.0.2.45 port 40000, cone.
    addr = "2001:0:4136:e378:8000:63bf:3fff:fdd2"
    assert is_teredo(addr) and is_teredo(addr + "/32")
    assert not is_teredo("2001:db8::1") and not is_teredo("fe80::ffff:ffff:ffff") and not is_teredo("x")
    assert teredo_server_ipv4(addr) == "65.54.227.120"
    assert teredo_client_ipv4(addr) == "192.0.2.45"
    assert teredo_client_port(addr) == 40000


def test_hook_must_be_root_owned_and_not_writable_by_others(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    if os.geteuid() == 0:
        _check_hook(hook)
        hook.chmod(0o757)
        with pytest.raises(ValueError, match="writable"):
            _check_hook(hook)
        hook.chmod(0o775)
        with pytest.raises(ValueError, match="writable"):
            _check_hook(hook)
    else:
        with pytest.raises(ValueError, match="owned by root"):
            _check_hook(hook)


def test_client_config_extra_replaces_defaults() -> None:
    conf = miredo_client_config()
    assert conf.splitlines()[1:] == ["RelayType client", "InterfaceName teredo",
                                     f"ServerAddress {SERVER_ADDRESS}"]
    # miredo keeps the FIRST occurrence of a directive: an override must replace, not append
    conf = miredo_client_config("serveraddress 192.0.2.1\n# comment\nBindPort 3545")
    assert "ServerAddress" not in conf and "serveraddress 192.0.2.1" in conf and "BindPort 3545" in conf
    assert "RelayType client" in conf and "InterfaceName teredo" in conf


def test_stock_hook_is_the_packaged_one() -> None:
    if not STOCK_HOOK.exists():
        pytest.skip("miredo not installed (scripts/install-deps)")
    path = stock_hook_path()
    assert path == STOCK_HOOK
    text = path.read_text()
    assert "Miredo client hook script for Linux/iproute2" in text  # Debian's / upstream's script


# --------------------------------------------------------------------------------------------------
# the routed-Teredo-address watch (orchestrator_testkit.teredo_watch), on lines ip -ts monitor printed here
# --------------------------------------------------------------------------------------------------
def test_ip_monitor_time_stamps() -> None:
    assert monitor_time("2026-11-28T01:22:26.642012") == pytest.approx(1795828946.642012, abs=1e-6)
    assert monitor_time("2026-11-28T01:22:26") == 1795828946
    assert monitor_time("2026-11-28T01:22:26.5") == 1795828946.5
    with pytest.raises(ValueError):
        monitor_time("Sat Nov 28 01:22:26 2026")


OLD = "2001:0:c633:6401:10fa:442b:39cc:9bf4"
NEW = "2001:0:c633:6401:3c5a:442b:39cc:9bf3"
SIGHUP_MOVE = [  # (seconds, message): a move to nb, then miredo's SIGHUP through the user's profile
    (0.000, "2: eth0    inet 10.2.0.109/24 brd 10.2.0.255 scope global dynamic eth0"),
    (0.001, "10.2.0.0/24 dev eth0 proto kernel scope link src 10.2.0.109 "),
    (0.002, "default via 10.2.0.1 dev eth0 "),
    (0.010, f"Deleted 5: teredo    inet6 {OLD}/128 scope global "),
    (0.011, "Deleted default dev teredo metric 1029 pref medium"),
    (0.030, "Deleted 5: teredo: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1400 qdisc fq_codel"),
    (0.040, "6: teredo: <POINTOPOINT,MULTICAST,NOARP> mtu 1500 qdisc noop state DOWN group default"),
    (0.070, f"6: teredo    inet6 {NEW}/128 scope global tentative "),
    (0.071, f"6: teredo    inet6 {NEW}/128 scope global "),
    (0.072, "unreachable default dev teredo metric 5 pref medium"),  # not unicast: not a default route
    (0.073, "default dev teredo table 100 metric 1024 pref medium"),  # not the main table
    (0.080, "default dev teredo metric 1029 pref medium"),
]


def watched(lines: list[tuple[float, str]], start: float = 1795828946.0) -> list[Event]:
    def ts(seconds: float) -> str:
        whole, micro = divmod(round((start + seconds) * 1e6), 10**6)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micro:06d}"

    return [Event(ts(seconds), text) for seconds, text in lines]


def test_watch_needs_a_new_address_and_the_default_route() -> None:
    before = TunnelState({OLD}, {1029})
    timing = fold(before, watched(SIGHUP_MOVE), "10.2.0.1", cutoff=1.0)
    assert timing.address == NEW and before == TunnelState({OLD}, {1029})
    assert timing.seconds == pytest.approx(0.080 - 0.002, abs=1e-6)
    # the new address alone (link re-created, route not yet there) is not routed
    assert fold(before, watched(SIGHUP_MOVE[:-1]), "10.2.0.1", cutoff=1.0).routed_at is None
    # without a SIGHUP the route stays and only the address is swapped (miredo's refresh)
    refresh = [SIGHUP_MOVE[2], (0.5, f"Deleted 5: teredo    inet6 {OLD}/128 scope global "),
               (0.6, f"5: teredo    inet6 {NEW}/128 scope global tentative "),
               (0.7, f"5: teredo    inet6 {NEW}/128 scope global ")]
    timing = fold(before, watched(refresh), "10.2.0.1", cutoff=1.0)
    assert timing.address == NEW and timing.seconds == pytest.approx(0.698, abs=1e-6)
    # the old address coming back is not a new one; a late answer is cut off; another gateway
    # is not this move's
    back = [SIGHUP_MOVE[2], (0.3, f"5: teredo    inet6 {OLD}/128 scope global ")]
    assert fold(before, watched(back), "10.2.0.1", cutoff=1.0).cut_off
    late = fold(before, watched([SIGHUP_MOVE[2], (1.5, refresh[3][1])]), "10.2.0.1", cutoff=1.0)
    assert late.routed_at is not None and late.cut_off
    assert fold(before, watched(SIGHUP_MOVE), "10.1.0.1", cutoff=1.0).route_at is None
