"""The DHCP-move topology: a node behind a one-port-at-a-time bridge to three access routers.

API: ``AccessLab(renew_after=None, lease="2m", attached="ra")`` (a ``Lab``)::

        node:eth0 ---- n0 ]                  [ p-ra ---- ra:lan 10.1.0.1/24  dnsmasq .100-.150
                          ] sw: br0 (one of) [ p-rb ---- rb:lan 10.2.0.1/24  dnsmasq .100-.150
                                             [ p-rc ---- rc:lan 10.1.0.1/24  dnsmasq .100-.150

    ``.node``, ``.sw``, ``.routers: dict[str, Namespace]``, ``.node_if == "eth0"``
    ``.attach(short)``       only that router's port is in br0 (the others: nomaster, down)
    ``.carrier(on)``         node's eth0 loses / regains carrier (its peer n0 down / up in sw)
    ``.router_mac(short) -> str``; ``.attached: str | None``
    ``.dhclient()`` / ``.udhcpc()`` / ``.monitor()`` default to the node's eth0.

Carrier loss (``carrier(False)``) only brings a link message (NO-CARRIER) and IPv6 multicast
neighbour deletions: the IPv4 address and routes stay (routes flagged ``linkdown`` without a route
message).

Example::

    with AccessLab() as lab:                 # ra attached, three dnsmasqs running
        dh = lab.dhclient()                  # the node's eth0
        assert dh.start().startswith("10.1.0.")
        lab.attach("rb")
        assert dh.restart().startswith("10.2.0.") and lab.node.default_route() == "10.2.0.1"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .dhcp_clients import Dhclient, Udhcpc
from .ip_monitor import Monitor
from .lab import Lab
from .netns import LAB_BINARIES, Namespace, TrackedProcess, wait_for

# What an AccessLab adds to a Lab's needs (its routers run dnsmasq).
ACCESS_LAB_BINARIES = (*LAB_BINARIES, "dnsmasq", "ss")


# --------------------------------------------------------------------------------------------------
# the access topology
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouterSpec:
    """An access router: its LAN address (gateway/prefix), DHCP range and LAN MAC."""

    gateway: str
    prefixlen: int
    range_start: str
    range_end: str
    mac: str


ROUTERS: dict[str, RouterSpec] = {
    "ra": RouterSpec("10.1.0.1", 24, "10.1.0.100", "10.1.0.150", "02:00:00:00:0a:01"),
    "rb": RouterSpec("10.2.0.1", 24, "10.2.0.100", "10.2.0.150", "02:00:00:00:0b:01"),
    # Same subnet and gateway as ra, another box: "two hotspots that both hand out 10.1.0.x".
    "rc": RouterSpec("10.1.0.1", 24, "10.1.0.100", "10.1.0.150", "02:00:00:00:0c:01"),
}
NODE_MAC = "02:00:00:00:00:10"


class AccessLab(Lab):
    """The DHCP-move topology (see the module docstring): a node behind a one-port-at-a-time
    bridge to three access routers, each running dnsmasq on its LAN.

    Router namespaces have nothing but ``lo`` and ``lan`` and never see each other: the bridge
    only ever holds the node's port and one router's port.  IPv6 is disabled in ``sw`` and the
    routers (less multicast noise); the node keeps the kernel defaults.  The node has no address
    and no default route until a DHCP client gives it one."""

    node_if = "eth0"
    node_port = "n0"
    router_if = "lan"

    def __init__(self, renew_after: int | None = None, lease: str = "2m", attached: str | None = "ra",
                 prefix: str | None = None) -> None:
        super().__init__(prefix)
        self.renew_after = renew_after
        self.lease = lease
        self.initial = attached
        self.attached: str | None = None
        self.routers: dict[str, Namespace] = {}
        self.dnsmasqs: dict[str, TrackedProcess] = {}

    def __enter__(self) -> AccessLab:
        super().__enter__()
        try:
            self._build()
        except BaseException:
            self.close(raise_errors=False)
            raise
        return self

    @staticmethod
    def port(short: str) -> str:
        """Name of a router's port in ``sw``."""
        return f"p-{short}"

    def _build(self) -> None:
        self.node = self.namespace("node")
        self.sw = self.namespace("sw")
        for ns in (self.sw,):
            self._no_ipv6(ns)
        self.sw.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.sw.ip("link", "set", "br0", "up")
        self.veth(self.node, self.node_if, self.sw, self.node_port, mac_a=NODE_MAC)
        self.sw.ip("link", "set", self.node_port, "master", "br0")
        for short, spec in ROUTERS.items():
            r = self.namespace(short)
            self._no_ipv6(r)
            self.routers[short] = r
            self.veth(r, self.router_if, self.sw, self.port(short), mac_a=spec.mac)
            self.sw.ip("link", "set", self.port(short), "down")
            r.ip("addr", "add", f"{spec.gateway}/{spec.prefixlen}", "dev", self.router_if)
            self.dnsmasqs[short] = self.dnsmasq(
                r, self.router_if, range_start=spec.range_start, range_end=spec.range_end,
                router=spec.gateway, lease=self.lease, renew_after=self.renew_after)
        if self.initial is not None:
            self.attach(self.initial)

    @staticmethod
    def _no_ipv6(ns: Namespace) -> None:
        if Path("/proc/sys/net/ipv6").exists():
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)

    def _port_state(self, port: str) -> str | None:
        info = self.sw.link(port).get("linkinfo", {})
        if info.get("info_slave_kind") != "bridge":
            return None
        state = info.get("info_slave_data", {}).get("state")
        return str(state) if state is not None else None

    def attach(self, short: str) -> None:
        """Detach every router port from br0 (nomaster, down), then attach ``short`` (master br0,
        up) and wait until its port forwards."""
        if short not in self.routers:
            raise KeyError(f"unknown router {short!r} (have {sorted(self.routers)})")
        for other in self.routers:
            self.sw.ip("link", "set", self.port(other), "down")
            self.sw.ip("link", "set", self.port(other), "nomaster")
        self.attached = None
        self.sw.ip("link", "set", self.port(short), "master", "br0")
        self.sw.ip("link", "set", self.port(short), "up")
        wait_for(lambda: self._port_state(self.port(short)) == "forwarding", 10,
                 f"bridge port {self.port(short)} to forward")
        wait_for(lambda: self.routers[short].has_carrier(self.router_if), 10, f"carrier on {short}:lan")
        self.attached = short

    def carrier(self, on: bool) -> None:
        """Node's eth0 loses (False) or regains (True) carrier: its peer n0 in sw goes down / up.
        Returns once the node's kernel reports the new carrier state (and n0 forwards again)."""
        self.sw.ip("link", "set", self.node_port, "up" if on else "down")
        wait_for(lambda: self.node.has_carrier(self.node_if) == on, 10,
                 f"carrier {'on' if on else 'off'} on {self.node.name}/{self.node_if}")
        if on:
            wait_for(lambda: self._port_state(self.node_port) == "forwarding", 10,
                     f"bridge port {self.node_port} to forward")

    def router_mac(self, short: str) -> str:
        """MAC of router ``short``'s LAN interface (read from its kernel)."""
        return self.routers[short].mac(self.router_if)

    def dhclient(self, ns: Namespace | None = None, iface: str | None = None, metric: int | None = None,
                 client_id: str | None = None) -> Dhclient:
        """dhclient on the node's eth0 by default."""
        return super().dhclient(ns or self.node, iface or self.node_if, metric=metric, client_id=client_id)

    def udhcpc(self, ns: Namespace | None = None, iface: str | None = None) -> Udhcpc:
        """udhcpc on the node's eth0 by default."""
        return super().udhcpc(ns or self.node, iface or self.node_if)

    def monitor(self, ns: Namespace | None = None,
                objects: Sequence[str] = ("link", "address", "route")) -> Monitor:
        """ip monitor in the node by default."""
        return super().monitor(ns or self.node, objects)
