"""Decoding what mip6d changes in the kernel on a handover (xfrm and the ip6tnl tunnel).

The messages are built here field by field from linux/xfrm.h, independently of the decoder's own
layouts (the link message by pyroute2's encoder); a namespace test has the real kernel announce a
policy and a migration.  The synthesized layouts are those of a 64-bit machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lab import Lab, requirements_problem
from orchestrator_mipv6 import xfrm
from orchestrator_mipv6.xfrm import Migration, Template, TunnelEndpoint, XfrmSignal
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

if struct.calcsize("P") != 8:
    pytest.skip("the synthesized messages have a 64-bit machine's layouts", allow_module_level=True)

HOA, HA = "2001:db8:1::10", "2001:db8:1::1"
OLD_COA, NEW_COA = "2001:db8:2::5", "2001:db8:3::7"
AF6 = socket.AF_INET6
ESP, DSTOPTS, MH = 50, 60, 135
IN, OUT, FWD = xfrm.XFRM_POLICY_IN, xfrm.XFRM_POLICY_OUT, xfrm.XFRM_POLICY_FWD
MODE_TRANSPORT, MODE_TUNNEL, MODE_ROUTEOPTIMIZATION = 0, 1, 2

# -- linux/xfrm.h, field by field (sizes as sizeof() on x86_64) ------------------------------------


def addr(text: str) -> bytes:
    """An xfrm_address_t: 16 bytes; an IPv4 address fills the first 4."""
    if ":" in text:
        return socket.inet_pton(AF6, text)
    return socket.inet_pton(socket.AF_INET, text) + bytes(12)


def selector(src: str, dst: str, proto: int = 0, family: int = AF6) -> bytes:
    ports = struct.pack("!HHHH", 0, 0, 5 if proto == MH else 0, 0xFFFF if proto == MH else 0)
    data = addr(dst) + addr(src) + ports + struct.pack("=HBBB", family, 128, 128, proto) + bytes(3)
    data += struct.pack("=iI", 0, 0)  # ifindex, user
    assert len(data) == 56
    return data


def lifetimes() -> bytes:
    return struct.pack("=8Q", *([2**64 - 1] * 8)) + bytes(32)  # xfrm_lifetime_cfg, xfrm_lifetime_cur


def policy_info(sel: bytes, priority: int, direction: int) -> bytes:
    data = sel + lifetimes() + struct.pack("=IIBBBB", priority, 8, direction, 0, 0, 0) + bytes(4)
    assert len(data) == 168
    return data


def policy_id(sel: bytes, direction: int) -> bytes:
    data = sel + struct.pack("=IB", 0, direction) + bytes(3)
    assert len(data) == 64
    return data


def sa_info(src: str, dst: str, proto: int, mode: int, family: int = AF6) -> bytes:
    xfrm_id = addr(dst) + b"\0\0\0\0" + bytes([proto]) + bytes(3)
    stats = bytes(12)
    tail = struct.pack("=IIHBBB", 0, 0, family, mode, 0, 0) + bytes(7)
    data = selector(src, dst) + xfrm_id + addr(src) + lifetimes() + stats + tail
    assert len(data) == 224
    return data


def sa_id(dst: str, proto: int) -> bytes:
    data = addr(dst) + b"\0\0\1\0" + struct.pack("=HB", AF6, proto) + bytes(1)
    assert len(data) == 24
    return data


def user_tmpl(src: str, dst: str, proto: int, mode: int, family: int = AF6) -> bytes:
    data = addr(dst) + bytes(4) + bytes([proto]) + bytes(3) + struct.pack("=H", family) + bytes(2)
    data += addr(src) + struct.pack("=IBBBx", 1, mode, 0, 0) + struct.pack("=III", 0, 0xFFFFFFFF, 0)
    assert len(data) == 64
    return data


def user_migrate(old_src: str, old_dst: str, new_src: str, new_dst: str, mode: int = MODE_TRANSPORT) -> bytes:
    data = addr(old_dst) + addr(old_src) + addr(new_dst) + addr(new_src)
    data += struct.pack("=BBHIHH", ESP, mode, 0, 1, AF6, AF6)
    assert len(data) == 76
    return data


def nla(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + bytes(-len(data) % 4)


def nlmsg(kind: int, body: bytes) -> bytes:
    data = struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body
    return data + bytes(-len(data) % 4)


XFRMA_TMPL, XFRMA_SA, XFRMA_POLICY, XFRMA_COADDR, XFRMA_POLICY_TYPE, XFRMA_MIGRATE = 5, 6, 7, 14, 16, 17
NEWSA, DELSA, NEWPOLICY, DELPOLICY, UPDPOLICY, UPDSA, MIGRATE = 0x10, 0x11, 0x13, 0x14, 0x19, 0x1A, 0x21


def policy_type(sub: bool) -> bytes:
    return nla(XFRMA_POLICY_TYPE, struct.pack("=BxHBx", int(sub), 0, 0))  # xfrm_userpolicy_type: 6 bytes


def migrate_message(direction: int, *entries: bytes, one_attribute: bool = False) -> bytes:
    """What the kernel's build_migrate() sends: one XFRMA_MIGRATE per entry (a request from
    user space may put them all in one)."""
    sel = selector(HA, HOA) if direction == IN else selector(HOA, HA)
    attrs = (
        nla(XFRMA_MIGRATE, b"".join(entries))
        if one_attribute
        else b"".join(nla(XFRMA_MIGRATE, e) for e in entries)
    )
    return nlmsg(MIGRATE, policy_id(sel, direction) + policy_type(False) + attrs)


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_from_old_to_new_care_of_address() -> None:
    """mn_ipsec_trns_update: out (HA, old CoA) → (HA, new CoA); in (old CoA, HA) → (new CoA, HA)."""
    out = migrate_message(OUT, user_migrate(OLD_COA, HA, NEW_COA, HA))
    inbound = migrate_message(IN, user_migrate(HA, OLD_COA, HA, NEW_COA))
    assert xfrm.decode_xfrm(out + inbound) == [
        XfrmSignal(
            "migrate", MIGRATE, HOA, HA, 0, OUT, migrations=(Migration(OLD_COA, HA, NEW_COA, HA, ESP),)
        ),
        XfrmSignal(
            "migrate", MIGRATE, HA, HOA, 0, IN, migrations=(Migration(OLD_COA, HA, NEW_COA, HA, ESP),)
        ),
    ]


def test_migrate_entries_in_one_attribute_or_many() -> None:
    first = user_migrate(OLD_COA, HA, NEW_COA, HA)
    second = user_migrate(OLD_COA, "2001:db8:1::2", NEW_COA, "2001:db8:1::2")
    many = xfrm.decode_xfrm(migrate_message(FWD, first, second))
    one = xfrm.decode_xfrm(migrate_message(FWD, first, second, one_attribute=True))
    assert many == one
    assert [m.new_local for m in many[0].migrations] == [HA, "2001:db8:1::2"]  # forwarded: we are dst


# -- policies -----------------------------------------------------------------------------------


def test_ipsec_home_policy_at_priority_5_with_the_new_care_of_address() -> None:
    body = policy_info(selector(HOA, HA), xfrm.MIP6_PRIO_HOME_DATA_IPSEC, OUT) + nla(
        XFRMA_TMPL, user_tmpl(NEW_COA, HA, ESP, MODE_TUNNEL)
    )
    (signal,) = xfrm.decode_xfrm(nlmsg(NEWPOLICY, body + policy_type(False)))
    assert signal == XfrmSignal(
        "policy", NEWPOLICY, HOA, HA, 0, OUT, 5, templates=(Template(NEW_COA, HA, ESP),)
    )


def test_home_data_policies_after_the_binding_ack() -> None:
    """xfrm_post_ba_mod_bule: UPDPOLICY (sub) out HoA → HA with a Destination Options template, in
    HA → HoA with a routing header template, both MIP6_PRIO_HOME_DATA."""
    out = policy_info(selector(HOA, HA), xfrm.MIP6_PRIO_HOME_DATA, OUT) + policy_type(True)
    out += nla(XFRMA_TMPL, user_tmpl(HOA, HA, DSTOPTS, MODE_ROUTEOPTIMIZATION))
    inbound = policy_info(selector(HA, HOA), xfrm.MIP6_PRIO_HOME_DATA, IN) + policy_type(True)
    inbound += nla(XFRMA_TMPL, user_tmpl("::", "::", 43, MODE_ROUTEOPTIMIZATION))
    signals = xfrm.decode_xfrm(nlmsg(UPDPOLICY, out) + nlmsg(UPDPOLICY, inbound))
    assert [(s.message, s.direction, s.priority, s.src, s.dst) for s in signals] == [
        (UPDPOLICY, OUT, 6, HOA, HA),
        (UPDPOLICY, IN, 6, HA, HOA),
    ]
    assert signals[0].templates == (Template(HOA, HA, DSTOPTS),)
    assert signals[1].templates == (Template("::", "::", 43),)


def test_several_templates_in_one_attribute() -> None:
    templates = user_tmpl(NEW_COA, HA, 108, MODE_TRANSPORT) + user_tmpl(NEW_COA, HA, ESP, MODE_TRANSPORT)
    body = policy_info(selector(HOA, HA, MH), xfrm.MIP6_PRIO_HOME_SIG, OUT) + nla(XFRMA_TMPL, templates)
    (signal,) = xfrm.decode_xfrm(nlmsg(NEWPOLICY, body))
    assert signal.proto == MH
    assert [t.proto for t in signal.templates] == [108, ESP]


def test_a_template_without_family_takes_the_policy_family() -> None:
    body = policy_info(selector(HOA, HA), xfrm.MIP6_PRIO_HOME_DATA_IPSEC, OUT) + nla(
        XFRMA_TMPL, user_tmpl(NEW_COA, HA, ESP, 1, family=0)
    )
    (signal,) = xfrm.decode_xfrm(nlmsg(NEWPOLICY, body))
    assert signal.templates == (Template(NEW_COA, HA, ESP),)


def test_deleted_policy_carries_its_info_in_an_attribute() -> None:
    """xfrm_notify_policy for XFRM_MSG_DELPOLICY: xfrm_userpolicy_id, then XFRMA_POLICY."""
    sel = selector("::", "::")
    info = policy_info(sel, xfrm.MIP6_PRIO_HOME_BLOCK, OUT)
    (signal,) = xfrm.decode_xfrm(nlmsg(DELPOLICY, policy_id(sel, OUT) + nla(XFRMA_POLICY, info)))
    assert signal == XfrmSignal("policy", DELPOLICY, "::", "::", 0, OUT, 4)


def test_deleted_policy_without_its_info_keeps_the_selector() -> None:
    (signal,) = xfrm.decode_xfrm(nlmsg(DELPOLICY, policy_id(selector(HOA, HA), OUT)))
    assert signal == XfrmSignal("policy", DELPOLICY, HOA, HA, 0, OUT)


# -- states ---------------------------------------------------------------------------------------


def test_route_optimisation_state_carries_the_new_care_of_address() -> None:
    """xfrm_pre_bu_add_bule → xfrm_state_add(sel, IPPROTO_DSTOPTS, &bule->coa, update)."""
    body = sa_info(HOA, HA, DSTOPTS, MODE_ROUTEOPTIMIZATION) + nla(XFRMA_COADDR, addr(NEW_COA))
    assert xfrm.decode_xfrm(nlmsg(UPDSA, body)) == [
        XfrmSignal("state", UPDSA, HOA, HA, DSTOPTS, coaddr=NEW_COA)
    ]


def test_state_without_care_of_address() -> None:
    (signal,) = xfrm.decode_xfrm(nlmsg(NEWSA, sa_info(NEW_COA, HA, ESP, MODE_TRANSPORT)))
    assert (signal.src, signal.dst, signal.proto, signal.coaddr) == (NEW_COA, HA, ESP, None)


def test_ipv4_state() -> None:
    body = sa_info("192.0.2.1", "198.51.100.1", ESP, MODE_TUNNEL, family=socket.AF_INET)
    body += nla(XFRMA_COADDR, addr("203.0.113.9"))
    (signal,) = xfrm.decode_xfrm(nlmsg(NEWSA, body))
    assert (signal.src, signal.dst, signal.coaddr) == ("192.0.2.1", "198.51.100.1", "203.0.113.9")


def test_deleted_state_carries_its_info_in_an_attribute() -> None:
    """xfrm_notify_sa for XFRM_MSG_DELSA: xfrm_usersa_id, XFRMA_SA, then the other attributes."""
    info = sa_info(HOA, HA, DSTOPTS, MODE_ROUTEOPTIMIZATION)
    body = sa_id(HA, DSTOPTS) + nla(XFRMA_SA, info) + nla(XFRMA_COADDR, addr(OLD_COA))
    assert xfrm.decode_xfrm(nlmsg(DELSA, body)) == [
        XfrmSignal("state", DELSA, HOA, HA, DSTOPTS, coaddr=OLD_COA)
    ]
    assert xfrm.decode_xfrm(nlmsg(DELSA, sa_id(HA, DSTOPTS))) == []  # no info: nothing to say


# -- malformed ------------------------------------------------------------------------------------


def handover_datagram() -> bytes:
    return (
        nlmsg(UPDSA, sa_info(HOA, HA, DSTOPTS, MODE_ROUTEOPTIMIZATION) + nla(XFRMA_COADDR, addr(NEW_COA)))
        + migrate_message(OUT, user_migrate(OLD_COA, HA, NEW_COA, HA))
        + nlmsg(
            NEWPOLICY,
            policy_info(selector(HOA, HA), xfrm.MIP6_PRIO_HOME_DATA_IPSEC, OUT)
            + nla(XFRMA_TMPL, user_tmpl(NEW_COA, HA, ESP, MODE_TUNNEL)),
        )
    )


def test_a_truncated_datagram_keeps_its_whole_messages() -> None:
    data = handover_datagram()
    whole = xfrm.decode_xfrm(data)
    assert [s.kind for s in whole] == ["state", "migrate", "policy"]
    for cut in range(len(data)):
        signals = xfrm.decode_xfrm(data[:cut])
        assert signals == whole[: len(signals)]


def test_a_short_body_is_skipped_and_the_next_message_still_read() -> None:
    data = nlmsg(NEWSA, bytes(100)) + nlmsg(NEWPOLICY, bytes(60)) + nlmsg(MIGRATE, bytes(10))
    data += handover_datagram()
    assert [s.kind for s in xfrm.decode_xfrm(data)] == ["state", "migrate", "policy"]


def test_bad_attributes_are_skipped() -> None:
    info = sa_info(HOA, HA, DSTOPTS, MODE_ROUTEOPTIMIZATION)
    overlong = struct.pack("=HH", 200, XFRMA_COADDR) + addr(NEW_COA)  # claims more than there is
    short_coa = nla(XFRMA_COADDR, addr(NEW_COA)[:8])
    unknown = nla(99, b"whatever")
    assert xfrm.decode_xfrm(nlmsg(UPDSA, info + unknown + overlong)) == [
        XfrmSignal("state", UPDSA, HOA, HA, DSTOPTS)
    ]
    assert xfrm.decode_xfrm(nlmsg(UPDSA, info + short_coa)) == []
    partial = user_migrate(OLD_COA, HA, NEW_COA, HA) + bytes(30)  # a truncated second entry
    (signal,) = xfrm.decode_xfrm(migrate_message(OUT, partial, one_attribute=True))
    assert len(signal.migrations) == 1


def test_other_messages_are_ignored() -> None:
    acquire = nlmsg(0x17, bytes(300))
    error = nlmsg(2, struct.pack("=i", 0) + bytes(16))
    assert xfrm.decode_xfrm(acquire + error) == []


@given(st.binary(max_size=600))
def test_garbage_never_raises(data: bytes) -> None:
    xfrm.decode_xfrm(data)
    xfrm.decode_tunnel_link(data)


@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_corrupted_handover_never_raises(position: int, noise: bytes) -> None:
    data = bytearray(handover_datagram())
    position %= len(data)
    data[position : position + len(noise)] = noise
    xfrm.decode_xfrm(bytes(data))


# -- the ip6tnl tunnel --------------------------------------------------------------------------


def link_message(
    kind: str, name: str, index: int, data: list[tuple[str, object]] | None = None, message: int = RTM_NEWLINK
) -> bytes:
    """An RTM_NEWLINK as the kernel's netdev_state_change() sends it, encoded by pyroute2."""
    msg = ifinfmsg()
    msg["header"]["type"] = message
    msg["index"] = index
    info: list[tuple[str, object]] = [("IFLA_INFO_KIND", kind)]
    if data is not None:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    msg["attrs"] = [("IFLA_IFNAME", name), ("IFLA_MTU", 1452), ("IFLA_LINKINFO", {"attrs": info})]
    msg.encode()
    return bytes(msg.data)


