"""XFRM netlink messages as the kernel sends them to mip6d's watchers, built field by field.

Built from linux/xfrm.h independently of the decoder's own layouts (``orchestrator_mipv6.xfrm``),
so a test compares two readings of the header, not one with itself.  The layouts are those of a
64-bit machine (sizes as ``sizeof()`` on x86_64): tests skip elsewhere (``LAYOUTS_MATCH``).
"""

from __future__ import annotations

import socket
import struct

from orchestrator_mipv6 import xfrm

#: Whether this machine has the layouts the messages are built with.
LAYOUTS_MATCH = struct.calcsize("P") == 8

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
