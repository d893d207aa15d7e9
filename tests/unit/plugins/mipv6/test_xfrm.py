"""Decoding what mip6d changes in the kernel on a handover (xfrm and the ip6tnl tunnel).

The xfrm messages are built field by field from linux/xfrm.h by ``orchestrator_testkit.xfrm_messages``,
independently of the decoder's own layouts; the link message by pyroute2's encoder.
tests/kernel/test_mipv6_xfrm.py has the real kernel announce a policy and a migration.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from orchestrator_mipv6 import xfrm
from orchestrator_mipv6.xfrm import Migration, Template, TunnelEndpoint, XfrmSignal
from orchestrator_testkit.xfrm_messages import (
    DELPOLICY,
    DELSA,
    DSTOPTS,
    ESP,
    FWD,
    HA,
    HOA,
    IN,
    LAYOUTS_MATCH,
    MH,
    MIGRATE,
    MODE_ROUTEOPTIMIZATION,
    MODE_TRANSPORT,
    MODE_TUNNEL,
    NEW_COA,
    NEWPOLICY,
    NEWSA,
    OLD_COA,
    OUT,
    UPDPOLICY,
    UPDSA,
    XFRMA_COADDR,
    XFRMA_POLICY,
    XFRMA_SA,
    XFRMA_TMPL,
    addr,
    migrate_message,
    nla,
    nlmsg,
    policy_id,
    policy_info,
    policy_type,
    sa_id,
    sa_info,
    selector,
    user_migrate,
    user_tmpl,
)
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

if not LAYOUTS_MATCH:
    pytest.skip("the synthesized messages have a 64-bit machine's layouts", allow_module_level=True)

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


@pytest.mark.skipif(os.geteuid() != 0, reason="needs CAP_NET_ADMIN to subscribe to xfrm changes")
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


