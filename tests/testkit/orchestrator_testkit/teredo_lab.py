"""Real-kernel Teredo lab: a miredo client behind one of two NATs, a miredo-server on a "public" WAN.

Why: the Teredo plugin reacts to what miredo and its client hook really do to the kernel when the
node moves (the hook sets the address; a SIGHUP re-creates the ``teredo`` link).  This lab runs
the real Debian ``miredo`` and ``miredo-server`` (1.2.6) in private network namespaces, built on
:mod:`lab` (``AccessLab``'s one-port-at-a-time bridge, its DHCP clients and dnsmasq).

Topology (namespaces ``orch<PID>-<short>``)::

    srv:wan 198.51.100.1/24 + .2/24 --- p-srv ]
                                              ] wan: br0 (WAN, 198.51.100.0/24)
    na:wan 198.51.100.11/24 --- p-na ---------]
    nb:wan 198.51.100.12/24 --- p-nb ---------]
    nc:wan 198.51.100.13/24 --- p-nc ---------]

    na:lan 10.1.0.1/24  dnsmasq .100-.150 --- p-na ]
    nb:lan 10.2.0.1/24  dnsmasq .100-.150 --- p-nb ] sw: br0 (only one router port at a time)
    nc:lan 10.1.0.1/24  dnsmasq .100-.150 --- p-nc ]
    node:eth0 (dhclient) ------------------- n0    ]

* ``srv`` runs ``miredo-server`` (ServerBindAddress 198.51.100.1; it also binds .2: a Teredo
  server needs A and A+1).  The server silently ignores requests from private sources, and miredo
  refuses a private server address: hence documentation-range "public" addresses and real NAT.
* ``nc`` is "the same address and gateway behind another router": na's LAN subnet, range and
  gateway, its own LAN MAC (02:00:00:00:1c:01) and outside address.  dnsmasq picks a new client's
  address from a hash of its MAC, and is authoritative, so the node keeps its address there (an
  INIT-REBOOT request for it is ACKed, a fresh DISCOVER is offered the same one; measured); only
  the gateway's MAC differs, and the Teredo mapping (198.51.100.13 instead of .11) once miredo
  qualifies again.
* the routers masquerade (nftables, inside the router namespace) from ``lan`` out of ``wan``,
  IPv4 forwarding on, dnsmasq on ``lan``; their default route points at nothing (the WAN is
  one subnet).  IPv6 is off in ``sw``, ``wan`` and the routers; the node keeps the defaults.
* ``node`` starts on ``na``'s LAN with a dhclient lease (address + default route) before
  ``__enter__`` returns.

Host safety (on top of :mod:`lab`'s rules):
  * every miredo / miredo-server gets a private config, pid file and log in ``lab.tmp`` and runs
    in the foreground (``-f``) as a tracked process of the lab (killed by process group / PID);
    /etc/miredo.conf, /etc/miredo-server.conf and /run are never used; ``miredo.service`` is
    never touched; a config must pass ``miredo-checkconf`` first;
  * the client hook path is compiled into miredo as ``/etc/miredo/client-hook``: it is replaced
    by a bind mount inside miredo's OWN mount namespace (``ip netns exec`` gives each process a
    private one, slave of the host's, so nothing propagates back); the host file is only read.

API
---
``TEREDO_LAB_BINARIES``, ``teredo_requirements_problem() -> str | None`` (root, binaries, the
    ``miredo`` user, /dev/net/tun, the stock hook: a reason to skip, or None)
``stock_hook_path() -> Path``
    Debian's packaged /etc/miredo/client-hook (checked against the package's conffile md5).
``is_teredo(addr) -> bool``; ``teredo_client_ipv4(addr) -> str`` (the mapped IPv4 of the NAT);
``teredo_server_ipv4(addr) -> str``; ``teredo_client_port(addr) -> int``
``miredo_client_config(extra="") -> str`` (a directive in ``extra`` replaces the default)
``write_env_dump_hook(path, dump, target) -> Path``; ``read_hook_calls(dump) -> list[dict[str, str]]``
    a wrapper hook recording the exact environment miredo gives the hook, then exec'ing ``target``
``host_hook_fingerprint() -> (sha256, mounted)``; ``with leaving_nothing_behind(lab) as lab:`` enters
    any ``TeredoLab`` and, once it closed, asserts no namespace, process or host hook change remains

``TeredoLab(lease="2m", renew_after=None, attached="na")`` (an ``AccessLab``)
    ``.srv``, ``.wan``, ``.sw``, ``.node``, ``.routers: {"na", "nb", "nc"}``, ``.node_if == "eth0"``
    ``.dhcp: Dhclient`` (the node's, already bound); ``.server: TrackedProcess`` (miredo-server)
    ``.attach(short)``, ``.carrier(on)``, ``.monitor()`` (inherited from AccessLab)
    ``.move_to(short, timeout=30) -> str``  attach the other router, ``dhcp.restart()``, wait for
        the new default route; returns the new address/prefix
    ``.move_behind(short, timeout=10) -> str``  carrier off, attach ``short``, carrier on: a router
        with the current subnet and gateway (``nc`` from ``na`` and back); dhclient keeps running
        and the kernel reports nothing but the carrier; returns the (unchanged) address/prefix
    ``.stock_hook_copy() -> Path``  a private copy of the stock hook (for wrappers: inside
        miredo's mount namespace the stock path is the bind-mounted hook itself)
    ``.start_miredo(hook, config_extra="", timeout=10) -> TrackedProcess``
    ``.launch_miredo(ns, conf, pidfile, log, hook) -> TrackedProcess`` (checkconf, start, no wait) and
    ``.await_miredo(proc, pidfile, log, timeout=10)``: any miredo in any namespace (e.g. a relay);
    ``.bring_up_miredo(ns, conf, pidfile, log, hook, timeout=10, held=None) -> TrackedProcess``
        both, ``held(proc)`` called in between
    ``.miredo_conf``, ``.miredo_pidfile``, ``.miredo_log: Path`` (one log, appended across
    restarts); ``.miredo: TrackedProcess | None``; ``.server_log: Path`` (miredo-server's)
    ``.miredo_pid() -> int`` (from the pid file); ``.sighup_miredo() -> float`` (monotonic time sent)
    ``.stop_miredo()``; ``.miredos() -> list[TrackedProcess]`` every miredo the lab holds (its
        subclasses add theirs)
    ``.teredo_addresses(iface="teredo") -> list[str]`` (global 2001:0::/32 on ``iface``, no prefix);
    ``.teredo_ifindex(iface="teredo") -> int | None``
    ``.wait_teredo_address(timeout=10, exclude=(), iface="teredo") -> str``
    ``.miredo_client(iface="teredo") -> (TrackedProcess | None, Path)`` the miredo owning ``iface``
        and its log (a lab with a second client in the node overrides it)
    ``.nat_router(short, spec, lan_peer, lan_peer_if, peer_mac=None, attached=True) -> Namespace``
        one more NAT router on the WAN (masquerade, forwarding, dnsmasq on its ``lan``)

What miredo does here (miredo 1.2.6, kernel 6.18, stock Debian hook, 2 cores; measured):

* process tree: the pid file's process is the root supervisor (= ``start_miredo()``'s
  TrackedProcess, same process group); it forks a worker running as user ``miredo`` (it holds
  /dev/net/tun, shared by all namespaces) which forks ``miredo-privproc`` (root, CAP_NET_ADMIN
  only) which runs the hook.  With ``-f`` every message goes to stderr (no syslog needed).
* start -> Teredo address on ``teredo`` (kernel NEWADDR timestamp): 26-63 ms, median 31-41 ms
  (two runs of 15 and 20; polling adds 3-6 ms); ``start_miredo()`` itself returns in 20-40 ms.
  The hook starts ~18 ms after the start; the stock hook's ``ip`` calls put the address ~10+ ms
  later (flush, flush, link, mtu, link-local, then the address).
* move (dhclient has the new lease and default route) then SIGHUP -> new address: 33-87 ms,
  median 37-44 ms.  The hook runs ``down`` (~4 ms after the signal, IFINDEX old), ``destroy``
  (~12 ms later, OLD_STATE=up!), then ``up`` (~10-33 ms later) on a NEW ifindex with no OLD_*
  variables; the first ``up`` after start has none either.  No PATH, cwd /, uid 0.
* besides the hook's fe80::ffff:ffff:ffff the kernel gives ``teredo`` its own random link-local.
* right after a move nothing changes without a SIGHUP (miredo does not watch netlink; per
  FIELD-NOTES it notices at its next 30 s refresh, or after ~100 s).
* ``stop_miredo()`` (SIGTERM to the group): the hook still runs ``down`` + ``destroy``, the
  ``teredo`` link goes, miredo removes its pid file; 20-50 ms.
* the address encodes the NAT's outside address (``teredo_client_ipv4``: 198.51.100.11 behind
  ``na``, .12 behind ``nb``, .13 behind ``nc``) and the server (198.51.100.1 = c633:6401);
  MTU 1280 (server default).

Example::

    with TeredoLab() as lab:                     # node on na's LAN with a lease
        lab.start_miredo(stock_hook_path())
        first = lab.wait_teredo_address()        # 2001:0:c633:6401:...
        lab.move_to("nb")
        lab.sighup_miredo()
        second = lab.wait_teredo_address(exclude={first})
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .access_lab import ACCESS_LAB_BINARIES, NODE_MAC, AccessLab
from .netns import (
    Namespace,
    TrackedProcess,
    alive,
    children,
    descendants,
    lab_namespaces,
    requirements_problem,
    tail,
    wait_for,
)

# --------------------------------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------------------------------
STOCK_HOOK = Path("/etc/miredo/client-hook")  # compiled into miredo; never written
MIREDO_PACKAGE = "miredo"
TEREDO_PREFIX = ipaddress.IPv6Network("2001::/32")
TEREDO_IF = "teredo"

SERVER_ADDRESS = "198.51.100.1"    # primary; the server also binds SERVER_ADDRESS2 (A + 1)
SERVER_ADDRESS2 = "198.51.100.2"
WAN_PREFIXLEN = 24

TEREDO_LAB_BINARIES = (*ACCESS_LAB_BINARIES, "miredo", "miredo-server", "nft", "dhclient")


@dataclass(frozen=True)
class NatSpec:
    """A NAT router: WAN address, LAN gateway/prefix, DHCP range, LAN MAC."""

    wan: str
    gateway: str
    prefixlen: int
    range_start: str
    range_end: str
    mac: str


NATS: dict[str, NatSpec] = {
    "na": NatSpec("198.51.100.11", "10.1.0.1", 24, "10.1.0.100", "10.1.0.150", "02:00:00:00:1a:01"),
    "nb": NatSpec("198.51.100.12", "10.2.0.1", 24, "10.2.0.100", "10.2.0.150", "02:00:00:00:1b:01"),
    # Same LAN subnet, range and gateway as na, another box with another outside address: "the same
    # address and gateway behind another router".  Only the gateway's MAC and the NAT's outside
    # address (hence the Teredo mapping) tell it from na.
    "nc": NatSpec("198.51.100.13", "10.1.0.1", 24, "10.1.0.100", "10.1.0.150", "02:00:00:00:1c:01"),
}

# Masquerade what leaves the WAN side, forward everything (a plain home router).
_NAT_RULESET = """\
table ip orchlab_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" masquerade
    }
}
"""


# --------------------------------------------------------------------------------------------------
# helpers that need no lab
# --------------------------------------------------------------------------------------------------
def _packaged_md5(path: Path, package: str = MIREDO_PACKAGE) -> str | None:
    """md5 dpkg recorded for conffile ``path`` of ``package`` (None if unknown)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}\n", package], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == str(path):
            return fields[1]
    return None