def ip6tnl(local: str, remote: str) -> list[tuple[str, object]]:
    return [
        ("IFLA_IP6TNL_LINK", 0),
        ("IFLA_IP6TNL_LOCAL", local),
        ("IFLA_IP6TNL_REMOTE", remote),
        ("IFLA_IP6TNL_TTL", 64),
        ("IFLA_IP6TNL_PROTO", 41),
    ]


def test_tunnel_moved_to_the_new_care_of_address() -> None:
    data = link_message("ip6tnl", "ip6tnl1", 7, ip6tnl(NEW_COA, HA))
    assert xfrm.decode_tunnel_link(data) == [TunnelEndpoint(7, "ip6tnl1", NEW_COA, HA)]


def test_other_links_are_ignored() -> None:
    data = (
        link_message("veth", "eth0", 2)
        + link_message("ip6tnl", "ip6tnl1", 7, ip6tnl(OLD_COA, HA), message=RTM_DELLINK)
        + link_message("ip6tnl", "ip6tnl2", 8)  # no IFLA_INFO_DATA
        + link_message("ip6tnl", "ip6tnl3", 9, ip6tnl(NEW_COA, HA))
    )
    assert xfrm.decode_tunnel_link(data) == [TunnelEndpoint(9, "ip6tnl3", NEW_COA, HA)]


