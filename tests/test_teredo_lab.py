"""The Teredo lab itself works: real miredo behind real NAT qualifies against a real miredo-server,
and a move plus SIGHUP gives a new Teredo address; the hook's environment is pinned down.

Timings are printed (``pytest -s``) and attached as ``record_property`` (junit XML); the asserted
bounds are deliberately loose (a loaded CI box), the measured values are in the report.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import Event, monitor_time, wait_for
from teredo_lab import (
    NATS,
    SERVER_ADDRESS,
    STOCK_HOOK,
    TeredoLab,
    _check_hook,
    is_teredo,
    miredo_client_config,
    read_hook_calls,
    stock_hook_path,
    teredo_client_ipv4,
    teredo_client_port,
    teredo_requirements_problem,
    teredo_server_ipv4,
    write_env_dump_hook,
)
from teredo_watch import TunnelState, fold

# What miredo 1.2.6 passes to its client hook (besides nothing: no PATH, no HOME, cwd "/").
UP_VARS = {"STATE", "OLD_STATE", "IFACE", "IFINDEX", "ADDRESS", "LLADDRESS", "MTU"}
OLD_VARS = {"OLD_ADDRESS", "OLD_LLADDRESS", "OLD_MTU"}
DOWN_VARS = {"STATE", "OLD_STATE", "IFACE", "IFINDEX"} | OLD_VARS


def hook_vars(call: dict[str, str]) -> set[str]:
    """Names of the variables miredo passed (the wrapper's own @-entries left out)."""
    return {k for k in call if not k.startswith("@")}


def need_lab() -> None:
    reason = teredo_requirements_problem()
    if reason:
        pytest.skip(reason)


def host_hook_fingerprint() -> tuple[str, bool]:
    """The host's hook bytes, and whether something is mounted on it in the host's namespace."""
    digest = hashlib.sha256(STOCK_HOOK.read_bytes()).hexdigest() if STOCK_HOOK.exists() else ""
    mounted = subprocess.run(["findmnt", "-n", str(STOCK_HOOK)], capture_output=True).returncode == 0
    return digest, mounted


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def teredo_lab() -> Iterator[TeredoLab]:
    """A TeredoLab; after it closes, none of its namespaces or processes (miredo's worker and
    privproc included) may remain, and the host's hook must be untouched."""
    need_lab()
    before = host_hook_fingerprint()
    pids: list[int] = []
    with TeredoLab() as lab:
        yield lab
        pids += [p.pid for p in lab.processes]
        if lab.miredo is not None:  # miredo's worker and privproc, not tracked by the lab
            pids += descendants(lab.miredo.pid)
        names = [ns.name for ns in lab.namespaces]
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()
    assert not set(names) & set(left), f"namespaces left behind: {set(names) & set(left)}"
    assert not [p for p in pids if alive(p)], "processes left behind"
    assert host_hook_fingerprint() == before, "the host's /etc/miredo/client-hook changed or got a mount"


def report(record_property: Callable[[str, Any], None], name: str, seconds: float) -> None:
    record_property(name, f"{seconds:.4f}")
    print(f"\n{name}: {seconds * 1000:.1f} ms")


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
# the lab
# --------------------------------------------------------------------------------------------------
@pytest.mark.netns
def test_stock_hook_qualifies_behind_nat_and_requalifies_after_move(
        teredo_lab: TeredoLab, record_property: Callable[[str, Any], None]) -> None:
    lab = teredo_lab
    assert lab.node.default_route() == NATS["na"].gateway
    assert lab.teredo_ifindex() is None, "no teredo link before miredo starts"

    t0 = time.monotonic()
    proc = lab.start_miredo(stock_hook_path())
    first = lab.wait_teredo_address(timeout=10)
    report(record_property, "miredo_start_to_teredo_address_s", time.monotonic() - t0)
    assert lab.miredo_pid() == proc.pid
    assert is_teredo(first)
    assert teredo_server_ipv4(first) == SERVER_ADDRESS
    assert teredo_client_ipv4(first) == NATS["na"].wan, "the server saw the NAT's outside address"
    # the stock hook: address /32, default route metric 1029 through the tunnel
    assert f"{first}/32" in [f"{a['local']}/{a['prefixlen']}" for link in lab._teredo_link()
                             for a in link["addr_info"]]
    routes = lab.node.ip_json("-6", "route", "show", "default")
    assert any(r.get("dev") == "teredo" and r.get("metric") == 1029 for r in routes), routes
    index_before = lab.teredo_ifindex()

    new_v4 = lab.move_to("nb")
    assert new_v4.startswith("10.2.0.") and lab.node.default_route() == NATS["nb"].gateway
    # miredo does not watch netlink: right after the move the old address is still there
    assert lab.teredo_addresses() == [first]

    t_hup = lab.sighup_miredo()
    second = lab.wait_teredo_address(timeout=10, exclude={first})
    report(record_property, "sighup_after_move_to_new_teredo_address_s", time.monotonic() - t_hup)
    assert second != first and is_teredo(second)
    assert teredo_client_ipv4(second) == NATS["nb"].wan
    assert lab.teredo_addresses() == [second], "the old address must be gone with the old link"
    assert lab.teredo_ifindex() != index_before, "SIGHUP re-creates the teredo link"
    assert lab.miredo_pid() == proc.pid, "the supervisor survives SIGHUP"
    assert not proc.exited()


@pytest.mark.netns
def test_same_address_and_gateway_behind_another_nat(teredo_lab: TeredoLab) -> None:
    """``nc`` serves na's subnet with na's gateway address: the node keeps its lease there (also
    when dhclient asks again), only the gateway's MAC differs, and a re-qualification maps the
    node to nc's outside address."""
    lab = teredo_lab
    lab.start_miredo(stock_hook_path())
    first = lab.wait_teredo_address()
    address = lab.dhcp.address()
    assert address is not None and address.startswith("10.1.0.")
    assert lab.move_behind("nc") == address
    assert lab.attached == "nc" and lab.node.default_route() == NATS["nc"].gateway == NATS["na"].gateway
    assert lab.router_mac("nc") != lab.router_mac("na")
    assert lab.dhcp.restart() == address, "nc's dnsmasq ACKs the address na gave"
    assert lab.teredo_addresses() == [first], "miredo does not notice by itself"
    lab.sighup_miredo()
    second = lab.wait_teredo_address(exclude={first})
    assert teredo_client_ipv4(second) == NATS["nc"].wan != teredo_client_ipv4(first)
    with pytest.raises(ValueError, match="move_to"):
        lab.move_behind("nb")


@pytest.mark.netns
def test_hook_environment(teredo_lab: TeredoLab) -> None:
    """The exact environment miredo gives its hook, for start and for SIGHUP (stock hook behind a
    recording wrapper)."""
    lab = teredo_lab
    dump = lab.tmp / "hook-env.bin"
    hook = write_env_dump_hook(lab.tmp / "env-dump-hook", dump, lab.stock_hook_copy())
    lab.start_miredo(hook)
    first = lab.wait_teredo_address()
    start = read_hook_calls(dump)
    assert [c["STATE"] for c in start] == ["up"]
    up = start[0]
    assert hook_vars(up) == UP_VARS, "first up: no OLD_ADDRESS, no PATH"
    assert up["OLD_STATE"] == "down" and up["IFACE"] == "teredo" and up["ADDRESS"] == first
    assert up["IFINDEX"] == str(lab.teredo_ifindex())
    assert up["LLADDRESS"] in ("fe80::ffff:ffff:ffff", "fe80::8000:5445:5245:444f")
    assert int(up["MTU"]) >= 1280
    assert (up["@cwd"], up["@uid"], up["@argv"]) == ("/", "0", "")

    lab.move_to("nb")
    lab.sighup_miredo()
    second = lab.wait_teredo_address(exclude={first})
    calls = wait_for(lambda: c if len(c := read_hook_calls(dump)) >= 4 else None, 5, "4 hook calls")
    hup = calls[1:]
    print("\nhook calls:")
    for c in calls:
        print("  ", {k: v for k, v in c.items() if not k.startswith("@")})
    assert [c["STATE"] for c in hup] == ["down", "destroy", "up"]
    down, destroy, up2 = hup
    for c in (down, destroy):
        assert hook_vars(c) == DOWN_VARS
        # destroy reports OLD_STATE=up although down ran just before it
        assert c["OLD_STATE"] == "up" and c["OLD_ADDRESS"] == first and c["IFINDEX"] == up["IFINDEX"]
    assert hook_vars(up2) == UP_VARS, "the first up after SIGHUP has no OLD_*"
    assert up2["ADDRESS"] == second and up2["OLD_STATE"] == "down"
    assert up2["IFINDEX"] == str(lab.teredo_ifindex()) != up["IFINDEX"]
    assert float(down["@time"]) <= float(destroy["@time"]) <= float(up2["@time"])


@pytest.mark.netns
def test_private_server_address_is_refused(teredo_lab: TeredoLab) -> None:
    """miredo refuses a private server address at run time (checkconf accepts it) and keeps
    running without a Teredo address: the reason is only in its log."""
    lab = teredo_lab
    proc = lab.start_miredo(stock_hook_path(), "ServerAddress 10.1.0.1")
    wait_for(lambda: "non global IPv4 address" in lab.miredo_log.read_text(), 5,
             "miredo to refuse the private server address")
    assert not proc.exited() and lab.teredo_addresses() == []


# --------------------------------------------------------------------------------------------------
# the routed-Teredo-address watch (tests/teredo_watch.py), on lines ip -ts monitor printed here
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
