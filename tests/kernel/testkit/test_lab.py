"""The namespace lab itself works: leases, moves, renewals, carrier, and a clean teardown.

These also pin down what the kernel reports for each DHCP client action (see
orchestrator_testkit.dhcp_clients), so a change of client or kernel behaviour shows up here first, not
as a mysterious daemon failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from orchestrator_testkit.access_lab import ACCESS_LAB_BINARIES, ROUTERS, AccessLab
from orchestrator_testkit.ip_monitor import Event
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import alive, lab_namespaces, requirements_problem, wait_for

pytestmark = pytest.mark.netns


def need(*binaries: str) -> None:
    reason = requirements_problem(*binaries)
    if reason:
        pytest.skip(reason)


def host_fingerprint() -> tuple[str, str]:
    """Things a DHCP client must never change on the host."""
    return hashlib.sha256(Path("/etc/resolv.conf").read_bytes()).hexdigest(), socket.gethostname()


@pytest.fixture
def host_untouched() -> Iterator[None]:
    before = host_fingerprint()
    yield
    assert host_fingerprint() == before, "the host's /etc/resolv.conf or hostname changed"
    assert not list(Path("/etc").glob("resolv.conf.dhclient-new.*"))


def addr_events(events: list[Event]) -> list[str]:
    """'+10.1.0.5/24' / '-10.1.0.5/24' for the IPv4 address events, in order."""
    out = []
    for e in events:
        if e.kind == "address" and " inet " in e.text:
            addr = e.text.split(" inet ")[1].split()[0]
            out.append(("-" if e.deleted else "+") + addr)
    return out


def is_v6(e: Event) -> bool:
    return " inet6 " in e.text or "::" in e.first_line


def default_route_events(events: list[Event]) -> list[str]:
    return [e.first_line for e in events if e.kind == "route" and "default" in e.first_line]


def in_subnet(addr: str | None, prefix: str) -> bool:
    return addr is not None and addr.startswith(prefix) and addr.endswith("/24")


# --------------------------------------------------------------------------------------------------
def test_dhclient_lease_move_release(host_untouched: None) -> None:
    need(*ACCESS_LAB_BINARIES, "dhclient")
    with AccessLab() as lab:
        assert lab.node.default_route() is None, "the node must have no default route before DHCP"
        mon = lab.monitor()
        dh = lab.dhclient()

        first = dh.start()
        assert in_subnet(first, "10.1.0."), first
        assert lab.node.default_route() == "10.1.0.1"
        evs = mon.wait_for(lambda e: bool(default_route_events(e)), 5, "default route event")
        assert addr_events(evs) == [f"+{first}"]
        v4 = [e for e in evs if e.kind != "link" and not is_v6(e)]
        # NEWADDR first, then its routes, the default route last
        assert v4[0].kind == "address" and v4[-1].first_line.startswith("default via 10.1.0.1")

        # same network, stop/start (INIT-REBOOT): the kernel hears nothing about the address
        m = mon.mark()
        assert dh.restart() == first
        mon.sync()
        assert addr_events(mon.since(m)) == []

        # move to rb: old address deleted, new one added, default route via the new gateway
        lab.attach("rb")
        m = mon.mark()
        second = dh.restart()
        assert in_subnet(second, "10.2.0."), second
        assert lab.node.addresses("eth0") == [second]
        assert lab.node.default_route() == "10.2.0.1"
        evs = mon.wait_for(lambda e: bool(default_route_events(e[m:])), 5, "new default route event")[m:]
        assert addr_events(evs) == [f"-{first}", f"+{second}"]
        # the old default route goes without a deletion event
        assert [d.strip() for d in default_route_events(evs)] == ["default via 10.2.0.1 dev eth0"]

        m = mon.mark()
        dh.release()
        assert dh.address() is None and not dh.running
        assert lab.node.default_route() is None
        evs = mon.wait_for(lambda e: len(addr_events(e[m:])) >= 1, 5, "release events")[m:]
        assert addr_events(evs) == [f"-{second}"]
        assert default_route_events(evs) == []


def test_dhclient_genuine_renewal_is_one_newaddr() -> None:
    need(*ACCESS_LAB_BINARIES, "dhclient")
    with AccessLab(renew_after=3) as lab:
        mon = lab.monitor()
        dh = lab.dhclient()
        addr = dh.start()
        mon.wait_for(lambda e: bool(default_route_events(e)), 5, "default route event")
        m = mon.mark()
        assert dh.renew(timeout=15) == addr
        evs = mon.wait_for(lambda e: bool(addr_events(e[m:])), 5, "the renewal's NEWADDR")[m:]
        v4 = [e for e in evs if not is_v6(e)]  # (the node's IPv6 link-local may finish DAD meanwhile)
        assert [e.kind for e in v4] == ["address"] and addr_events(v4) == [f"+{addr}"]
        assert "valid_lft 120sec" in v4[0].text  # fresh lifetime = the whole lease


def test_dhclient_same_subnet_hotspot_is_invisible_in_addresses() -> None:
    need(*ACCESS_LAB_BINARIES, "dhclient")
    with AccessLab() as lab:
        dh = lab.dhclient()
        addr = dh.start()
        mac_a = lab.router_mac("ra")
        assert mac_a == ROUTERS["ra"].mac
        mon = lab.monitor()
        lab.attach("rc")
        assert lab.router_mac("rc") != mac_a
        assert dh.restart() == addr
        assert lab.node.default_route() == "10.1.0.1"
        mon.sync()
        assert addr_events(mon.events()) == []


def test_udhcpc_lease_renew_move_release(host_untouched: None) -> None:
    need(*ACCESS_LAB_BINARIES, "udhcpc", "busybox")
    with AccessLab() as lab:
        mon = lab.monitor()
        uc = lab.udhcpc()
        first = uc.start()
        assert in_subnet(first, "10.1.0."), first
        assert lab.node.default_route() == "10.1.0.1"
        evs = mon.wait_for(lambda e: bool(default_route_events(e)), 5, "default route event")
        ip = first.split("/")[0]
        # busybox ifconfig: classful /8 first, deleted, re-added with the real mask
        assert addr_events(evs) == [f"+{ip}/8", f"-{ip}/8", f"+{first}"]
        assert "forever" in next(e.text for e in evs if e.kind == "address")  # no lease lifetimes

        m = mon.mark()
        assert uc.renew() == first  # SIGUSR1: renewed, and the kernel is told nothing
        assert lab.node.addresses("eth0") == [first]
        mon.sync()
        assert addr_events(mon.since(m)) == []

        uc.stop()  # no release: the address stays
        assert uc.address() == first

        lab.attach("rb")
        m = mon.mark()
        second = uc.start()
        assert in_subnet(second, "10.2.0."), second
        assert lab.node.addresses("eth0") == [second]
        assert lab.node.default_route() == "10.2.0.1"
        ip2 = second.split("/")[0]
        evs = mon.wait_for(lambda e: bool(default_route_events(e[m:])), 5, "new default route")[m:]
        assert addr_events(evs) == [f"-{first}", f"+{ip2}/8", f"-{ip2}/8", f"+{second}"]

        uc.release()
        assert uc.address() is None and not uc.running
        assert lab.node.default_route() is None


def test_carrier_toggle() -> None:
    need(*ACCESS_LAB_BINARIES)
    with AccessLab(attached="ra") as lab:
        assert lab.node.has_carrier("eth0")
        assert lab.node.run("cat", "/sys/class/net/eth0/carrier").stdout.strip() == "1"
        lab.carrier(False)
        assert not lab.node.has_carrier("eth0")
        assert lab.node.run("cat", "/sys/class/net/eth0/carrier").stdout.strip() == "0"
        assert "NO-CARRIER" in lab.node.link("eth0")["flags"]
        lab.carrier(True)
        assert lab.node.run("cat", "/sys/class/net/eth0/carrier").stdout.strip() == "1"


def test_bridge_holds_node_and_one_router() -> None:
    need(*ACCESS_LAB_BINARIES)
    with AccessLab() as lab:
        def ports() -> set[str]:
            return {link["ifname"] for link in lab.sw.ip_json("link", "show", "master", "br0")}

        assert ports() == {"n0", "p-ra"}
        for short in ("rb", "rc", "ra"):
            lab.attach(short)
            assert ports() == {"n0", f"p-{short}"}
            assert lab.attached == short
        # routers have only lo and their LAN: they cannot reach each other
        for r in lab.routers.values():
            assert {link["ifname"] for link in r.ip_json("link", "show")} == {"lo", "lan"}


def group_members(pgid: int) -> list[int]:
    """Live PIDs whose process group is ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.parametrize("fail", [False, True], ids=["normal-exit", "test-failure"])