def test_a_truncated_link_message_is_skipped() -> None:
    data = link_message("ip6tnl", "ip6tnl1", 7, ip6tnl(NEW_COA, HA))
    for cut in range(len(data)):
        assert xfrm.decode_tunnel_link(data[:cut]) == []
    broken = bytearray(data)
    struct.pack_into("=I", broken, 0, len(data) + 64)  # claims more than the datagram holds
    assert xfrm.decode_tunnel_link(bytes(broken)) == []


# -- the real kernel ----------------------------------------------------------------------------


def test_open_socket() -> None:
    sock = xfrm.open_socket()
    try:
        assert (sock.family, sock.type & 0xF, sock.proto) == (socket.AF_NETLINK, socket.SOCK_RAW, 6)
        assert not sock.getblocking()
        assert not os.get_inheritable(sock.fileno())
        with pytest.raises(BlockingIOError):
            sock.recv(65536)
    finally:
        sock.close()


# Runs inside the namespace: subscribe, let `ip xfrm` and a raw MIGRATE request change the kernel,
# print what the decoder saw (one JSON object per signal).
CHILD = """
import dataclasses, json, select, socket, subprocess, sys
from orchestrator_mipv6 import xfrm

steps = json.loads(sys.argv[1])
sock = xfrm.open_socket()
requests = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, xfrm.NETLINK_XFRM)
requests.bind((0, 0))
for step in steps:
    if isinstance(step, list):
        subprocess.run(step, check=True)
    else:
        requests.send(bytes.fromhex(step))
        code = int.from_bytes(requests.recv(65536)[16:20], sys.byteorder, signed=True)
        assert code == 0, f"MIGRATE request failed: errno {-code}"
while select.select([sock], [], [], 0.5)[0]:
    for signal in xfrm.decode_xfrm(sock.recv(65536)):
        print(json.dumps(dataclasses.asdict(signal)))
"""


