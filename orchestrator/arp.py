"""Ask an IPv4 gateway for its link-layer address with an ARP request of our own.

Why: two hotspots that both hand out 192.168.1.x with gateway 192.168.1.1 look identical in every
routing table; only the gateway's MAC tells them apart.  The kernel flushes neighbour entries when
carrier goes away, so after a carrier change the answer has to be asked for.  One AF_PACKET socket,
open only while a probe runs, a few requests, no polling.
"""

from __future__ import annotations

import asyncio
import socket
import struct

ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype ptype hlen plen op sha spa tha tpa
BROADCAST = b"\xff" * 6


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def request_frame(our_mac: str, our_ip: str, target_ip: str) -> bytes:
    return _ARP.pack(
        ARPHRD_ETHER,
        0x0800,
        6,
        4,
        1,
        _mac_bytes(our_mac),
        socket.inet_aton(our_ip),
        b"\0" * 6,
        socket.inet_aton(target_ip),
    )


def reply_sender(frame: bytes, target_ip: str) -> str | None:
    """The sender MAC of an ARP reply from ``target_ip``, or None for anything else."""
    if len(frame) < _ARP.size:
        return None
    _h, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame)
    if ptype != 0x0800 or hlen != 6 or plen != 4 or op != 2:
        return None
    return _mac_text(sha) if socket.inet_ntoa(spa) == target_ip else None


async def probe(
    ifname: str, our_mac: str, our_ip: str, target_ip: str, attempts: int = 3, interval: float = 0.2
) -> str | None:
    """Send up to ``attempts`` ARP requests ``interval`` apart; return the first replier's MAC."""
    loop = asyncio.get_running_loop()
    with socket.socket(
        socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, socket.htons(ETH_P_ARP)
    ) as sock:
        sock.bind((ifname, ETH_P_ARP))
        frame = request_frame(our_mac, our_ip, target_ip)
        for _ in range(attempts):
            sock.sendto(frame, (ifname, ETH_P_ARP, 0, ARPHRD_ETHER, BROADCAST))
            deadline = loop.time() + interval
            while (remaining := deadline - loop.time()) > 0:
                try:
                    reply = await asyncio.wait_for(loop.sock_recv(sock, 128), remaining)
                except asyncio.TimeoutError:
                    break
                sender = reply_sender(reply, target_ip)
                if sender is not None:
                    return sender
    return None
