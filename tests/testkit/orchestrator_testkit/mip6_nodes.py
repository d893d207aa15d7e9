"""Mobile IPv6 stand-ins, run as lab processes: a home agent (``ha``) and a mobile node (``mn``).

Why: UMIP (``mip6d``) cannot run on this kernel (no ``CONFIG_IPV6_MIP6``) and is not packaged, yet
the ``mipv6`` plugin must be tested against what a mobility daemon really puts on the wire after a
Teredo re-qualification.  These two processes play both ends with real packets through the real
Teredo path of :class:`mip6_lab.MipLab`, and log every decision and message as one JSON line with
``time.time()`` (read by :mod:`mip6_standins`).  Nothing here is product code.

Wire format (RFC 6275), built and parsed by hand with ``struct`` (a few µs; scapy 2.8 takes ~1 ms
per packet and ~0.6 s to import, which would be the stand-ins' delay, not the path's);
tests/unit/testkit/test_mip6_nodes.py checks both directions against scapy byte for byte.  The Mobility Header
checksum covers the pseudo-header with the home address as the source of a BU and as the final
destination of a BA, and is verified on receipt (``checksum_ok``)::

    BU  IPv6 src=CoA dst=HA nh=60 | Destination Options: PadN(2), Home Address option (type 201,
        len 16) = HoA, nh=135 | MH type 5, len 1 (16 octets): seq, flags A|H (0xc000), lifetime in
        4 s units, PadN(2)                                               80 octets on the wire
    BA  IPv6 src=HA dst=CoA nh=43 | Routing header type 2, segleft 1, address = HoA, nh=135 |
        MH type 6, len 1: status, flags 0, seq (the BU's), lifetime in 4 s units, PadN(2)   80 octets

Sending and receiving, on a kernel without MIPv6 (FIELD-NOTES): the receiving kernel drops a BU
with a Home Address option and a BA with a type-2 routing header (ICMPv6 parameter problem).  So
both sides receive through an AF_PACKET socket (``SOCK_DGRAM``, ETH_P_IPV6, bound to no interface:
miredo re-creates its tun with a new index on every SIGHUP) and send fully built packets, so that
the bytes on the wire are exactly the ones above (an ``IPPROTO_MH`` raw socket does accept a Home
Address option as a sticky ``IPV6_DSTOPTS`` here, but the kernel would compute the MH checksum over
the IPv6 source, the CoA, where RFC 6275 wants the home address): the home agent through a raw
``IPPROTO_RAW`` socket (header included; the kernel routes it, 2001::/32 to the relay); the mobile
node on a link without link-layer addresses (a tun such as ``teredo``) through the AF_PACKET
socket straight onto the interface — no route needed, as UMIP needs no router on a tunnel — and on
an Ethernet-like link through an ``IPPROTO_RAW`` socket bound to the interface (the kernel picks
that interface's route and resolves the next hop).

The mobile node follows UMIP's rules (``mn_make_ho_verdict`` / ``mn_get_iface`` / ``mn_get_coa``,
see FIELD-NOTES "UMIP (mip6d), from its source"):

* interfaces come from ``--interface NAME:PREF[:tunnel]`` (``MnIfPreference``: lower is preferred;
  ``tunnel``: ``Tunnel enabled``, configured externally, needs no router); other interfaces are
  ignored;
* a usable CoA is a global address on such an interface that is not tentative, not DAD-failed,
  not deprecated, and not the home address; an interface without ``tunnel`` also needs a default
  router (stand-in for UMIP's router list from RAs: an IPv6 ``default via GW dev IF`` route);
* on every change: the usable interface with the lowest preference (a tie keeps the current one),
  on it the current CoA if still usable, else the newest usable address.  The same interface and
  CoA as now: verdict "ignore" (logged as ``ignored``) — a new Teredo address beside a still
  valid old one moves nothing; another: ``coa-selected`` and a BU at once; none: ``coa-lost``;
* a BU is retransmitted, each time with the next sequence number (UMIP does the same), after
  1.5 s (``InitialBindackTimeoutFirstReg``, home registration) doubling to 32 s
  (``MAX_BINDACK_TIMEOUT``), until a BA whose sequence number matches the last BU; an accepting BA
  (status < 128) schedules a refresh from the current CoA at 3/4 of the granted lifetime; a
  rejecting one (>= 128) ends the attempts until the CoA changes.

Events (one JSON object per line, ``{"time": ..., "event": ..., ...}``)::

    both   ready            (role, pid, ...)
    ha     bu-received      src (the CoA), dst, hoa, seq, flags, lifetime, checksum_ok, interface
           ba-sent          dst, hoa, status, seq, lifetime      | ba-send-failed  ..., error
    mn     coa-selected     address, interface, previous, trigger
           coa-lost         previous, trigger
           ignored          coa, interface, trigger
           bu-sent          coa, interface, via ("packet" | "raw"), seq, attempt, timeout, lifetime,
                            refresh                             | bu-send-failed  ..., error
           ba-received      status, seq, coa (its destination), src, hoa, lifetime, matched,
                            checksum_ok, interface

``trigger`` is ``{"kind": "start" | "new-address" | "del-address" | "new-router" | "del-router" |
"new-link" | "del-link", "interface": ..., ...}``.

Usage::

    mip6_nodes ha --log FILE --address HA [--status N | --silent] [--max-lifetime S]
    mip6_nodes mn --log FILE --home-address HOA --home-agent HA
                       --interface NAME:PREF[:tunnel] [--interface ...] [--lifetime S] [--seq N]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

# --------------------------------------------------------------------------------------------------
# protocol constants
# --------------------------------------------------------------------------------------------------
IPPROTO_MH = 135
IPPROTO_HOPOPTS = 0
IPPROTO_ROUTING = 43
IPPROTO_DSTOPTS = 60
MH_BU = 5
MH_BA = 6
BU_FLAG_A = 0x8000               # acknowledge
BU_FLAG_H = 0x4000               # home registration
HAO_TYPE = 201
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
BA_ACCEPTED = 0
BA_ADMINISTRATIVELY_PROHIBITED = 129
BA_REJECTED_FROM = 128           # status >= 128: the binding was not created
LIFETIME_UNIT = 4                # seconds per unit of the MH lifetime fields
INITIAL_BINDACK_TIMEOUT_FIRST_REG = 1.5
MAX_BINDACK_TIMEOUT = 32.0
REFRESH_FRACTION = 0.75          # refresh at this part of the granted lifetime
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
RT_TABLE_MAIN = 254
RTN_UNICAST = 1


# --------------------------------------------------------------------------------------------------
# wire format
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BindingUpdate:
    """A Binding Update as received: ``src`` is the CoA, ``hoa`` the Home Address option."""

    src: str
    dst: str
    hoa: str
    seq: int
    flags: str
    lifetime: int
    checksum_ok: bool


@dataclass(frozen=True)
class BindingAck:
    """A Binding Acknowledgement as received: ``dst`` is the CoA, ``hoa`` the type-2 routing
    header's address (None without one)."""

    src: str
    dst: str
    hoa: str | None
    status: int
    seq: int
    lifetime: int
    checksum_ok: bool


