"""Real-kernel two-uplink lab: the Mobile IPv6 lab plus a second uplink with its own NAT and miredo.

Why: a node with two uplinks keeps a hot standby: the second uplink's own Teredo tunnel
(``teredo2``, a second miredo bound to that uplink's address) is qualified before the first uplink
fails, so a Mobile IPv6 node can hand over to it in milliseconds instead of waiting for a
re-qualification.  The daemon under test owns the standby's policy routing (``from <wlan0
address> lookup TABLE`` + ``default via 10.3.0.1 dev wlan0 table TABLE``) and the standby miredo's
``BindAddress``; this lab gives it the real kernel, DHCP client, NAT and miredo to do that with,
as FIELD-NOTES "Two uplinks, two miredo instances" measured them.

Topology (on top of :class:`mip6_lab.MipLab`; namespaces ``orch<PID>-<short>``)::

    srv, na / nb / nc, rly :wan ---------------] wan: br0 (198.51.100.0/24)
    nw:wan 198.51.100.14/24 --- p-nw ----------]

    node:eth0 (dhclient, default metric 0) ---- sw ---- na / nb / nc  (as in TeredoLab)
    node:wlan0 (dhclient, default metric 200) --------- nw:lan 10.3.0.1/24  dnsmasq .100-.150

    (the home agent's site, the relay and the Teredo server's IPv6 as in MipLab)

* ``nw`` is a NAT router like ``na``/``nb``/``nc`` (:meth:`teredo_lab.TeredoLab.nat_router`: masquerade
  out of ``wan``, forwarding, dnsmasq on ``lan``), its LAN a veth straight to the node's ``wlan0``
  (no switch: ``standby_carrier`` sets ``nw:lan`` down / up).  It is not in ``.routers`` (the
  routers eth0 can be attached to).
* the node's second dhclient runs on ``wlan0`` with ``metric=STANDBY_METRIC`` (``-e IF_METRIC=200``,
  read by Debian's dhclient-script) and a client id (``wlan0-1``): both default routes coexist in
  the main table, eth0's (metric 0) wins, so everything of the Teredo and MIPv6 labs behaves as
  before.  ``__enter__`` returns with both leases and both default routes in place.
* the second miredo (``teredo2``) is not started by ``__enter__``: :meth:`launch_standby_miredo`
  starts it from whatever is at ``standby_conf`` (the daemon under test rewrites its
  ``BindAddress``), writing the lab's client config with ``InterfaceName teredo2`` first if there
  is no file yet.  Without a ``BindAddress`` and a source rule it would qualify through eth0 like
  the first one.
* a new lease on wlan0 (:meth:`standby_new_lease`): a new client id, then dhclient restarted with
  the same lease file.  dnsmasq keys leases by client id, so the INIT-REBOOT request for the old
  address is NAKed (leased to the old id), dhclient expires it (DELADDR, routes) and DISCOVERs a
  different address: what the kernel shows after a move to another network, with no link event.

Host safety: :mod:`lab`, :mod:`teredo_lab` and :mod:`mip6_lab`'s rules.  The second miredo gets its
own private config, pid file and log in ``lab.tmp/miredo`` and is a tracked process (killed by
process group / PID); its client hook is bind-mounted inside its own mount namespace exactly as for
the first one (:meth:`teredo_lab.TeredoLab.launch_miredo`).

API
---
``STANDBY_UPLINK_IF`` ("wlan0"), ``STANDBY_TUNNEL_IF`` ("teredo2"), ``STANDBY_ROUTER`` ("nw"),
``STANDBY_NAT: NatSpec`` (WAN 198.51.100.14, LAN 10.3.0.1/24), ``STANDBY_METRIC`` (200),
``STANDBY_MAC`` (the node's wlan0), ``BOTH_TUNNELS`` (``start_mobile_node``'s interfaces: eth0,
teredo, then teredo2)

``StandbyLab(lease="2m", renew_after=None, attached="na")`` (a ``MipLab``)
    ``.nw`` (namespace); ``.standby_dhcp: Dhclient`` (wlan0's, bound); everything of ``MipLab``
    ``.standby_address() -> str | None``  wlan0's IPv4 address/prefix
    ``.standby_gateway() -> str | None``  gateway of the main table's default route through wlan0
        with metric STANDBY_METRIC
    ``.standby_carrier(on) -> None``  wlan0 loses / regains carrier (nw:lan down / up); returns
        once the node's kernel reports it
    ``.standby_new_lease(timeout=30) -> str``  a new lease with a different address (see above);
        returns the new address/prefix once it and its default route are in place
    ``.standby_conf``, ``.standby_pidfile``, ``.standby_log: Path``; ``.standby_miredo:
    TrackedProcess | None``
    ``.launch_standby_miredo(hook, timeout=10) -> TrackedProcess``  returns once miredo runs (not
        qualified: ``wait_teredo_address(iface=STANDBY_TUNNEL_IF)``)
    ``.stop_standby_miredo()``; ``.miredos()`` includes the standby's
    ``.miredo_client(iface)`` knows ``teredo2``, so ``teredo_addresses``, ``wait_teredo_address``,
    ``wait_teredo_routed``, ``delete_teredo_address`` work with ``iface=STANDBY_TUNNEL_IF``

What it does here (kernel 6.18, miredo 1.2.6, isc-dhcp-client 4.4.3-P1, dnsmasq 2.90, 2 cores;
6 runs, min / median / max):

* building the lab 0.63 / 0.64 / 0.70 s (a MipLab 0.43 / 0.48 / 0.56 s): nw, its dnsmasq and
  wlan0's first lease add ~0.16 s.
* ``standby_new_lease()`` 81 / 87 / 93 ms (REQUEST, NAK, EXPIRE, DISCOVER ... ACK, default route).
* the standby miredo bound to wlan0's address, with ``from <wlan0> lookup 200`` and ``default via
  10.3.0.1 dev wlan0 table 200``, qualifies through nw: its Teredo address maps 198.51.100.14, the
  first client's 198.51.100.11.
* the stock hook is written for one tunnel: both run ``ip -6 route add default dev IFACE metric
  1029``, the second fails ("File exists"), so ``teredo2`` has no IPv6 default route and a
  ``ping6 -I teredo2`` fails until one with another metric is added (both tunnels do get their own
  2001::/32 prefix route, metric 256).  The mobile node stand-in sends on the tunnel directly and
  needs none.
* the mobile node stand-in over ``teredo:3`` and ``teredo2:4``: binds through teredo; ``ip -6
  addr del`` of teredo's CoA (counted from before the ``ip`` command) -> ``coa-selected`` on
  teredo2 4.4 / 5.7 / 6.5 ms, -> the home agent's ``bu-received`` from teredo2's CoA
  5.8 / 6.5 / 7.7 ms, -> ``ba-received`` on teredo2 6.2 / 7.1 / 8.1 ms (teredo2 had never talked
  to the home agent: its relay discovery is in these figures).

Example::

    with StandbyLab() as lab:
        wlan = lab.standby_address().split("/")[0]
        lab.node.ip("rule", "add", "from", wlan, "lookup", "200", "pref", "1000")
        lab.node.ip("route", "add", "default", "via", STANDBY_NAT.gateway, "dev", "wlan0", "table", "200")
        lab.standby_conf.write_text(miredo_client_config(f"InterfaceName teredo2\\nBindAddress {wlan}"))
        lab.start_miredo(stock_hook_path())
        lab.launch_standby_miredo(stock_hook_path())
        second = lab.wait_teredo_address(iface=STANDBY_TUNNEL_IF)
        assert teredo_client_ipv4(second) == STANDBY_NAT.wan
"""

