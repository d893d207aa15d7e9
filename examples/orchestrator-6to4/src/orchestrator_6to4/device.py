"""Bring the 6to4 interface to a ``Target`` over netlink (pyroute2), by difference.

Blocking: the plugin runs this in a worker thread.  It owns the interface's 2002::/16 addresses
and its link state (and, with ``create``, the sit device and its local address); other addresses
and every route are someone else's.  Reading first and changing only what differs makes a second
run with the same target write nothing.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import socket
import threading
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from .prefix import SIX_TO_FOUR, Target
from .settings import Settings

SIT_TTL = 64
IFF_UP = 0x1
ANY = "0.0.0.0"  # a 6to4 sit device has no fixed remote: the IPv4 end comes from each destination


class DeviceError(Exception):
    """The interface could not be brought to its target; the message says what and why."""


class SitUnsupported(DeviceError):
    """The kernel cannot make sit (IPv6-in-IPv4) devices: no ``sit`` module."""


#: One convergence at a time, threads included: a call the daemon abandoned at its timeout keeps
#: running in its thread.  The lock does not serve waiters in order, so each call carries a ticket,
#: taken in move order on the event loop, and one that finds a newer ticket issued gives way: the
#: newest target wins.
_CONVERGING = threading.Lock()
_tickets = itertools.count(1)
_newest = 0


def ticket() -> int:
    """The next call's ticket: take it on the event loop, in the order of the moves."""
    global _newest
    _newest = next(_tickets)
    return _newest


def converge(settings: Settings, target: Target, call: int) -> list[str]:
    """Make ``settings.interface`` carry exactly ``target.address`` among 2002::/16 addresses, up
    when the target is up and down otherwise.  Returns the changes made (empty: already there, or
    superseded by a newer ticket)."""
    try:
        with _CONVERGING:
            if call != _newest:
                return []
            with IPRoute() as ipr:
                return _converge(ipr, settings, target)
    except NetlinkError as error:
        raise DeviceError(f"{settings.interface}: {_text(error)}") from error


def _converge(ipr: IPRoute, settings: Settings, target: Target) -> list[str]:
    name, changes = settings.interface, []
    link = _link(ipr, name)
    if link is None:
        if target.address is None:
            return []  # nothing to take away from an interface that is not there
        if not settings.create:
            raise DeviceError(f"{name}: no such interface (6to4.create is false: someone else makes it)")
        _create_sit(ipr, name, str(target.uplink))
        changes.append(f"sit {name} created, local {target.uplink}")
        link = _link(ipr, name)
        assert link is not None
    elif settings.create and target.uplink is not None and target.address is not None:
        changes += _set_local(ipr, link, name, target.uplink)
    index = link["index"]
    present = _six_to_four_addresses(ipr, index)
    wanted = {target.address} if target.address is not None else set()
    for address in sorted(present - wanted):
        ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        changes.append(f"address del {address}")
    up = target.address is not None
    if bool(link["flags"] & IFF_UP) != up:
        ipr.link("set", index=index, state="up" if up else "down")
        changes.append(f"link {'up' if up else 'down'}")
    for address in sorted(wanted - present):
        ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        changes.append(f"address add {address}")
    return changes


def _link(ipr: IPRoute, name: str) -> Any:
    try:
        links = list(ipr.link("get", ifname=name))
    except NetlinkError as error:
        if error.code == errno.ENODEV:
            return None
        raise
    return links[0] if links else None


def _create_sit(ipr: IPRoute, name: str, local: str) -> None:
    try:
        ipr.link("add", ifname=name, kind="sit", sit_local=local, sit_remote=ANY, sit_ttl=SIT_TTL)
    except NetlinkError as error:
        if error.code == errno.EOPNOTSUPP:
            raise SitUnsupported(
                f"{name}: cannot create a sit device: this kernel has no sit (IPv6-in-IPv4) support "
                "(CONFIG_IPV6_SIT, module 'sit')"
            ) from error
        raise


def _set_local(ipr: IPRoute, link: Any, name: str, local: str) -> list[str]:
    """The sit device's local end must be the uplink's address, or the relay's answers never match."""
    info = link.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    if kind != "sit":
        raise DeviceError(f"{name}: is a {kind or 'non-tunnel'} device, not sit (6to4.create is true)")
    data = info.get_attr("IFLA_INFO_DATA")
    if data is not None and data.get_attr("IFLA_SIT_LOCAL") == local:
        return []
    ipr.link("set", index=link["index"], kind="sit", sit_local=local, sit_remote=ANY, sit_ttl=SIT_TTL)
    return [f"sit {name} local {local}"]


def _six_to_four_addresses(ipr: IPRoute, index: int) -> set[ipaddress.IPv6Interface]:
    found = set()
    for message in ipr.addr("dump", family=socket.AF_INET6, index=index):
        if message["index"] != index:
            continue
        address = ipaddress.IPv6Interface((message.get_attr("IFA_ADDRESS"), message["prefixlen"]))
        if address.ip in SIX_TO_FOUR:
            found.add(address)
    return found


def _text(error: NetlinkError) -> str:
    return f"{error.args[1] if len(error.args) > 1 else error} (errno {error.code})"