_PADN2 = bytes((1, 2, 0, 0))  # a PadN option of 4 octets: aligns the HAO, pads the MH to 16


def _ipv6_header(src: str, dst: str, nh: int, payload_len: int) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, payload_len, nh, 64)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst))


def _with_checksum(mh: bytearray, src: str, dst: str) -> bytes:
    mh[4:6] = struct.pack("!H", mh_checksum(src, dst, bytes(mh)))
    return bytes(mh)


def build_bu(coa: str, home_agent: str, home_address: str, seq: int, lifetime: int) -> bytes:
    """An RFC 6275 home registration: IPv6 (CoA -> HA) / Destination Options with the Home
    Address option / Mobility Header type 5, flags A and H, ``lifetime`` seconds (rounded down to
    4 s units).  Built by hand (a few µs; scapy takes ~1 ms), byte-for-byte what scapy builds
    (checked in tests/unit/testkit/test_mip6_nodes.py)."""
    hoa = socket.inet_pton(socket.AF_INET6, home_address)
    dest = bytes((IPPROTO_MH, 2)) + _PADN2 + bytes((HAO_TYPE, 16)) + hoa
    mh = bytearray(struct.pack("!BBBBHHHH", 59, 1, MH_BU, 0, 0, seq & 0xFFFF, BU_FLAG_A | BU_FLAG_H,
                               min(lifetime // LIFETIME_UNIT, 0xFFFF)) + _PADN2)
    body = dest + _with_checksum(mh, home_address, home_agent)
    return _ipv6_header(coa, home_agent, IPPROTO_DSTOPTS, len(body)) + body


def build_ba(home_agent: str, coa: str, home_address: str, status: int, seq: int, lifetime: int) -> bytes:
    """The home agent's answer: IPv6 (HA -> CoA) / type-2 routing header carrying the home address
    (segments left 1) / Mobility Header type 6 with ``status``, flags clear, the BU's ``seq``."""
    hoa = socket.inet_pton(socket.AF_INET6, home_address)
    routing = bytes((IPPROTO_MH, 2, 2, 1, 0, 0, 0, 0)) + hoa
    mh = bytearray(struct.pack("!BBBBHBBHH", 59, 1, MH_BA, 0, 0, status, 0, seq & 0xFFFF,
                               min(lifetime // LIFETIME_UNIT, 0xFFFF)) + _PADN2)
    body = routing + _with_checksum(mh, home_agent, home_address)
    return _ipv6_header(home_agent, coa, IPPROTO_ROUTING, len(body)) + body


def _headers(data: bytes) -> list[tuple[int, int]]:
    """(next-header value, offset) of each header after the fixed IPv6 header, walking hop-by-hop,
    routing and destination options headers; [] for anything that is not IPv6."""
    if len(data) < 40 or data[0] >> 4 != 6:
        return []
    out, nh, off = [], data[6], 40
    while off < len(data):
        out.append((nh, off))
        if nh not in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS) or off + 2 > len(data):
            break
        nh, off = data[off], off + (data[off + 1] + 1) * 8
    return out


def mobility_header(data: bytes) -> tuple[int, int] | None:
    """(offset of the Mobility Header, its MH type) in an IPv6 packet, or None.  Cheap: run on
    every packet seen."""
    found = next((off for nh, off in _headers(data) if nh == IPPROTO_MH), None)
    if found is None or found + 12 > len(data) or found + (data[found + 1] + 1) * 8 > len(data):
        return None
    return found, data[found + 2]


def _home_address_option(data: bytes) -> str | None:
    """The Home Address option of the packet's Destination Options header, or None."""
    for nh, off in _headers(data):
        if nh != IPPROTO_DSTOPTS:
            continue
        pos, end = off + 2, min(off + (data[off + 1] + 1) * 8, len(data))
        while pos < end:
            kind = data[pos]
            if kind == 0:  # Pad1
                pos += 1
                continue
            if pos + 2 > end:
                break
            size = data[pos + 1]
            if kind == HAO_TYPE and size == 16 and pos + 18 <= end:
                return socket.inet_ntop(socket.AF_INET6, data[pos + 2:pos + 18])
            pos += 2 + size
    return None


def _type2_routing(data: bytes) -> tuple[str, int] | None:
    """(home address, segments left) of the packet's type-2 routing header, or None."""
    for nh, off in _headers(data):
        if nh == IPPROTO_ROUTING and off + 24 <= len(data) and data[off + 2] == 2 and data[off + 1] == 2:
            return socket.inet_ntop(socket.AF_INET6, data[off + 8:off + 24]), data[off + 3]
    return None


def mh_checksum(src: str, dst: str, mh: bytes) -> int:
    """Internet checksum of an MH over the RFC 2460 pseudo-header (next header 135): the value to
    put in the zeroed checksum field, and 0 when the field inside ``mh`` is already right."""
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!I3xB", len(mh), IPPROTO_MH))
    blob = pseudo + mh + (b"\0" if len(mh) % 2 else b"")
    total: int = sum(struct.unpack(f"!{len(blob) // 2}H", blob))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _flags(bits: int, names: str, width: int) -> str:
    """Flag letters set in ``bits``, ``names`` from the most significant of ``width`` bits."""
    return "".join(n for i, n in enumerate(names) if bits & (1 << (width - 1 - i)))


def _addresses(data: bytes) -> tuple[str, str]:
    return socket.inet_ntop(socket.AF_INET6, data[8:24]), socket.inet_ntop(socket.AF_INET6, data[24:40])


def parse_bu(data: bytes) -> BindingUpdate | None:
    """A Binding Update with a Home Address option, or None for anything else."""
    found = mobility_header(data)
    hoa = _home_address_option(data) if found is not None and found[1] == MH_BU else None
    if found is None or hoa is None:
        return None
    off = found[0]
    src, dst = _addresses(data)
    seq, flags, units = struct.unpack("!HHH", data[off + 6:off + 12])
    mh = data[off:off + (data[off + 1] + 1) * 8]
    return BindingUpdate(src=src, dst=dst, hoa=hoa, seq=seq, flags=_flags(flags >> 9, "AHLKMRP", 7),
                         lifetime=units * LIFETIME_UNIT, checksum_ok=mh_checksum(hoa, dst, mh) == 0)


def parse_ba(data: bytes) -> BindingAck | None:
    """A Binding Acknowledgement, or None for anything else."""
    found = mobility_header(data)
    if found is None or found[1] != MH_BA:
        return None
    off = found[0]
    src, dst = _addresses(data)
    status, seq, units = data[off + 6], *struct.unpack("!HH", data[off + 8:off + 12])
    routing = _type2_routing(data)
    final = routing[0] if routing is not None and routing[1] else dst
    mh = data[off:off + (data[off + 1] + 1) * 8]
    return BindingAck(src=src, dst=dst, hoa=routing[0] if routing is not None else None, status=status,
                      seq=seq, lifetime=units * LIFETIME_UNIT, checksum_ok=mh_checksum(src, final, mh) == 0)


# --------------------------------------------------------------------------------------------------
# UMIP's choice of a care-of address
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterfaceConf:
    """``--interface NAME:PREF[:tunnel]``: mip6d.conf's ``Interface`` with ``MnIfPreference`` and
    ``Tunnel enabled``."""

    name: str
    preference: int
    tunnel: bool

    @classmethod
    def parse(cls, text: str) -> InterfaceConf:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0] or (len(parts) == 3 and parts[2] != "tunnel"):
            raise ValueError(f"interface {text!r}: use NAME:PREF or NAME:PREF:tunnel")
        return cls(parts[0], int(parts[1]), len(parts) == 3)


@dataclass(frozen=True)
class Candidate:
    """One configured interface as the kernel shows it now: its usable CoAs, newest first, and
    whether it has a default router."""

    name: str
    preference: int
    tunnel: bool
    coas: tuple[str, ...]
    has_router: bool

    @property
    def verified(self) -> bool:
        """UMIP's ``mn_verify_iface``: a CoA, and a default router unless it is a tunnel."""
        return bool(self.coas) and (self.tunnel or self.has_router)


def choose_coa(candidates: Iterable[Candidate], current: tuple[str, str] | None) -> tuple[str, str] | None:
    """(interface, CoA) UMIP would use now, given the current (interface, CoA) or None.

    ``mn_get_iface``: the verified interface with the lowest preference, a tie kept on the current
    interface; ``mn_get_coa``: on it the current CoA if still usable, else the newest usable one."""
    best: Candidate | None = None
    for c in candidates:
        if not c.verified:
            continue
        if best is None or c.preference < best.preference or (
                c.preference == best.preference and current is not None and c.name == current[0]):
            best = c
    if best is None:
        return None
    if current is not None and current[0] == best.name and current[1] in best.coas:
        return current
    return best.name, best.coas[0]


# --------------------------------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------------------------------
class EventLog:
    """JSON lines, one per event, flushed at once (the test reads the file while we run)."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def write(self, event: str, **fields: Any) -> None:
        self.file.write(json.dumps({"time": time.time(), "event": event, **fields}) + "\n")
        self.file.flush()


def _packet_socket() -> socket.socket:
    """AF_PACKET, cooked (no link-layer header), IPv6 only, every interface of the namespace."""
    return socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))


def _raw_send(data: bytes, dst: str, device: str | None = None) -> None:
    """Send a complete IPv6 packet (IPPROTO_RAW: header included), routed by the kernel, optionally
    only through ``device``."""
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
        if device is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        s.sendto(data, (dst, 0))


# --------------------------------------------------------------------------------------------------
# the home agent
# --------------------------------------------------------------------------------------------------
def run_home_agent(log: EventLog, address: str, status: int | None, max_lifetime: int) -> None:
    """Answer every Binding Update for ``address`` with ``status`` (None: never answer)."""
    rx = _packet_socket()
    log.write("ready", role="ha", pid=os.getpid(), address=address, status=status, max_lifetime=max_lifetime)
    while True:
        data, addr = rx.recvfrom(65535)
        if addr[2] == PACKET_OUTGOING:
            continue
        bu = parse_bu(data)
        if bu is None or bu.dst != address:
            continue
        log.write("bu-received", interface=addr[0], **asdict(bu))
        if status is None or "A" not in bu.flags:
            continue
        lifetime = min(bu.lifetime, max_lifetime) if status < BA_REJECTED_FROM else 0
        fields = {"dst": bu.src, "hoa": bu.hoa, "status": status, "seq": bu.seq, "lifetime": lifetime}
        try:
            _raw_send(build_ba(address, bu.src, bu.hoa, status, bu.seq, lifetime), bu.src)
        except OSError as e:
            log.write("ba-send-failed", error=str(e), **fields)
            continue
        log.write("ba-sent", **fields)


# --------------------------------------------------------------------------------------------------
# the mobile node
# --------------------------------------------------------------------------------------------------
@dataclass
class Link:
    name: str
    kind: int  # ARPHRD_*


@dataclass
class NodeView:
    """What rtnetlink said: links, global IPv6 addresses (with flags, in order of appearance) and
    IPv6 default routers per interface index."""

    links: dict[int, Link] = field(default_factory=dict)
    addrs: dict[tuple[int, str], int] = field(default_factory=dict)  # -> flags; dict order = age
    routers: dict[int, set[str]] = field(default_factory=dict)

    def index(self, name: str) -> int | None:
        return next((i for i, link in self.links.items() if link.name == name), None)

    def usable(self, ifindex: int, home_address: str) -> list[str]:
        """Usable CoAs on ``ifindex``, newest first."""
        bad = IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED
        found = [a for (i, a), flags in self.addrs.items() if i == ifindex and not flags & bad
                 and a != home_address]
        return found[::-1]


class MobileNode:
    """The mobile node stand-in (see the module docstring)."""

    def __init__(self, log: EventLog, interfaces: Sequence[InterfaceConf], home_address: str,
                 home_agent: str, lifetime: int, seq: int) -> None:
        self.log = log
        self.confs = {c.name: c for c in interfaces}
        self.home_address = str(ipaddress.IPv6Address(home_address))
        self.home_agent = str(ipaddress.IPv6Address(home_agent))
        self.lifetime = lifetime
        self.seq = seq & 0xFFFF
        self.view = NodeView()
        self.current: tuple[str, str] | None = None
        self.pending: int | None = None  # seq of the BU waiting for its BA
        self.timeout = INITIAL_BINDACK_TIMEOUT_FIRST_REG
        self.attempt = 0
        self.refresh = False
        self.timer: asyncio.TimerHandle | None = None
        self.pkt = _packet_socket()
        self.pkt.setblocking(False)

    # -- rtnetlink ----------------------------------------------------------------------------------
    def apply(self, msg: Any) -> dict[str, Any] | None:
        """Fold one rtnetlink message into the view; the trigger to evaluate, or None when it
        concerns nothing UMIP would look at (another interface, a link-local address...)."""
        event = msg["event"]
        index = int(msg.get("index", 0) or 0)
        if event in ("RTM_NEWLINK", "RTM_DELLINK"):
            name = msg.get_attr("IFLA_IFNAME")
            if event == "RTM_DELLINK":
                self.view.links.pop(index, None)
                self.view.addrs = {k: v for k, v in self.view.addrs.items() if k[0] != index}
                self.view.routers.pop(index, None)
            else:
                known = self.view.links.get(index)
                self.view.links[index] = Link(name, int(msg.get("ifi_type", 0)))
                if known is not None:
                    return None
            return {"kind": "new-link" if event == "RTM_NEWLINK" else "del-link", "interface": name} \
                if name in self.confs else None
        if event in ("RTM_NEWADDR", "RTM_DELADDR"):
            if msg.get("family") != socket.AF_INET6 or msg.get("scope") != RT_SCOPE_UNIVERSE:
                return None
            address = str(ipaddress.IPv6Address(msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")))
            flags = msg.get_attr("IFA_FLAGS")
            flags = int(msg.get("flags", 0) if flags is None else flags)
            if event == "RTM_NEWADDR":
                self.view.addrs[(index, address)] = flags
            else:
                self.view.addrs.pop((index, address), None)
            link = self.view.links.get(index)
            if link is None or link.name not in self.confs:
                return None
            return {"kind": "new-address" if event == "RTM_NEWADDR" else "del-address",
                    "interface": link.name, "address": address,
                    "tentative": bool(flags & IFA_F_TENTATIVE)}
        if event in ("RTM_NEWROUTE", "RTM_DELROUTE"):
            table = msg.get_attr("RTA_TABLE") or msg.get("table")
            gateway, oif = msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF")
            if (msg.get("family") != socket.AF_INET6 or msg.get("dst_len") != 0 or table != RT_TABLE_MAIN
                    or msg.get("type") != RTN_UNICAST or gateway is None or oif is None):
                return None
            routers = self.view.routers.setdefault(int(oif), set())
            if event == "RTM_NEWROUTE":
                routers.add(gateway)
            else:
                routers.discard(gateway)
            link = self.view.links.get(int(oif))
            if link is None or link.name not in self.confs or self.confs[link.name].tunnel:
                return None
            return {"kind": "new-router" if event == "RTM_NEWROUTE" else "del-router",
                    "interface": link.name, "router": gateway}
        return None

    def candidates(self) -> list[Candidate]:
        out = []
        for conf in self.confs.values():
            index = self.view.index(conf.name)
            if index is None:
                continue
            out.append(Candidate(conf.name, conf.preference, conf.tunnel,
                                 tuple(self.view.usable(index, self.home_address)),
                                 bool(self.view.routers.get(index))))
        return out

    def evaluate(self, trigger: dict[str, Any]) -> None:
        """UMIP's handover verdict after ``trigger``: ignore, proceed (BU now) or invalidate."""
        choice = choose_coa(self.candidates(), self.current)
        if choice == self.current:
            if choice is not None:
                self.log.write("ignored", coa=choice[1], interface=choice[0], trigger=trigger)
            return
        previous = self.current[1] if self.current is not None else None
        self.current = choice
        self._cancel()
        if choice is None:
            self.log.write("coa-lost", previous=previous, trigger=trigger)
            return
        self.log.write("coa-selected", interface=choice[0], address=choice[1], previous=previous,
                       trigger=trigger)
        self.register(refresh=False)

    # -- binding updates --------------------------------------------------------------------------
    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending = None

    def register(self, refresh: bool) -> None:
        """A new home registration from the current CoA: first BU now, 1.5 s to the first
        retransmission."""
        self._cancel()
        self.attempt, self.timeout, self.refresh = 0, INITIAL_BINDACK_TIMEOUT_FIRST_REG, refresh
        self._send()

    def _retransmit(self) -> None:
        self.attempt += 1
        self.timeout = min(self.timeout * 2, MAX_BINDACK_TIMEOUT)
        self._send()

    def _send(self) -> None:
        if self.current is None:
            return
        ifname, coa = self.current
        self.seq = (self.seq + 1) & 0xFFFF
        self.pending = self.seq
        data = build_bu(coa, self.home_agent, self.home_address, self.seq, self.lifetime)
        index = self.view.index(ifname)
        link = self.view.links.get(index) if index is not None else None
        via = "raw" if link is not None and link.kind == ARPHRD_ETHER else "packet"
        fields = {"coa": coa, "interface": ifname, "via": via, "seq": self.seq, "attempt": self.attempt,
                  "timeout": self.timeout, "lifetime": self.lifetime, "refresh": self.refresh}
        try:
            if via == "raw":
                _raw_send(data, self.home_agent, ifname)
            else:
                self.pkt.sendto(data, (ifname, ETH_P_IPV6))
        except OSError as e:
            self.log.write("bu-send-failed", error=str(e), **fields)
        else:
            self.log.write("bu-sent", **fields)
        self.timer = asyncio.get_running_loop().call_later(self.timeout, self._retransmit)

    def on_packet(self) -> None:
        """Readable AF_PACKET socket: look for Binding Acknowledgements from the home agent."""
        while True:
            try:
                data, addr = self.pkt.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            ba = parse_ba(data)
            if ba is None or ba.src != self.home_agent or ba.hoa not in (None, self.home_address):
                continue
            matched = self.pending is not None and ba.seq == self.pending
            self.log.write("ba-received", interface=addr[0], matched=matched, coa=ba.dst,
                           **{k: v for k, v in asdict(ba).items() if k != "dst"})
            if not matched:
                continue
            self._cancel()
            if ba.status < BA_REJECTED_FROM and ba.lifetime > 0:
                self.timer = asyncio.get_running_loop().call_later(
                    ba.lifetime * REFRESH_FRACTION, self.register, True)

    # -- main loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK

        loop = asyncio.get_running_loop()
        loop.add_reader(self.pkt.fileno(), self.on_packet)
        ipr = AsyncIPRoute()
        # bind first, then dump: a change during the dump arrives as a notification afterwards
        await ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)
        # one dump at a time (a second one while the first runs: EBUSY)
        async for msg in await ipr.link("dump"):
            self.apply(msg)
        async for msg in await ipr.addr("dump", family=socket.AF_INET6):
            self.apply(msg)
        async for msg in await ipr.route("dump", family=socket.AF_INET6):
            self.apply(msg)
        self.log.write("ready", role="mn", pid=os.getpid(), home_address=self.home_address,
                       home_agent=self.home_agent, lifetime=self.lifetime,
                       interfaces=[asdict(c) for c in self.confs.values()])
        self.evaluate({"kind": "start"})
        while True:
            async for msg in ipr.get():
                trigger = self.apply(msg)
                if trigger is not None:
                    self.evaluate(trigger)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="role", required=True)
    ha = sub.add_parser("ha", help="home agent stand-in")
    ha.add_argument("--log", type=Path, required=True)
    ha.add_argument("--address", required=True)
    answer = ha.add_mutually_exclusive_group()
    answer.add_argument("--status", type=int, default=BA_ACCEPTED)
    answer.add_argument("--silent", action="store_true", help="never answer")
    ha.add_argument("--max-lifetime", type=int, default=240)
    mn = sub.add_parser("mn", help="mobile node stand-in")
    mn.add_argument("--log", type=Path, required=True)
    mn.add_argument("--home-address", required=True)
    mn.add_argument("--home-agent", required=True)
    mn.add_argument("--interface", action="append", type=InterfaceConf.parse, required=True,
                    help="NAME:PREF[:tunnel], lower PREF preferred")
    mn.add_argument("--lifetime", type=int, default=60)
    mn.add_argument("--seq", type=int, default=int.from_bytes(os.urandom(2), "big"))
    args = parser.parse_args(argv)
    log = EventLog(args.log)
    if args.role == "ha":
        run_home_agent(log, str(ipaddress.IPv6Address(args.address)), None if args.silent else args.status,
                       args.max_lifetime)
    else:
        node = MobileNode(log, args.interface, args.home_address, args.home_agent, args.lifetime, args.seq)
        asyncio.run(node.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