from __future__ import annotations

from pathlib import Path

from .dhcp_clients import Dhclient
from .mip6_lab import TEREDO_ONLY, MipLab
from .netns import TrackedProcess, wait_for
from .teredo_lab import TEREDO_IF, NatSpec, miredo_client_config

STANDBY_UPLINK_IF = "wlan0"
STANDBY_TUNNEL_IF = "teredo2"
STANDBY_ROUTER = "nw"
STANDBY_NAT = NatSpec("198.51.100.14", "10.3.0.1", 24, "10.3.0.100", "10.3.0.150", "02:00:00:00:1d:01")
STANDBY_MAC = "02:00:00:00:00:20"
# The standby's default route in the main table: above eth0's (dhclient's default, metric 0), so the
# kernel keeps choosing eth0 while both are up.
STANDBY_METRIC = 200
# The mobile node stand-in's interfaces over both tunnels: teredo2 after teredo, as the daemon's
# hot-standby policy ranks them (mip6_preference 3 and 4).
BOTH_TUNNELS = (*TEREDO_ONLY, f"{STANDBY_TUNNEL_IF}:4:tunnel")


class StandbyLab(MipLab):
    """The Mobile IPv6 lab plus a second uplink (see the module docstring).  ``__enter__`` returns
    with everything of :class:`MipLab` and wlan0 holding a lease from ``nw``, its default route
    (metric STANDBY_METRIC) beside eth0's; no miredo runs in the node."""

    def __init__(self, lease: str = "2m", renew_after: int | None = None, attached: str = "na",
                 prefix: str | None = None) -> None:
        super().__init__(lease=lease, renew_after=renew_after, attached=attached, prefix=prefix)
        self.standby_miredo: TrackedProcess | None = None
        self._client_ids = 0

    def __enter__(self) -> StandbyLab:
        super().__enter__()
        return self

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        super()._build()
        self.nw = self.nat_router(STANDBY_ROUTER, STANDBY_NAT, self.node, STANDBY_UPLINK_IF,
                                  peer_mac=STANDBY_MAC)
        self.standby_dhcp: Dhclient = self.dhclient(self.node, STANDBY_UPLINK_IF, metric=STANDBY_METRIC,
                                                    client_id=self._next_client_id())
        self.standby_dhcp.start()
        self._await_standby_route(10)

    def _next_client_id(self) -> str:
        self._client_ids += 1
        return f"{STANDBY_UPLINK_IF}-{self._client_ids}"

    # -- the standby uplink -----------------------------------------------------------------------
    def standby_address(self) -> str | None:
        """wlan0's global IPv4 address/prefix in the node, or None."""
        return self.standby_dhcp.address()

    def standby_gateway(self) -> str | None:
        """Gateway of the main table's IPv4 default route through wlan0 with metric
        STANDBY_METRIC (``ip -j`` omits a metric of 0), or None."""
        routes = self.node.ip_json("-4", "route", "show", "default", "dev", STANDBY_UPLINK_IF)
        return next((r.get("gateway") for r in routes
                     if r.get("gateway") and r.get("metric", 0) == STANDBY_METRIC), None)

    def _await_standby_route(self, timeout: float) -> None:
        """Until the main table's default route through wlan0 (metric STANDBY_METRIC) is via nw."""
        wait_for(lambda: self.standby_gateway() == STANDBY_NAT.gateway, timeout,
                 f"default route via {STANDBY_NAT.gateway} dev {STANDBY_UPLINK_IF} metric {STANDBY_METRIC}")

    def standby_carrier(self, on: bool) -> None:
        """wlan0 loses (False) or regains (True) carrier: its peer ``nw:lan`` goes down / up.
        Returns once the node's kernel reports the new carrier state."""
        self.nw.ip("link", "set", self.router_if, "up" if on else "down")
        wait_for(lambda: self.node.has_carrier(STANDBY_UPLINK_IF) == on, 10,
                 f"carrier {'on' if on else 'off'} on {self.node.name}/{STANDBY_UPLINK_IF}")

    def standby_new_lease(self, timeout: float = 30.0) -> str:
        """A new lease with another address on wlan0: a new client id, dhclient restarted (no
        release, same lease file): NAK of the old address, EXPIRE (it goes), DISCOVER, a new lease.
        Returns the new address/prefix once it and its default route (metric STANDBY_METRIC) are in
        place; fails if the address did not change."""
        before = self.standby_address()
        self.standby_dhcp.client_id = self._next_client_id()
        after = self.standby_dhcp.restart(timeout)
        self._await_standby_route(timeout)
        if after == before:
            raise AssertionError(f"{STANDBY_UPLINK_IF} kept {before} with client id "
                                 f"{self.standby_dhcp.client_id}")
        return after

    # -- the standby's miredo ---------------------------------------------------------------------
    @property
    def standby_conf(self) -> Path:
        return self.miredo_dir / "miredo-standby.conf"

    @property
    def standby_pidfile(self) -> Path:
        return self.miredo_dir / "miredo-standby.pid"

    @property
    def standby_log(self) -> Path:
        return self.miredo_dir / "miredo-standby.log"

    def launch_standby_miredo(self, hook: Path, timeout: float = 10.0) -> TrackedProcess:
        """Start the second miredo in the node from the config at :attr:`standby_conf` as it is
        now (first written by the lab, ``InterfaceName teredo2`` and the lab's server, if there is
        no file), ``hook`` bind-mounted on /etc/miredo/client-hook in its own mount namespace.
        Returns once the pid file names it and its worker runs; does NOT wait for qualification."""
        if self.standby_miredo is not None and not self.standby_miredo.exited():
            raise RuntimeError("the standby miredo already runs in this lab")
        if not self.standby_conf.exists():
            self.standby_conf.write_text(miredo_client_config(f"InterfaceName {STANDBY_TUNNEL_IF}"))
        return self.bring_up_miredo(self.node, self.standby_conf, self.standby_pidfile, self.standby_log,
                                    hook, timeout, held=lambda proc: setattr(self, "standby_miredo", proc))

    def stop_standby_miredo(self) -> None:
        if self.standby_miredo is not None:
            self.stop_process(self.standby_miredo)
            self.standby_miredo = None

    def miredos(self) -> list[TrackedProcess]:
        """The node's two miredos and the relay's."""
        standby = [self.standby_miredo] if self.standby_miredo is not None else []
        return [*super().miredos(), *standby]

    def miredo_client(self, iface: str = TEREDO_IF) -> tuple[TrackedProcess | None, Path]:
        """The standby's miredo for ``teredo2``, else :meth:`TeredoLab.miredo_client`."""
        if iface == STANDBY_TUNNEL_IF:
            return self.standby_miredo, self.standby_log
        return super().miredo_client(iface)

    def standby_ip(self) -> str:
        """wlan0's IPv4 address without its prefix; it must have one."""
        address = self.standby_address()
        assert address is not None, f"no address on {STANDBY_UPLINK_IF}"
        return address.split("/")[0]

    def standby_miredo_pid(self) -> int:
        """The pid the standby miredo's pid file names."""
        return int(self.standby_pidfile.read_text().split()[0])


__all__ = [
    "BOTH_TUNNELS",
    "STANDBY_MAC",
    "STANDBY_METRIC",
    "STANDBY_NAT",
    "STANDBY_ROUTER",
    "STANDBY_TUNNEL_IF",
    "STANDBY_UPLINK_IF",
    "StandbyLab",
]
