"""What mip6d writes into the kernel on a handover, as signals the handover judge understands.

With IPsec-protected signalling the Binding Update and Acknowledgement are encrypted, so the
capture cannot read them; mip6d's own kernel changes tell the same story (see ``xfrm`` for where
in UMIP's source each one comes from):

* ``kernel-bu``: mip6d moved to the care-of address: an SA whose XFRMA_COADDR is it (the Home
  Address option state written before the BU), a migration of the IPsec SAs to it, or the ip6tnl
  tunnel to the home agent with it as local endpoint;
* ``kernel-home-path``: mip6d wrote the home data path policies (priority MIP6_PRIO_HOME_DATA),
  which it does once the Binding Acknowledgement accepted the binding.  With mip6d's
  ``OptimisticHandoff`` it does so right after the BU: the confirmation is then optimistic too.

Both sockets are opened only while a handover is pending, like the capture.
"""

from __future__ import annotations

import socket

from orchestrator import wire

from . import xfrm
from .mobility import Signal


def from_xfrm(change: xfrm.XfrmSignal, home_agent: str) -> list[Signal]:
    if change.kind == "state" and change.coaddr and home_agent in (change.src, change.dst):
        return [Signal("kernel-bu", change.coaddr, home_agent, 0, None, None)]
    if change.kind == "migrate":
        return [
            Signal("kernel-bu", m.new_local, home_agent, 0, None, None)
            for m in change.migrations
            if m.new_remote == home_agent and m.new_local
        ]
    if (
        change.kind == "policy"
        and change.message in (xfrm.XFRM_MSG_NEWPOLICY, xfrm.XFRM_MSG_UPDPOLICY)
        and change.priority == xfrm.MIP6_PRIO_HOME_DATA
    ):
        return [Signal("kernel-home-path", "", home_agent, 0, None, None)]
    return []


def from_tunnel(endpoint: xfrm.TunnelEndpoint, home_agent: str) -> list[Signal]:
    if endpoint.remote == home_agent and endpoint.local:
        return [Signal("kernel-bu", endpoint.local, home_agent, 0, None, None)]
    return []


def open_link_socket() -> socket.socket:
    """rtnetlink link notifications (the ip6tnl endpoint change), non-blocking."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    try:
        sock.bind((0, wire.RTMGRP_LINK))
    except OSError:
        sock.close()
        raise
    return sock


def read(sock: socket.socket, home_agent: str, link: bool) -> list[Signal]:
    """Drain one socket (xfrm, or rtnetlink links when ``link``) into signals."""
    found: list[Signal] = []
    while True:
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return found
        except OSError:  # an overrun: what was lost is lost; the capture and the timer remain
            return found
        if link:
            endpoints = xfrm.decode_tunnel_link(data)
            found += [s for endpoint in endpoints for s in from_tunnel(endpoint, home_agent)]
        else:
            found += [s for change in xfrm.decode_xfrm(data) for s in from_xfrm(change, home_agent)]
