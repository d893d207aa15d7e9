"""Binding Updates and Acknowledgements, read from raw IPv6 packets (RFC 6275).

A Binding Update (Mobility Header type 5) leaves from the care-of address towards the home agent
after a Destination Options header carrying the Home Address option; the Binding Acknowledgement
(type 6) comes back to the care-of address with a type-2 Routing header carrying the home address.
The Mobility Header is IPv6 next header 135.  Status below 128 means the binding was accepted.
Anything that does not parse is not a signal: it is skipped, never an error.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

NEXT_MH = 135
EXTENSIONS = {0, 43, 60}  # hop-by-hop, routing, destination options: walked past to the MH
MH_BU, MH_BA = 5, 6
ACCEPTED_BELOW = 128
HOME_ADDRESS_OPTION = 201


@dataclass(frozen=True)
class Signal:
    kind: str  # "bu" or "ba" on the wire; "kernel-bu" or "kernel-home-path" (see kernel_signals)
    source: str
    destination: str
    sequence: int
    status: int | None  # BA only
    home_address: str | None  # from the Home Address option (BU) or the type-2 routing header (BA)


def parse(packet: bytes) -> Signal | None:
    """The BU or BA in an IPv6 packet (network header first), or None."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    next_header, offset = packet[6], 40
    home: str | None = None
    while next_header in EXTENSIONS:
        if len(packet) < offset + 8:
            return None
        length = (packet[offset + 1] + 1) * 8
        if next_header == 60:
            home = _home_address_option(packet[offset + 2 : offset + length]) or home
        elif next_header == 43 and packet[offset + 2] == 2 and len(packet) >= offset + 24:
            home = str(ipaddress.IPv6Address(packet[offset + 8 : offset + 24]))
        next_header, offset = packet[offset], offset + length
    if next_header != NEXT_MH or len(packet) < offset + 12:
        return None
    mh_type = packet[offset + 2]
    source = str(ipaddress.IPv6Address(packet[8:24]))
    destination = str(ipaddress.IPv6Address(packet[24:40]))
    if mh_type == MH_BU:
        (sequence,) = struct.unpack_from("!H", packet, offset + 6)
        return Signal("bu", source, destination, sequence, None, home)
    if mh_type == MH_BA:
        status = packet[offset + 6]
        (sequence,) = struct.unpack_from("!H", packet, offset + 8)
        return Signal("ba", source, destination, sequence, status, home)
    return None


def _home_address_option(options: bytes) -> str | None:
    position = 0
    while position < len(options):
        kind = options[position]
        if kind == 0:  # Pad1
            position += 1
            continue
        if position + 2 > len(options):
            return None
        size = options[position + 1]
        if kind == HOME_ADDRESS_OPTION and size == 16 and position + 18 <= len(options):
            return str(ipaddress.IPv6Address(options[position + 2 : position + 18]))
        position += 2 + size
    return None