@pytest.mark.netns
def test_the_kernel_announces_a_policy_and_its_migration() -> None:
    """mn_ipsec_tnl_update's MIGRATE of a tunnel-mode policy (the kernel rewrites only tunnel-mode
    templates: a transport-mode one holds no addresses)."""
    problem = requirements_problem()
    if problem:
        pytest.skip(problem)
    policy = ["src", f"{HOA}/128", "dst", f"{HA}/128", "dir", "out"]
    request = struct.pack("=IHHII", 0, MIGRATE, 0x1 | 0x4, 1, 0)  # NLM_F_REQUEST | NLM_F_ACK
    request += policy_id(selector(HOA, HA), OUT) + nla(
        XFRMA_MIGRATE, user_migrate(OLD_COA, HA, NEW_COA, HA, MODE_TUNNEL)
    )
    request = struct.pack("=I", len(request)) + request[4:]
    steps = [
        [
            "ip",
            "xfrm",
            "policy",
            "add",
            *policy,
            "priority",
            "5",
            "tmpl",
            "src",
            OLD_COA,
            "dst",
            HA,
            "proto",
            "esp",
            "mode",
            "tunnel",
            "reqid",
            "1",
        ],
        request.hex(),
        ["ip", "xfrm", "policy", "delete", *policy],
    ]
    with Lab() as lab:
        node = lab.namespace("xfrm")
        out = node.run(sys.executable, "-c", CHILD, json.dumps(steps)).stdout
    seen = [json.loads(line) for line in out.splitlines()]
    template = {"daddr": HA, "proto": ESP}
    assert seen == [
        {
            "kind": "policy",
            "message": NEWPOLICY,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": 5,
            "templates": [{"saddr": OLD_COA, **template}],
            "migrations": [],
            "coaddr": None,
        },
        {
            "kind": "migrate",
            "message": MIGRATE,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": None,
            "templates": [],
            "coaddr": None,
            "migrations": [dataclasses.asdict(Migration(OLD_COA, HA, NEW_COA, HA, ESP))],
        },
        {
            "kind": "policy",
            "message": DELPOLICY,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": 5,
            "templates": [{"saddr": NEW_COA, **template}],
            "migrations": [],
            "coaddr": None,
        },
    ]
