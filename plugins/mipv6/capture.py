"""An AF_PACKET capture of Mobility Header traffic, open only while a handover is pending.

Why AF_PACKET: with IPsec off, the Binding Update and Acknowledgement are plain packets, and a
packet socket sees both directions — including a BU with a Home Address option or a BA with a
type-2 routing header that a kernel without MIPv6 would drop before any other socket sees it.  The
socket listens on every interface (``ETH_P_ALL``: only such sockets see outgoing packets), because
miredo re-creates the tunnel with a new index on every restart and mip6d sends its BU about 1 ms
after the new address appears: a capture bound to the new index would open too late.  A classic
BPF filter in the kernel passes only IPv6 packets whose next header is the Mobility Header or an
extension header that may precede it, so the daemon wakes for nothing else.
"""

from __future__ import annotations

import ctypes
import socket
import struct

ETH_P_ALL = 0x0003
ETH_P_IPV6 = 0x86DD
SO_ATTACH_FILTER = 26
SKF_AD_PROTOCOL = -0x1000 + 0  # SKF_AD_OFF + SKF_AD_PROTOCOL: the packet's ethertype
MAX_PACKET = 2048

# (code, jt, jf, k) of a classic BPF program.
_LD_W_ABS, _LD_B_ABS, _JEQ_K, _RET_K = 0x20, 0x30, 0x15, 0x06
FILTER = [
    (_LD_W_ABS, 0, 0, SKF_AD_PROTOCOL & 0xFFFFFFFF),  # A = ethertype
    (_JEQ_K, 0, 5, ETH_P_IPV6),
    (_LD_B_ABS, 0, 0, 6),  # A = IPv6 next header (the packet starts at the network header)
    (_JEQ_K, 2, 0, 135),  # Mobility Header
    (_JEQ_K, 1, 0, 60),  # Destination Options (a BU's Home Address option)
    (_JEQ_K, 0, 1, 43),  # Routing (a BA's type-2 header)
    (_RET_K, 0, 0, MAX_PACKET),
    (_RET_K, 0, 0, 0),
]


def open_capture() -> socket.socket:
    """A non-blocking packet socket passing only candidate Mobility Header packets, whole from
    the IPv6 header (``SOCK_DGRAM``: no link-layer header, the same on a tun and on Ethernet)."""
    kind = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    sock = socket.socket(socket.AF_PACKET, kind, socket.htons(ETH_P_ALL))
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *step) for step in FILTER))
    try:  # the kernel copies the program: the buffer only has to outlive this call
        fprog = struct.pack("HL", len(FILTER), ctypes.addressof(program))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        sock.close()
        raise
    return sock