def stock_hook_path() -> Path:
    """Debian's packaged client hook, /etc/miredo/client-hook (read-only use).

    Raises ``FileNotFoundError`` if miredo is not installed and ``RuntimeError`` if the file is not
    the packaged one (locally modified conffile): a benchmark of "the stock hook" must really run
    the stock hook."""
    if not STOCK_HOOK.is_file():
        raise FileNotFoundError(f"{STOCK_HOOK} missing: install miredo (scripts/install-deps)")
    expected = _packaged_md5(STOCK_HOOK)
    actual = hashlib.md5(STOCK_HOOK.read_bytes()).hexdigest()
    if expected is not None and actual != expected:
        raise RuntimeError(f"{STOCK_HOOK} was modified locally (md5 {actual}, package says {expected})")
    return STOCK_HOOK


def teredo_requirements_problem() -> str | None:
    """Why the Teredo lab cannot run here (for ``pytest.skip``), or None."""
    problem = requirements_problem(*TEREDO_LAB_BINARIES)
    if problem:
        return problem
    try:
        pwd.getpwnam("miredo")
    except KeyError:
        return "user 'miredo' missing (the miredo package creates it; run scripts/install-deps)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun missing (miredo needs a tun device)"
    if not Path("/usr/libexec/miredo/miredo-privproc").exists():
        return "/usr/libexec/miredo/miredo-privproc missing (broken miredo install)"
    try:
        stock_hook_path()
    except (FileNotFoundError, RuntimeError) as e:
        return str(e)
    return None