def test_cleanup_leaves_nothing(fail: bool) -> None:
    need(*ACCESS_LAB_BINARIES, "dhclient")
    assert lab_namespaces() == []
    pids: list[int] = []
    tmp: Path | None = None
    with pytest.raises(ZeroDivisionError) if fail else contextlib.nullcontext(), AccessLab() as lab:
        tmp = lab.tmp
        lab.dhclient().start()
        sleeper = lab.node.spawn(["sh", "-c", "sleep 300 & sleep 300"])
        # sh and its two sleeps share the process group the lab kills
        def whole_group() -> list[int] | None:
            members = group_members(sleeper.pid)
            return members if len(members) == 3 else None

        group = wait_for(whole_group, 5, "sh and two sleeps in one process group")
        pids = [p.pid for p in lab.processes]
        assert sleeper.pid in pids and len(lab_namespaces()) == 5
        # the client's bind mounts live in its private mount namespace only
        assert str(tmp) not in Path("/proc/self/mountinfo").read_text()
        if fail:
            _ = 1 / 0
    assert lab_namespaces() == []
    assert pids and not [p for p in pids + group if alive(p)]
    assert tmp is not None and not tmp.exists()


def test_plain_lab_namespace_and_veth() -> None:
    need()
    with Lab() as lab:
        a, b = lab.namespace("a"), lab.namespace("b")
        assert a.name == f"orch{os.getpid()}-a"
        lab.veth(a, "x0", b, "y0", mac_a="02:00:00:00:00:aa")
        a.ip("addr", "add", "198.51.100.1/24", "dev", "x0")
        b.ip("addr", "add", "198.51.100.2/24", "dev", "y0")
        assert a.mac("x0") == "02:00:00:00:00:aa"
        wait_for(lambda: a.has_carrier("x0") and b.has_carrier("y0"), 5, "veth carrier")
        a.sysctl("net.ipv4.ip_forward", 1)
        assert a.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        with pytest.raises(ValueError):
            lab.veth(a, "much-too-long-name0", b, "y1")
        proc = b.spawn(["sleep", "300"])
        proc.send_signal(signal.SIGSTOP)  # a stopped process must still be cleaned up
    assert proc.returncode is not None
