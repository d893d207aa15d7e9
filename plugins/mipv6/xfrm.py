"""What mip6d changes in the kernel on a handover, decoded from netlink, to confirm it.

With ``UseMnHaIPsec`` the Binding Update and Ack travel ESP-encrypted: the Mobility Header cannot be
read on the wire.  mip6d's kernel changes can: the kernel multicasts each one.  Read in UMIP's
source (mobile node side, a move between foreign links):

``src/mn.c mn_send_home_bu()``, before the Binding Update leaves:

1. ``pre_bu_bul_update()`` = ``xfrm_pre_bu_add_bule()`` (src/xfrm.c): re-adds the block policy
   (``xfrm_block_link``: sub policy, out, any → any, ``MIP6_PRIO_HOME_BLOCK`` 4); with IPsec
   refreshes the HA policies (``_mn_ha_ipsec_pol_mod``: XFRM_MSG_UPDPOLICY, main type, ESP
   templates, ``MIP6_PRIO_HOME_SIG`` 2 for Mobility Headers, ``MIP6_PRIO_HOME_DATA_IPSEC`` 5 for
   the rest); updates the BU policy (sub, out, HoA → HA, proto 135, priority 2, a Destination
   Options template); and writes the route optimisation state with ``xfrm_state_add(sel, IPPROTO_DSTOPTS,
   &bule->coa, …)``: XFRM_MSG_NEWSA / UPDSA, mode ROUTEOPTIMIZATION, saddr HoA, daddr HA and
   **XFRMA_COADDR = the new care-of address** — the most direct sign, IPsec or not.
2. With IPsec and a new CoA, ``mn_ipsec_trns_update()`` and ``mn_ipsec_tnl_update()`` (src/ipsec.c
   ``_mn_trns_update`` / ``_mn_tnl_update`` → ``xfrm_sendmigrate``) send XFRM_MSG_MIGRATE per
   IPsec policy entry and direction: out moves (local old CoA, remote HA) to (new CoA, HA), in moves
   (old CoA, HA) as the SA's destination to the new CoA.  The kernel's ``xfrm_migrate()`` moves the
   SAs and the tunnel-mode templates (a transport-mode template holds no address:
   ``xfrm_policy_migrate``) and announces it on XFRMNLGRP_MIGRATE (net/xfrm/xfrm_user.c
   ``build_migrate``: xfrm_userpolicy_id, XFRMA_POLICY_TYPE, one XFRMA_MIGRATE per entry; needs
   CONFIG_XFRM_MIGRATE).
3. ``tunnel_mod(hai->if_tunnel, &hai->primary_coa.addr, &hai->ha_addr, …)`` (src/tunnelctl.c
   ``__tunnel_mod``): ioctl SIOCCHGTUNNEL on the ip6tnl device; the kernel's ``ip6_tnl_update()``
   (net/ipv6/ip6_tunnel.c) calls ``netdev_state_change()``: an RTM_NEWLINK whose IFLA_LINKINFO has
   kind "ip6tnl" and IFLA_INFO_DATA IFLA_IPTUN_LOCAL = new CoA, IFLA_IPTUN_REMOTE = HA.  A shared
   tunnel, or a failed change, gets a new ip6tnl device (SIOCADDTUNNEL) instead: also RTM_NEWLINK.

After the Binding Ack (``mn_recv_ba`` → ``mn_process_ha_ba`` → ``post_ba_bul_update()`` =
``xfrm_post_ba_mod_bule()``; right after the BU instead with ``OptimisticHandoff``): the block
policy is deleted (XFRM_MSG_DELPOLICY, priority 4) and the home data path is written with
``update`` set, so as XFRM_MSG_UPDPOLICY (sub type): out HoA → HA with a Destination Options
template, in HA → HoA with a type 2 routing header template, both at ``MIP6_PRIO_HOME_DATA`` 6.
Those carry HoA and HA, not the CoA: they say the binding was accepted, the state says where.

Priorities (src/xfrm.h): HOME_ERROR 1, HOME_SIG 2, HOME_SIG_ANY 3, HOME_BLOCK 4 (BYPASS_BU also
4), HOME_DATA_IPSEC 5, HOME_DATA 6.  Policies go to XFRMNLGRP_POLICY (xfrm_userpolicy_info,
XFRMA_TMPL, XFRMA_POLICY_TYPE; a deletion is an xfrm_userpolicy_id with the info in XFRMA_POLICY),
states to XFRMNLGRP_SA (xfrm_usersa_info and XFRMA_COADDR; a deletion is an xfrm_usersa_id with the
info in XFRMA_SA).  Layouts below follow linux/xfrm.h; the structures holding 64-bit counters end
padded to their alignment (8 on 64-bit machines), which is where their attributes start.

Decoders never raise: what is short, truncated or unknown is skipped.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator import wire

NETLINK_XFRM = 6
NETLINK_ADD_MEMBERSHIP = 1
XFRMNLGRP_SA, XFRMNLGRP_POLICY, XFRMNLGRP_MIGRATE = 3, 4, 7
GROUPS = (XFRMNLGRP_SA, XFRMNLGRP_POLICY, XFRMNLGRP_MIGRATE)

XFRM_MSG_NEWSA, XFRM_MSG_DELSA = 0x10, 0x11
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY = 0x13, 0x14
XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDSA = 0x19, 0x1A
XFRM_MSG_MIGRATE = 0x21
XFRMA_TMPL, XFRMA_SA, XFRMA_POLICY, XFRMA_COADDR, XFRMA_MIGRATE = 5, 6, 7, 14, 17
XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_FWD = 0, 1, 2
MIP6_PRIO_HOME_SIG, MIP6_PRIO_HOME_BLOCK, MIP6_PRIO_HOME_DATA_IPSEC, MIP6_PRIO_HOME_DATA = 2, 4, 5, 6

IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_INFO_DATA = 18, 1, 2
IFLA_IPTUN_LOCAL, IFLA_IPTUN_REMOTE = 2, 3

_U64_ALIGN = struct.calcsize("@cQ") - struct.calcsize("@Q")  # 8 on x86_64/arm64, 4 on i386


def _space(layout: struct.Struct, alignment: int = 4) -> int:
    """Where a message's attributes start after ``layout``: its C size, NLMSG-aligned."""
    return wire.align((layout.size + alignment - 1) // alignment * alignment)


# xfrm_selector: daddr, saddr, 4 x port (skipped), family, prefixlen_d, prefixlen_s, proto, ifindex, user
SELECTOR = struct.Struct("=16s16s8xHBBB3xiI")
# xfrm_userpolicy_info: sel, lft + curlft (skipped), priority, index, dir, action, flags, share
POLICY_INFO = struct.Struct(f"={SELECTOR.size}s96xIIBBBB")
# xfrm_userpolicy_id: sel, index, dir
POLICY_ID = struct.Struct(f"={SELECTOR.size}sIB")
# xfrm_usersa_info: sel, id (daddr, spi, proto), saddr, lft + curlft + stats (skipped), seq, reqid,
# family, mode, replay_window, flags
SA_INFO = struct.Struct(f"={SELECTOR.size}s16s4sB3x16s108xIIHBBB")
# xfrm_usersa_id: daddr, spi, family, proto
SA_ID = struct.Struct("=16s4sHB")
# xfrm_user_tmpl: id (daddr, spi, proto), family, saddr, reqid, mode, share, optional, 3 x algos
TMPL = struct.Struct("=16s4sB3xH2x16sIBBBx12x")
# xfrm_user_migrate: old_daddr, old_saddr, new_daddr, new_saddr, proto, mode, reqid, old/new family
MIGRATE = struct.Struct("=16s16s16s16sBBxxIHH")

POLICY_INFO_SPACE = _space(POLICY_INFO, _U64_ALIGN)
SA_INFO_SPACE = _space(SA_INFO, _U64_ALIGN)
POLICY_ID_SPACE = _space(POLICY_ID)
SA_ID_SPACE = _space(SA_ID)

Kind = Literal["migrate", "policy", "state"]


@dataclass(frozen=True, slots=True)
class Template:
    """One XFRMA_TMPL entry: the transform a policy asks for and, in tunnel mode, its endpoints."""

    saddr: str | None
    daddr: str | None
    proto: int  # 50 ESP, 51 AH, 60 Destination Options (Home Address option), 43 routing header


@dataclass(frozen=True, slots=True)
class Migration:
    """One XFRMA_MIGRATE entry, as seen from this node (the policy's direction says which end is
    local: the source going out, the destination coming in or forwarded)."""

    old_local: str | None
    old_remote: str | None
    new_local: str | None
    new_remote: str | None
    proto: int


@dataclass(frozen=True, slots=True)
class XfrmSignal:
    """One xfrm change.  ``message`` is the XFRM_MSG_* type (new, update and delete told apart).

    policy and migrate: ``src``/``dst`` are the selector's, ``proto`` its upper layer (135 = Mobility
    Header, 0 = any), ``direction`` XFRM_POLICY_*; state: ``src``/``dst`` are the SA's endpoints,
    ``proto`` its transform, ``coaddr`` its XFRMA_COADDR (the care-of address of a Mobile IPv6 state).
    """

    kind: Kind
    message: int
    src: str | None
    dst: str | None
    proto: int
    direction: int | None = None
    priority: int | None = None
    templates: tuple[Template, ...] = ()
    migrations: tuple[Migration, ...] = ()
    coaddr: str | None = None


@dataclass(frozen=True, slots=True)
class TunnelEndpoint:
    """An ip6tnl device's endpoints from RTM_NEWLINK: mip6d's tunnel to the home agent."""

    ifindex: int
    name: str
    local: str
    remote: str


def open_socket() -> socket.socket:
    """A non-blocking NETLINK_XFRM socket subscribed to SA, policy and migrate notifications.

    Open it before the move: mip6d writes the new state about a millisecond after the new address.
    """
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, NETLINK_XFRM
    )
    try:
        sock.bind((0, 0))
        for group in GROUPS:
            sock.setsockopt(wire.SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    except OSError:
        sock.close()
        raise
    return sock


def decode_xfrm(data: bytes) -> list[XfrmSignal]:
    """The SA, policy and migrate notifications in one datagram from ``open_socket()``."""
    view = memoryview(data)
    signals = []
    for kind, offset, length in wire.messages(view, len(view)):
        decoder = _DECODERS.get(kind)
        if decoder is None:
            continue
        try:
            signal = decoder(kind, view[offset + 16 : offset + length])
        except (struct.error, ValueError):  # short structure, address of the wrong size
            continue
        if signal is not None:
            signals.append(signal)
    return signals


def decode_tunnel_link(data: bytes) -> list[TunnelEndpoint]:
    """The ip6tnl devices announced in one rtnetlink datagram (RTM_NEWLINK); others are skipped."""
    view = memoryview(data)
    endpoints = []
    for kind, offset, length in wire.messages(view, len(view)):
        if kind != wire.RTM_NEWLINK:
            continue
        try:
            endpoint = _tunnel(view[offset + 16 : offset + length])
        except (struct.error, ValueError, UnicodeDecodeError):
            continue
        if endpoint is not None:
            endpoints.append(endpoint)
    return endpoints


def _policy(message: int, body: memoryview) -> XfrmSignal | None:
    if message == XFRM_MSG_DELPOLICY:
        attrs = _attributes(body, POLICY_ID_SPACE)
        info = _first(attrs, XFRMA_POLICY)
        if info is None:  # deleted by index: only the id is known
            selector, _index, direction = POLICY_ID.unpack_from(body)
            src, dst, proto, _family = _selector(selector)
            return XfrmSignal("policy", message, src, dst, proto, direction)
    else:
        attrs = _attributes(body, POLICY_INFO_SPACE)
        info = body
    selector, priority, _index, direction, _action, _flags, _share = POLICY_INFO.unpack_from(info)
    src, dst, proto, family = _selector(selector)
    templates = tuple(
        _template(t, family) for raw in _all(attrs, XFRMA_TMPL) for t in TMPL.iter_unpack(_whole(raw, TMPL))
    )
    return XfrmSignal("policy", message, src, dst, proto, direction, priority, templates)


def _state(message: int, body: memoryview) -> XfrmSignal | None:
    if message == XFRM_MSG_DELSA:
        attrs = _attributes(body, SA_ID_SPACE)
        info = _first(attrs, XFRMA_SA)
        if info is None:
            return None
    else:
        attrs = _attributes(body, SA_INFO_SPACE)
        info = body
    _sel, daddr, _spi, proto, saddr, _seq, _reqid, family, _mode, _window, _flags = SA_INFO.unpack_from(info)
    coaddr = _first(attrs, XFRMA_COADDR)
    return XfrmSignal(
        "state",
        message,
        _address(family, saddr),
        _address(family, daddr),
        proto,
        coaddr=None if coaddr is None else _address(family, bytes(coaddr)),
    )


def _migrate(message: int, body: memoryview) -> XfrmSignal | None:
    selector, _index, direction = POLICY_ID.unpack_from(body)
    src, dst, proto, _family = _selector(selector)
    migrations = tuple(
        _migration(m, direction)
        for raw in _all(_attributes(body, POLICY_ID_SPACE), XFRMA_MIGRATE)
        for m in MIGRATE.iter_unpack(_whole(raw, MIGRATE))
    )
    return XfrmSignal("migrate", message, src, dst, proto, direction, migrations=migrations)


_DECODERS = {
    XFRM_MSG_NEWPOLICY: _policy,
    XFRM_MSG_UPDPOLICY: _policy,
    XFRM_MSG_DELPOLICY: _policy,
    XFRM_MSG_NEWSA: _state,
    XFRM_MSG_UPDSA: _state,
    XFRM_MSG_DELSA: _state,
    XFRM_MSG_MIGRATE: _migrate,
}


def _selector(raw: bytes) -> tuple[str | None, str | None, int, int]:
    """(source, destination, upper-layer protocol, family) of an xfrm_selector."""
    daddr, saddr, family, _dlen, _slen, proto, _ifindex, _user = SELECTOR.unpack(raw)
    return _address(family, saddr), _address(family, daddr), proto, family


def _template(fields: tuple[Any, ...], policy_family: int) -> Template:
    daddr, _spi, proto, family, saddr, _reqid, _mode, _share, _optional = fields
    family = family or policy_family  # the kernel fills it in, but a template may leave it 0
    return Template(_address(family, saddr), _address(family, daddr), proto)


def _migration(fields: tuple[Any, ...], direction: int) -> Migration:
    old_daddr, old_saddr, new_daddr, new_saddr, proto, _mode, _reqid, old_family, new_family = fields
    old = (_address(old_family, old_saddr), _address(old_family, old_daddr))
    new = (_address(new_family, new_saddr), _address(new_family, new_daddr))
    if direction != XFRM_POLICY_OUT:  # coming in or forwarded: this node is the destination
        old, new = old[::-1], new[::-1]
    return Migration(old[0], old[1], new[0], new[1], proto)


def _address(family: int, raw: bytes) -> str | None:
    """An xfrm_address_t (16 bytes, IPv4 in the first 4) as text; None for an unknown family."""
    if len(raw) != 16:
        raise ValueError("not an xfrm_address_t")
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return None


def _tunnel(body: memoryview) -> TunnelEndpoint | None:
    _family, _type, index, _flags, _change = wire.IFINFOMSG.unpack_from(body)
    attrs = wire.attributes(body, wire.IFINFOMSG.size, len(body))
    linkinfo, name = attrs.get(IFLA_LINKINFO), attrs.get(wire.IFLA_IFNAME)
    if linkinfo is None or name is None:
        return None
    info = wire.attributes(linkinfo, 0, len(linkinfo))
    kind, data = info.get(IFLA_INFO_KIND), info.get(IFLA_INFO_DATA)
    if kind is None or bytes(kind).rstrip(b"\0") != b"ip6tnl" or data is None:
        return None
    tunnel = wire.attributes(data, 0, len(data))
    local = wire.ip_text(socket.AF_INET6, tunnel.get(IFLA_IPTUN_LOCAL))
    remote = wire.ip_text(socket.AF_INET6, tunnel.get(IFLA_IPTUN_REMOTE))
    if local is None or remote is None:
        return None
    return TunnelEndpoint(index, bytes(name).rstrip(b"\0").decode(), local, remote)


def _attributes(body: memoryview, start: int) -> list[tuple[int, memoryview]]:
    """Every attribute from ``start`` to the end of ``body``, in order, repeats kept (one
    XFRMA_MIGRATE per entry); the walk stops at the first one that does not fit."""
    found = []
    offset = start
    while offset + 4 <= len(body):
        length, kind = wire.RTATTR.unpack_from(body, offset)
        if length < 4 or offset + length > len(body):
            break
        found.append((kind & 0x3FFF, body[offset + 4 : offset + length]))
        offset += wire.align(length)
    return found


def _all(attrs: list[tuple[int, memoryview]], kind: int) -> Iterator[memoryview]:
    return (value for k, value in attrs if k == kind)


def _first(attrs: list[tuple[int, memoryview]], kind: int) -> memoryview | None:
    return next(_all(attrs, kind), None)


def _whole(raw: memoryview, layout: struct.Struct) -> memoryview:
    """The whole entries of an array attribute (a truncated last entry is dropped)."""
    return raw[: len(raw) - len(raw) % layout.size]