def is_teredo(addr: str) -> bool:
    """True for an address in 2001:0::/32 (prefix length, if any, ignored)."""
    try:
        return ipaddress.IPv6Address(addr.split("/")[0]) in TEREDO_PREFIX
    except ValueError:
        return False


def teredo_server_ipv4(addr: str) -> str:
    """The server IPv4 embedded in a Teredo address (bits 32-63)."""
    raw = int(ipaddress.IPv6Address(addr.split("/")[0]))
    return str(ipaddress.IPv4Address((raw >> 64) & 0xFFFFFFFF))


def teredo_client_ipv4(addr: str) -> str:
    """The client's mapped (NAT outside) IPv4 embedded in a Teredo address (last 32 bits, inverted)."""
    raw = int(ipaddress.IPv6Address(addr.split("/")[0]))
    return str(ipaddress.IPv4Address((raw & 0xFFFFFFFF) ^ 0xFFFFFFFF))


def teredo_client_port(addr: str) -> int:
    """The client's mapped UDP port embedded in a Teredo address (bits 80-95, inverted)."""
    raw = int(ipaddress.IPv6Address(addr.split("/")[0]))
    return ((raw >> 32) & 0xFFFF) ^ 0xFFFF


def _directive(line: str) -> str | None:
    words = line.split()
    return words[0].lower() if words and not words[0].startswith("#") else None


