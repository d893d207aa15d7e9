"""Real-kernel Mobile IPv6 lab: the Teredo lab plus a home agent's site behind a real Teredo relay.

Why: the ``mipv6`` plugin must make a Mobile IPv6 node hand over the moment miredo has a new Teredo
address.  UMIP cannot run on this kernel (no ``CONFIG_IPV6_MIP6``) and is not packaged, so its two
ends are played by stand-ins (:mod:`mip6_standins`); everything between them is real: miredo as a
Teredo client behind real NAT, a real miredo-server, and miredo again as the Teredo *relay* at the
home agent's site, so a Binding Update leaves from the Teredo care-of address, crosses the NAT and
the relay, and the Binding Acknowledgement comes back the same way.

Topology (on top of :class:`teredo_lab.TeredoLab`; namespaces ``orch<PID>-<short>``)::

    srv:wan 198.51.100.1/.2 ----]
    na / nb / nc :wan ----------] wan: br0 (198.51.100.0/24, IPv4 only)
    rly:wan 198.51.100.20/24 ---]      miredo relay (RelayType cone, UDP 3545, InterfaceMTU 1400)

    ha:site  2001:db8:1::1/64 --- p-ha  ]
    rly:site 2001:db8:1::2/64 --- p-rly ] r6: br0 2001:db8:1::fe/64 (the home link)
    srv:v6   2001:db8:3::2/64 ------------ r6:srv 2001:db8:3::1/64
    node:eth6 2001:db8:2::10/64 ---------- r6:n6  2001:db8:2::1/64   (only after add_native())

* ``r6`` is the IPv6 side of the world: the home link's router, forwarding on, routes 2001::/32 to
  the relay.  ``ha`` (the home agent) has ``default via 2001:db8:1::fe`` and ``2001::/32 via
  2001:db8:1::2``: its answers to a Teredo address go straight to the relay.
* ``rly`` runs miredo as a relay (config per FIELD-NOTES: ``RelayType cone``, ``BindAddress
  198.51.100.20``, ``BindPort 3545``, ``InterfaceMTU 1400``, no ``Prefix``), IPv6 forwarding on;
  miredo itself creates ``teredo`` with the 2001::/32 route.  It runs no hook (the relay
  configures its interface itself; its process tree has no ``miredo-privproc``).
* the Teredo server has native IPv6 (``srv:v6``, default via r6): a Teredo client's first packet to
  a native address goes out through the server as a test ping, the answer comes back through the
  relay, and only then does the client send to the relay directly.
* every static IPv6 address is added ``nodad`` and DAD is off in the new namespaces: the lab is
  usable as soon as ``__enter__`` returns, with no 1 s tentative phase.
* ``add_native()`` gives the node a native IPv6 interface ``eth6`` (2001:db8:2::10/64, ``default
  via 2001:db8:2::1``): a path to the home agent that does not depend on IPv4, for "fall back to
  native" tests.

Host safety: :mod:`lab` and :mod:`teredo_lab`'s rules; the relay's miredo gets a private config,
pid file and log in ``lab.tmp/relay`` and is a tracked process (killed by process group / PID).

What the path does (measured here, kernel 6.18, miredo 1.2.6, 2 cores, 6 runs, min / median /
max): building the lab 0.47 / 0.57 / 0.63 s (the relay is ready ~30 ms after its start).  The
node's first ``ping6 -I teredo`` to the home agent after qualification (the client's test ping
through the server, the answer through the relay, bubbles, then the echo itself through the
relay) answers in 0.74 / 1.01 / 1.08 ms; after a move and SIGHUP the first ping from the new
address in 0.53 / 0.82 / 0.91 ms; over ``eth6`` ~0.15 ms.  Before DAD was switched off in ``srv``
the first packet through the server waited ~2 s for the server's link-local address to leave
DAD (its neighbour solicitation for the router waits for it): any new IPv6 interface on the path
must skip DAD or the first Teredo packet after a lab is built takes 2 s.

API
---
``MIP6_LAB_BINARIES``, ``mip6_requirements_problem() -> str | None`` (the Teredo lab's, plus busybox
    for ping6)
``HOME_AGENT``, ``HOME_ADDRESS``, ``HOME_PREFIX``, ``SITE_ROUTER``, ``RELAY_SITE``, ``RELAY_ADDRESS``,
``RELAY_PORT``, ``RELAY_MTU``, ``SERVER_V6``, ``NATIVE_ADDRESS``, ``NATIVE_ROUTER``, ``NATIVE_IF``

``MipLab(lease="2m", renew_after=None, attached="na")`` (a ``TeredoLab``)
    ``.ha``, ``.rly``, ``.r6`` (namespaces); ``.relay: TrackedProcess`` (running when
    ``__enter__`` returns); ``.relay_conf``, ``.relay_pidfile``, ``.relay_log: Path``; ``.miredos()``
    includes the relay
    everything of ``TeredoLab`` (``.start_miredo``, ``.move_to``, ``.sighup_miredo``, ...)
    ``.add_native(address=NATIVE_ADDRESS, router=NATIVE_ROUTER, metric=1024) -> None``
    ``.ping6(dst=HOME_AGENT, iface="teredo", ns=None, timeout=3) -> bool`` one echo, bound to ``iface``
    ``.wait_teredo_routed(timeout=10, exclude=(), iface="teredo") -> str``  a new Teredo address AND
        the default route through ``iface`` (what a ping needs)
    ``.delete_teredo_address(address, iface="teredo") -> None``  ``ip -6 addr del ADDRESS/PLEN dev
        IFACE`` (by value)
    ``.start_home_agent(status=0, max_lifetime=..., timeout=10) -> HomeAgentStandIn``
    ``.start_mobile_node(interfaces=("eth0:1", "teredo:3:tunnel"), home_address=HOME_ADDRESS,
      home_agent=HOME_AGENT, lifetime=..., timeout=10) -> MobileNodeStandIn``
    (the stand-ins and their logs: :mod:`mip6_standins`)

Example::

    with MipLab() as lab:
        lab.start_miredo(stock_hook_path())
        coa = lab.wait_teredo_address()
        assert lab.ping6()                               # node -> server -> ha -> relay -> node
        ha = lab.start_home_agent(status=0)
        mn = lab.start_mobile_node()
        ha.wait_event("bu-received", src=coa)
        mn.wait_event("ba-received", status=0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from .mip6_standins import DEFAULT_LIFETIME, DEFAULT_MAX_LIFETIME, HomeAgentStandIn, MobileNodeStandIn
from .netns import Namespace, TrackedProcess, requirements_problem, tail, wait_for
from .teredo_lab import (
    SERVER_ADDRESS,
    TEREDO_IF,
    TEREDO_LAB_BINARIES,
    WAN_PREFIXLEN,
    TeredoLab,
    teredo_requirements_problem,
)

MIP6_LAB_BINARIES = (*TEREDO_LAB_BINARIES, "busybox")

HOME_PREFIX = "2001:db8:1::/64"
HOME_AGENT = "2001:db8:1::1"
HOME_ADDRESS = "2001:db8:1::10"
SITE_ROUTER = "2001:db8:1::fe"
RELAY_SITE = "2001:db8:1::2"
SERVER_LINK_ROUTER = "2001:db8:3::1"
SERVER_V6 = "2001:db8:3::2"
NATIVE_IF = "eth6"
# The mobile node's interfaces ("NAME:PREFERENCE[:tunnel]"), as in the user's mip6d.conf:
TEREDO_ONLY = ("eth0:1", f"{TEREDO_IF}:3:tunnel")  # the seed: teredo least preferred
WITH_NATIVE = (*TEREDO_ONLY, f"{NATIVE_IF}:5")  # a native interface, even less preferred
NATIVE_PORT = "n6"
NATIVE_ROUTER = "2001:db8:2::1"
NATIVE_ADDRESS = "2001:db8:2::10"
NATIVE_PREFIXLEN = 64

RELAY_ADDRESS = "198.51.100.20"
RELAY_PORT = 3545
RELAY_MTU = 1400
TEREDO_PREFIX = "2001::/32"
SITE_IF = "site"


def mip6_requirements_problem() -> str | None:
    """Why the Mobile IPv6 lab cannot run here (for ``pytest.skip``), or None."""
    return teredo_requirements_problem() or requirements_problem(*MIP6_LAB_BINARIES)


def relay_config() -> str:
    """The relay's miredo.conf: a cone relay on its own documentation address and port, MTU 1400
    towards clients (what a Mobile IPv6 tunnel needs), the default Teredo prefix (no ``Prefix``:
    clients' addresses must stay in 2001:0::/32)."""
    return ("# private config of a MipLab Teredo relay\n"
            "RelayType cone\n"
            f"InterfaceName {TEREDO_IF}\n"
            f"BindAddress {RELAY_ADDRESS}\n"
            f"BindPort {RELAY_PORT}\n"
            f"InterfaceMTU {RELAY_MTU}\n")


class MipLab(TeredoLab):
    """The Teredo lab plus the home agent's site (see the module docstring).  ``__enter__``
    returns with everything of :class:`TeredoLab`, the relay running (UDP port bound, 2001::/32
    routed into its tunnel) and every IPv6 route in place; miredo in the node is NOT started."""

    def __init__(self, lease: str = "2m", renew_after: int | None = None, attached: str = "na",
                 prefix: str | None = None) -> None:
        super().__init__(lease=lease, renew_after=renew_after, attached=attached, prefix=prefix)
        self.relay: TrackedProcess | None = None
        self.native = False

    def __enter__(self) -> MipLab:
        super().__enter__()
        return self

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        super()._build()
        self.r6 = self._v6_namespace("r6")
        self.ha = self._v6_namespace("ha")
        self.rly = self._v6_namespace("rly")
        self.r6.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.r6.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self.r6.ip("link", "set", "br0", "up")
        self.r6.ip("-6", "addr", "add", f"{SITE_ROUTER}/64", "dev", "br0", "nodad")
        for ns, address in ((self.ha, HOME_AGENT), (self.rly, RELAY_SITE)):
            port = f"p-{ns.short}"
            self.veth(ns, SITE_IF, self.r6, port)
            self.r6.ip("link", "set", port, "master", "br0")
            ns.ip("-6", "addr", "add", f"{address}/64", "dev", SITE_IF, "nodad")
            ns.ip("-6", "route", "add", "default", "via", SITE_ROUTER, "dev", SITE_IF)
        self.r6.ip("-6", "route", "add", TEREDO_PREFIX, "via", RELAY_SITE, "dev", "br0")
        self.ha.ip("-6", "route", "add", TEREDO_PREFIX, "via", RELAY_SITE, "dev", SITE_IF)

        # the Teredo server's native IPv6 (no DAD: a tentative link-local holds the first packet
        # to the router back until DAD ends, ~2 s; measured)
        self.srv.sysctl("net.ipv6.conf.default.accept_dad", 0)
        self.veth(self.srv, "v6", self.r6, "srv")
        self.r6.ip("-6", "addr", "add", f"{SERVER_LINK_ROUTER}/64", "dev", "srv", "nodad")
        self.srv.ip("-6", "addr", "add", f"{SERVER_V6}/64", "dev", "v6", "nodad")
        self.srv.ip("-6", "route", "add", "default", "via", SERVER_LINK_ROUTER, "dev", "v6")

        # the relay: IPv4 on the WAN, IPv6 on the home link
        self.rly.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.veth(self.rly, self.wan_if, self.wan, "p-rly")
        self.wan.ip("link", "set", "p-rly", "master", "br0")
        self.rly.ip("addr", "add", f"{RELAY_ADDRESS}/{WAN_PREFIXLEN}", "dev", self.wan_if)
        self.relay = self._start_relay()

    def _v6_namespace(self, short: str) -> Namespace:
        """A namespace with DAD off before any interface exists (a static address is usable at
        once, the link-local too)."""
        ns = self.namespace(short)
        ns.sysctl("net.ipv6.conf.default.accept_dad", 0)
        return ns

    @property
    def relay_dir(self) -> Path:
        d = self.tmp / "relay"
        d.mkdir(exist_ok=True)
        return d

    @property
    def relay_conf(self) -> Path:
        return self.relay_dir / "miredo-relay.conf"

    @property
    def relay_pidfile(self) -> Path:
        return self.relay_dir / "miredo-relay.pid"

    @property
    def relay_log(self) -> Path:
        return self.relay_dir / "miredo-relay.log"

    def _start_relay(self, timeout: float = 10.0) -> TrackedProcess:
        """miredo as a cone relay in ``rly``; returns once it listens on its UDP port and routes
        2001::/32 into its tunnel."""
        self.relay_conf.write_text(relay_config())
        proc = self.bring_up_miredo(self.rly, self.relay_conf, self.relay_pidfile, self.relay_log, None,
                                    timeout)

        def ready() -> bool:
            proc.check_alive(f"the relay's miredo in {self.rly.name}")
            bound = f"{RELAY_ADDRESS}:{RELAY_PORT}" in self.rly.run("ss", "-H", "-uln").stdout
            routes = self.rly.ip_json("-6", "route", "show", TEREDO_PREFIX)
            return bound and any(r.get("dev") == TEREDO_IF for r in routes)

        try:
            wait_for(ready, timeout, f"the relay in {self.rly.name} to bind UDP {RELAY_PORT} and route "
                     f"{TEREDO_PREFIX} into {TEREDO_IF}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nrelay log {self.relay_log}:\n{tail(self.relay_log)}") from None
        return proc

    def miredos(self) -> list[TrackedProcess]:
        """The node's miredo and the relay's."""
        relay = [self.relay] if self.relay is not None else []
        return [*super().miredos(), *relay]

    # -- the node's native IPv6 -------------------------------------------------------------------
    def add_native(self, address: str = NATIVE_ADDRESS, router: str = NATIVE_ROUTER,
                   metric: int = 1024) -> None:
        """Give the node a native IPv6 interface ``eth6`` (veth to ``r6``): ``address``/64 (no DAD)
        and ``default via router dev eth6 metric METRIC``, a path to the home agent that does not
        depend on IPv4.  Returns once the address is usable (not tentative)."""
        if self.native:
            raise RuntimeError("the node already has its native interface")
        # no DAD on eth6 (a tentative link-local would hold the first packet to the router back
        # ~2 s): the node's default is switched off only while the veth is created
        key = "net/ipv6/conf/default/accept_dad"
        before = self.node.run("cat", f"/proc/sys/{key}").stdout.strip()
        self.node.sysctl(key, 0)
        try:
            self.veth(self.node, NATIVE_IF, self.r6, NATIVE_PORT)
        finally:
            self.node.sysctl(key, before)
        self.native = True
        self.r6.ip("-6", "addr", "add", f"{router}/{NATIVE_PREFIXLEN}", "dev", NATIVE_PORT, "nodad")
        self.node.ip("-6", "addr", "add", f"{address}/{NATIVE_PREFIXLEN}", "dev", NATIVE_IF, "nodad")
        self.node.ip("-6", "route", "add", "default", "via", router, "dev", NATIVE_IF, "metric", str(metric))

        def usable() -> bool:
            infos = [a for link in self.node.ip_json("-6", "addr", "show", "dev", NATIVE_IF)
                     for a in link.get("addr_info", []) if a.get("local") == address]
            return bool(infos) and not infos[0].get("tentative", False)

        wait_for(usable, 5, f"{address} usable on {self.node.name}/{NATIVE_IF}")

    # -- probes -----------------------------------------------------------------------------------
    def ping6(self, dst: str = HOME_AGENT, iface: str = TEREDO_IF, ns: Namespace | None = None,
              timeout: int = 3) -> bool:
        """One ICMPv6 echo from ``ns`` (default: the node), bound to ``iface`` (so the Teredo path
        is tested even when a native default route is better), waiting ``timeout`` s for the
        answer.  busybox's ping6: iputils is not installed here."""
        ns = ns or self.node
        res = ns.run("busybox", "ping6", "-c", "1", "-W", str(timeout), "-I", iface, dst,
                     check=False, timeout=timeout + 5)
        return res.returncode == 0

    def wait_teredo_routed(self, timeout: float = 10.0, exclude: Collection[str] = (),
                           iface: str = TEREDO_IF) -> str:
        """:meth:`wait_teredo_address`, then also the IPv6 default route through ``iface`` (the hook
        adds it ~1 ms after the address; a packet sent before it fails "network unreachable")."""
        address = self.wait_teredo_address(timeout, exclude, iface)
        wait_for(lambda: self.node.ip_json("-6", "route", "show", "default", "dev", iface), timeout,
                 f"a default route through {self.node.name}/{iface}", interval=0.002)
        return address

    def delete_teredo_address(self, address: str, iface: str = TEREDO_IF) -> None:
        """``ip -6 addr del ADDRESS/PLEN dev IFACE`` in the node, the prefix length read from the
        kernel (it must match for a deletion by value)."""
        plens = [a["prefixlen"] for link in self._teredo_link(iface) for a in link.get("addr_info", [])
                 if a.get("local") == address]
        if not plens:
            raise LookupError(f"{address} is not on {self.node.name}/{iface}")
        self.node.ip("-6", "addr", "del", f"{address}/{plens[0]}", "dev", iface)

    # -- stand-ins --------------------------------------------------------------------------------
    def start_home_agent(self, status: int | None = 0, max_lifetime: int = DEFAULT_MAX_LIFETIME,
                         timeout: float = 10.0) -> HomeAgentStandIn:
        """Start the home agent stand-in in ``ha`` (see :class:`mip6_standins.HomeAgentStandIn`):
        ``status`` answers every Binding Update (0 accept, 129 reject...), None never answers."""
        return HomeAgentStandIn.start(self, self.ha, HOME_AGENT, status=status,
                                      max_lifetime=max_lifetime, timeout=timeout)

    def start_mobile_node(self, interfaces: Sequence[str] = TEREDO_ONLY,
                          home_address: str = HOME_ADDRESS, home_agent: str = HOME_AGENT,
                          lifetime: int = DEFAULT_LIFETIME, timeout: float = 10.0) -> MobileNodeStandIn:
        """Start the mobile node stand-in in the node (see
        :class:`mip6_standins.MobileNodeStandIn`); ``interfaces`` as ``NAME:PREF[:tunnel]``."""
        return MobileNodeStandIn.start(self, self.node, interfaces, home_address=home_address,
                                       home_agent=home_agent, lifetime=lifetime, timeout=timeout)


__all__ = [
    "HOME_ADDRESS",
    "HOME_AGENT",
    "HOME_PREFIX",
    "MIP6_LAB_BINARIES",
    "NATIVE_ADDRESS",
    "NATIVE_IF",
    "NATIVE_ROUTER",
    "RELAY_ADDRESS",
    "RELAY_MTU",
    "RELAY_PORT",
    "RELAY_SITE",
    "SERVER_ADDRESS",
    "SERVER_V6",
    "SITE_ROUTER",
    "MipLab",
    "mip6_requirements_problem",
    "relay_config",
]