def miredo_client_config(extra: str = "") -> str:
    """The lab's client config: ``RelayType client``, ``InterfaceName teredo``, ``ServerAddress
    198.51.100.1``, then ``extra``.  A directive named in ``extra`` REPLACES the default one:
    miredo uses the first occurrence of a directive and only warns about later ones."""
    names = {d for line in extra.splitlines() if (d := _directive(line))}
    defaults = ["RelayType client", f"InterfaceName {TEREDO_IF}", f"ServerAddress {SERVER_ADDRESS}"]
    lines = ["# private config of a TeredoLab miredo"]
    lines += [line for line in defaults if _directive(line) not in names]
    lines += extra.splitlines()
    return "\n".join(lines) + "\n"


def _check_hook(hook: Path) -> None:
    """The hook runs as root (miredo-privproc): root-owned, executable, not group/other-writable."""
    st = hook.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"hook {hook} is not a regular file")
    if st.st_uid != 0:
        raise ValueError(f"hook {hook} must be owned by root (uid {st.st_uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(f"hook {hook} must not be writable by group or others (mode {st.st_mode:o})")
    if not st.st_mode & stat.S_IXUSR:
        raise ValueError(f"hook {hook} is not executable")


def write_env_dump_hook(path: Path, dump: Path, target: Path | None) -> Path:
    """Write a wrapper hook at ``path``: it appends one record per call to ``dump`` (the exact
    environment miredo passed, read from /proc/$$/environ so the shell adds nothing, plus time,
    cwd, uid and argv), then execs ``target`` (None: exit 0).  Read it with :func:`read_hook_calls`.

    Absolute paths only: miredo runs the hook with no PATH."""
    exec_line = f'exec {shlex.quote(str(target))} "$@"' if target is not None else "exit 0"
    q = shlex.quote(str(dump))
    path.write_text(
        "#!/bin/sh\n"
        "# Test wrapper: record the environment miredo passes to its client hook, then run the hook.\n"
        f"{{ /bin/cat /proc/$$/environ\n"
        f"  printf '@time=%s\\0@cwd=%s\\0@uid=%s\\0@argv=%s\\0\\036' "
        f'"$(/bin/date +%s.%N)" "$(/bin/pwd)" "$(/usr/bin/id -u)" "$*"\n'
        f"}} >> {q}\n"
        f"{exec_line}\n")
    path.chmod(0o755)
    return path


def read_hook_calls(dump: Path) -> list[dict[str, str]]:
    """The records :func:`write_env_dump_hook` wrote, oldest first: ``{"STATE": "up", ...,
    "@time": "1700000000.123", "@cwd": "/", "@uid": "0", "@argv": ""}``."""
    if not dump.exists():
        return []
    calls = []
    for record in dump.read_bytes().decode(errors="replace").split("\x1e"):
        if not record.strip("\0\n"):
            continue
        entry: dict[str, str] = {}
        for item in record.split("\0"):
            if "=" in item:
                key, _, value = item.partition("=")
                entry[key] = value
        calls.append(entry)
    return calls


# --------------------------------------------------------------------------------------------------
# the lab
# --------------------------------------------------------------------------------------------------
class TeredoLab(AccessLab):
    """Teredo topology (see the module docstring): miredo-server on a WAN, three NAT routers, a
    node on one router's LAN at a time.  ``__enter__`` returns with the server listening on
    UDP 3544 (both addresses), both routers serving DHCP and the node holding a lease from
    ``attached`` (default ``na``)."""

    wan_if = "wan"

    def __init__(self, lease: str = "2m", renew_after: int | None = None, attached: str = "na",
                 prefix: str | None = None) -> None:
        super().__init__(renew_after=renew_after, lease=lease, attached=attached, prefix=prefix)
        self.nats = NATS
        self.server: TrackedProcess | None = None
        self.miredo: TrackedProcess | None = None
        self._miredo_dir: Path | None = None

    def __enter__(self) -> TeredoLab:
        super().__enter__()  # builds through _build (below), closes the lab on failure
        return self

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        if self.initial not in NATS:
            raise KeyError(f"attached={self.initial!r}: one of {sorted(NATS)}")
        self.node = self.namespace("node")
        self.sw = self.namespace("sw")
        self.wan = self.namespace("wan")
        self.srv = self.namespace("srv")
        for ns in (self.sw, self.wan):
            self._no_ipv6(ns)
        for sw in (self.sw, self.wan):
            sw.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
            sw.ip("link", "set", "br0", "up")
        self.veth(self.node, self.node_if, self.sw, self.node_port, mac_a=NODE_MAC)
        self.sw.ip("link", "set", self.node_port, "master", "br0")

        # the Teredo server: A and A+1 on one interface
        self.veth(self.srv, self.wan_if, self.wan, "p-srv")
        self.wan.ip("link", "set", "p-srv", "master", "br0")
        for addr in (SERVER_ADDRESS, SERVER_ADDRESS2):
            self.srv.ip("addr", "add", f"{addr}/{WAN_PREFIXLEN}", "dev", self.wan_if)

        for short, spec in NATS.items():
            # the LAN side's sw port starts detached, as in AccessLab
            self.routers[short] = self.nat_router(short, spec, self.sw, self.port(short), attached=False)

        self.server = self._start_server()
        self.attach(self.initial)
        self.dhcp = self.dhclient()
        self.dhcp.start()
        gw = NATS[self.initial].gateway
        wait_for(lambda: self.node.default_route() == gw, 10, f"default route via {gw} in the node")

    def nat_router(self, short: str, spec: NatSpec, lan_peer: Namespace, lan_peer_if: str,
                   peer_mac: str | None = None, attached: bool = True) -> Namespace:
        """A NAT router namespace ``short`` (IPv6 off): ``wan`` (``spec.wan``) on the WAN bridge,
        ``lan`` (``spec.gateway``, MAC ``spec.mac``) a veth to ``lan_peer_if`` in ``lan_peer``
        (``peer_mac`` its MAC; ``attached=False``: that end is set down, no carrier on ``lan``), IPv4
        forwarding, nftables masquerade out of ``wan``, dnsmasq on ``lan`` (in ``.dnsmasqs[short]``,
        listening when this returns).  Not added to ``.routers`` (the routers the node's eth0 can
        be attached to)."""
        r = self.namespace(short)
        self._no_ipv6(r)
        # WAN side
        self.veth(r, self.wan_if, self.wan, self.port(short))
        self.wan.ip("link", "set", self.port(short), "master", "br0")
        r.ip("addr", "add", f"{spec.wan}/{WAN_PREFIXLEN}", "dev", self.wan_if)
        # LAN side
        self.veth(r, self.router_if, lan_peer, lan_peer_if, mac_a=spec.mac, mac_b=peer_mac)
        if not attached:
            lan_peer.ip("link", "set", lan_peer_if, "down")
        r.ip("addr", "add", f"{spec.gateway}/{spec.prefixlen}", "dev", self.router_if)
        r.sysctl("net.ipv4.ip_forward", 1)
        r.run("nft", "-f", "-", input=_NAT_RULESET)
        self.dnsmasqs[short] = self.dnsmasq(
            r, self.router_if, range_start=spec.range_start, range_end=spec.range_end,
            router=spec.gateway, lease=self.lease, renew_after=self.renew_after)
        return r

    @property
    def server_log(self) -> Path:
        return self.tmp / "miredo-server" / "miredo-server.log"

    def _start_server(self, timeout: float = 10.0) -> TrackedProcess:
        """miredo-server in ``srv`` with private config / pid file / log, in the foreground (its
        worker runs as user ``miredo``, the compiled-in default).  Returns once both addresses
        listen on UDP 3544."""
        d = self.tmp / "miredo-server"
        d.mkdir()
        conf = d / "miredo-server.conf"
        conf.write_text("# private config of a TeredoLab miredo-server\n"
                        f"ServerBindAddress {SERVER_ADDRESS}\n")
        pidfile = d / "miredo-server.pid"
        proc = self.srv.spawn(["miredo-server", "-f", "-c", str(conf), "-p", str(pidfile)],
                              log=self.server_log)

        def listening() -> bool:
            proc.check_alive(f"miredo-server in {self.srv.name}")
            out = self.srv.run("ss", "-H", "-uln", "sport = :3544").stdout
            return SERVER_ADDRESS in out and SERVER_ADDRESS2 in out

        wait_for(listening, timeout, f"miredo-server in {self.srv.name} to listen on "
                 f"{SERVER_ADDRESS}:3544 and {SERVER_ADDRESS2}:3544")
        return proc

    # -- moves ------------------------------------------------------------------------------------
    def move_to(self, short: str, timeout: float = 30.0) -> str:
        """Attach router ``short``'s LAN instead of the current one, restart the node's dhclient
        (no release: NAK of the old address, then a new lease) and wait for the new default route.
        Returns the new address/prefix."""
        if short not in NATS:
            raise KeyError(f"unknown router {short!r} (have {sorted(NATS)})")
        self.attach(short)
        addr = self.dhcp.restart(timeout)
        gw = NATS[short].gateway
        wait_for(lambda: self.node.default_route() == gw, timeout, f"default route via {gw} in the node")
        return addr

    def move_behind(self, short: str, timeout: float = 10.0) -> str:
        """Carrier off, attach router ``short``, carrier on: a move to another router that serves
        the node's current subnet with the same gateway address (``nc`` from ``na``, and back).

        Why a carrier cycle and no DHCP: that is what a node sees when it is plugged into, or
        associates with, another box of the same kind; dhclient does not watch the carrier and
        the lease stays valid (see ``nc`` in the module docstring), so the kernel reports nothing
        but the carrier changes.  Only the gateway's MAC and the NAT's outside address differ.
        Returns the address/prefix, checked to be the one the node had."""
        if short not in NATS:
            raise KeyError(f"unknown router {short!r} (have {sorted(NATS)})")
        if self.attached is None or NATS[short].gateway != NATS[self.attached].gateway:
            raise ValueError(f"{short} does not serve the subnet of {self.attached}: use move_to")
        before = self.dhcp.address()
        self.carrier(False)
        self.attach(short)
        self.carrier(True)
        after = self.dhcp.address()
        gw = NATS[short].gateway
        wait_for(lambda: self.node.default_route() == gw, timeout, f"default route via {gw} in the node")
        if after is None or after != before:
            raise AssertionError(f"the node's address changed behind {short}: {before} -> {after}")
        return after

    # -- miredo -----------------------------------------------------------------------------------
    @property
    def miredo_dir(self) -> Path:
        if self._miredo_dir is None:
            self._miredo_dir = self.tmp / "miredo"
            self._miredo_dir.mkdir()
        return self._miredo_dir

    @property
    def miredo_conf(self) -> Path:
        return self.miredo_dir / "miredo.conf"

    @property
    def miredo_pidfile(self) -> Path:
        return self.miredo_dir / "miredo.pid"

    @property
    def miredo_log(self) -> Path:
        return self.miredo_dir / "miredo.log"

    def stock_hook_copy(self) -> Path:
        """A private, root-owned copy of the stock hook (same bytes) in lab.tmp.

        Why: a wrapper hook cannot exec /etc/miredo/client-hook, because inside miredo's mount
        namespace that path IS the bind-mounted wrapper."""
        copy = self.miredo_dir / "stock-client-hook"
        if not copy.exists():
            shutil.copyfile(stock_hook_path(), copy)
            copy.chmod(0o755)
        return copy

    def start_miredo(self, hook: Path, config_extra: str = "", timeout: float = 10.0) -> TrackedProcess:
        """Start ``miredo -f -c CONF -p PIDFILE`` in the node with ``hook`` bind-mounted on
        /etc/miredo/client-hook (only in miredo's own mount namespace).

        CONF is private (:func:`miredo_client_config`: the defaults, a directive in
        ``config_extra`` replaces its default) and must pass ``miredo-checkconf`` (CommandError
        otherwise).  stdout/stderr go to :attr:`miredo_log`.  Returns
        once the pid file names the started process (the supervisor; the pid of the returned
        TrackedProcess) and its worker is running; does NOT wait for qualification
        (:meth:`wait_teredo_address`)."""
        if self.miredo is not None and not self.miredo.exited():
            raise RuntimeError("miredo already running in this lab")
        self.miredo_conf.write_text(miredo_client_config(config_extra))
        return self.bring_up_miredo(self.node, self.miredo_conf, self.miredo_pidfile, self.miredo_log, hook,
                                    timeout, held=lambda proc: setattr(self, "miredo", proc))

    def bring_up_miredo(self, ns: Namespace, conf: Path, pidfile: Path, log: Path, hook: Path | None,
                        timeout: float = 10.0,
                        held: Callable[[TrackedProcess], None] | None = None) -> TrackedProcess:
        """:meth:`launch_miredo`, then :meth:`await_miredo`; ``held`` gets the process in between
        (the lab records it before waiting, so that a miredo that does not come up is still held)."""
        proc = self.launch_miredo(ns, conf, pidfile, log, hook)
        if held is not None:
            held(proc)
        self.await_miredo(proc, pidfile, log, timeout)
        return proc

    def launch_miredo(self, ns: Namespace, conf: Path, pidfile: Path, log: Path,
                      hook: Path | None) -> TrackedProcess:
        """Check ``conf`` with ``miredo-checkconf`` (as the shipped unit's ExecStartPre does: miredo
        itself only warns about an unknown or repeated directive) and start ``miredo -f -c CONF -p
        PIDFILE`` in ``ns`` as a tracked process logging to ``log``.  With ``hook``, it is first
        bind-mounted on /etc/miredo/client-hook inside miredo's own mount namespace (a client runs
        it; a relay runs no hook).  Returns at once: see :meth:`await_miredo`."""
        argv: list[str]
        if hook is not None:
            hook = Path(hook).resolve()
            _check_hook(hook)
            if not STOCK_HOOK.exists():
                raise FileNotFoundError(f"{STOCK_HOOK} missing: nothing to bind the hook on")
        ns.run("miredo-checkconf", "-f", str(conf))
        pidfile.unlink(missing_ok=True)
        if hook is not None:
            script = ('set -e; mount --bind "$1" ' + shlex.quote(str(STOCK_HOOK))
                      + '; exec miredo -f -c "$2" -p "$3"')
            argv = ["sh", "-c", script, "sh", str(hook), str(conf), str(pidfile)]
        else:
            argv = ["miredo", "-f", "-c", str(conf), "-p", str(pidfile)]
        return ns.spawn(argv, log=log)

    @staticmethod
    def await_miredo(proc: TrackedProcess, pidfile: Path, log: Path, timeout: float = 10.0) -> None:
        """Return once ``pidfile`` names ``proc`` (miredo's root supervisor) and its worker is
        forked; fail at once (with the log) if it died."""
        where = proc.ns.name if proc.ns is not None else "?"

        def running() -> bool:
            proc.check_alive(f"miredo in {where}")
            try:
                pid = int(pidfile.read_text().split()[0])
            except (FileNotFoundError, IndexError, ValueError):
                return False
            return pid == proc.pid and bool(children(proc.pid))

        wait_for(running, timeout, f"miredo in {where} to write {pidfile} and fork its worker (log {log})",
                 interval=0.002)

    def miredo_pid(self) -> int:
        """PID in the private pid file (the root supervisor)."""
        return int(self.miredo_pidfile.read_text().split()[0])

    def sighup_miredo(self) -> float:
        """SIGHUP to the pid file's process (a full restart of miredo's worker: re-qualification,
        new ``teredo`` link).  Returns ``time.monotonic()`` just before the signal."""
        pid = self.miredo_pid()
        if self.miredo is None or pid != self.miredo.pid or self.miredo.exited():
            raise RuntimeError(f"pid file {self.miredo_pidfile} ({pid}) is not our running miredo")
        t = time.monotonic()
        os.kill(pid, signal.SIGHUP)
        return t

    def stop_miredo(self) -> None:
        if self.miredo is not None:
            self.stop_process(self.miredo)
            self.miredo = None

    def miredos(self) -> list[TrackedProcess]:
        """Every miredo this lab started and still holds.  Why: their workers and privprocs are not
        tracked by the lab, so whoever checks that nothing is left behind must look below these.  A
        lab running more miredos (a relay, a second client) adds them."""
        return [self.miredo] if self.miredo is not None else []

    # -- kernel state of the tunnel -----------------------------------------------------------------
    def miredo_client(self, iface: str = TEREDO_IF) -> tuple[TrackedProcess | None, Path]:
        """The node's miredo that owns tunnel ``iface`` and its log (the process None while not
        started).  A lab with more clients in the node overrides this."""
        if iface != TEREDO_IF:
            raise KeyError(f"no miredo client for {iface!r} in this lab (only {TEREDO_IF!r})")
        return self.miredo, self.miredo_log

    def _teredo_link(self, iface: str = TEREDO_IF) -> list[dict[str, Any]]:
        """``ip -j -6 addr show dev IFACE`` in the node; [] while the link does not exist."""
        res = self.node.ip("-j", "-6", "addr", "show", "dev", iface, check=False)
        if res.returncode != 0 or not res.stdout.strip():
            return []
        return list(json.loads(res.stdout))

    def teredo_addresses(self, iface: str = TEREDO_IF) -> list[str]:
        """Global 2001:0::/32 addresses on ``iface`` in the node (no prefix length); [] if the
        interface does not exist."""
        return [str(a["local"]) for link in self._teredo_link(iface)
                for a in link.get("addr_info", [])
                if a.get("scope") == "global" and is_teredo(str(a.get("local", "")))]

    def teredo_ifindex(self, iface: str = TEREDO_IF) -> int | None:
        links = self._teredo_link(iface)
        return int(links[0]["ifindex"]) if links else None

    def wait_teredo_address(self, timeout: float = 10.0, exclude: Collection[str] = (),
                            iface: str = TEREDO_IF) -> str:
        """Wait until ``iface`` in the node has a global 2001:0::/32 address not in ``exclude``
        and return it (without prefix).  Fails at once if its miredo (:meth:`miredo_client`) died."""
        proc, log = self.miredo_client(iface)

        def found() -> str | None:
            if proc is not None:
                proc.check_alive(f"miredo for {iface} in {self.node.name}")
            return next((a for a in self.teredo_addresses(iface) if a not in exclude), None)

        try:
            return wait_for(found, timeout, f"a Teredo address on {self.node.name}/{iface}"
                            + (f" other than {sorted(exclude)}" if exclude else ""), interval=0.002)
        except AssertionError as e:
            # miredo keeps running when it cannot qualify (e.g. "Teredo server has a non global
            # IPv4 address."): the reason is only in its log.
            raise AssertionError(f"{e}\nmiredo log {log}:\n{tail(log)}") from None


__all__ = [
    "NATS",
    "SERVER_ADDRESS",
    "SERVER_ADDRESS2",
    "STOCK_HOOK",
    "TEREDO_IF",
    "TEREDO_LAB_BINARIES",
    "NatSpec",
    "TeredoLab",
    "host_hook_fingerprint",
    "is_teredo",
    "leaving_nothing_behind",
    "miredo_client_config",
    "read_hook_calls",
    "stock_hook_path",
    "teredo_client_ipv4",
    "teredo_client_port",
    "teredo_requirements_problem",
    "teredo_server_ipv4",
    "write_env_dump_hook",
]


def host_hook_fingerprint() -> tuple[str, bool]:
    """The host's hook bytes, and whether something is mounted on it in the host's namespace."""
    digest = hashlib.sha256(STOCK_HOOK.read_bytes()).hexdigest() if STOCK_HOOK.exists() else ""
    mounted = subprocess.run(["findmnt", "-n", str(STOCK_HOOK)], capture_output=True).returncode == 0
    return digest, mounted


LabT = TypeVar("LabT", bound=TeredoLab)


@contextmanager
def leaving_nothing_behind(lab: LabT) -> Iterator[LabT]:
    """Enter ``lab`` and yield it; once it has closed, none of its namespaces or processes (its
    miredos' workers and privprocs included, see :meth:`TeredoLab.miredos`) may remain, and the
    host's hook must be untouched (:func:`host_hook_fingerprint`).  Why: every lab built on this one
    runs root processes and bind mounts next to the host's own miredo, so the tests of each lab
    check its teardown the same way."""
    before = host_hook_fingerprint()
    pids: list[int] = []
    with lab:
        yield lab
        pids += [p.pid for p in lab.processes]
        for miredo in lab.miredos():
            pids += descendants(miredo.pid)
        names = [ns.name for ns in lab.namespaces]
    left = set(lab_namespaces(lab.prefix))
    assert not set(names) & left, f"namespaces left behind: {set(names) & left}"
    assert not [p for p in pids if alive(p)], "processes left behind"
    assert host_hook_fingerprint() == before, "the host's /etc/miredo/client-hook changed or got a mount"
