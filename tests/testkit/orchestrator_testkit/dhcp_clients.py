"""Real DHCP clients (ISC dhclient, busybox udhcpc) on one interface of a lab namespace.

Every client gets private pid, lease, config and log files in ``lab.tmp``, and runs its script in
a private mount and UTS namespace (``ip netns exec`` + ``unshare --uts``): a private file is
bind-mounted on /etc/resolv.conf, the dhclient hook directories are masked by empty private
directories (the host's hooks restart timesyncd, call resolvconf...), and hostname changes stay in
the private UTS namespace.

API: ``Dhclient(lab, ns, iface, metric=None, client_id=None)`` / ``Udhcpc(lab, ns, iface)`` (one
client on one interface; same methods)
    ``.start(timeout=30) -> str``   address/prefix once the lease is on the interface
    ``.restart(timeout=30) -> str`` stop WITHOUT releasing, start again (dhclient: same lease file)
    ``.renew(timeout=30) -> str``   a genuine in-place renewal (see each class for how)
    ``.release(timeout=15)``        release the lease; the address goes; the client ends
    ``.stop()``                     kill the client, no release: the address stays
    ``.address() -> str | None``    current global IPv4 address/prefix on the interface
    ``.running: bool``
    ``Dhclient.metric: int | None`` (the default route's metric, fixed at creation);
    ``Dhclient.client_id: str | None`` (settable: the next start sends it)

What the kernel reports for each (``ip -ts monitor link address route`` in the node, measured with
isc-dhcp-client 4.4.3-P1, busybox udhcpc 1.35.0, dnsmasq 2.90, kernel 6.18): see the docstrings of
:class:`Dhclient` and :class:`Udhcpc`.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path

from .netns import ETC_RESOLV, Namespace, TrackedProcess, wait_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lab import Lab

# dhclient-script sources these (Debian); on a host they may restart timesyncd or call resolvconf.
DHCLIENT_HOOK_DIRS = ("/etc/dhcp/dhclient-enter-hooks.d", "/etc/dhcp/dhclient-exit-hooks.d")
DHCLIENT_HOOK_FILES = ("/etc/dhcp/dhclient-enter-hooks", "/etc/dhcp/dhclient-exit-hooks")
UDHCPC_DEFAULT_SCRIPT = Path("/etc/udhcpc/default.script")


# --------------------------------------------------------------------------------------------------
# DHCP clients
# --------------------------------------------------------------------------------------------------
def _private_root_argv(resolv: Path, masks: Sequence[tuple[Path, str]], argv: Sequence[str]) -> list[str]:
    """Wrap ``argv`` so it runs with a private hostname and private /etc files.

    ``ip netns exec`` already gave the process its own mount namespace (slave of the host's, so
    nothing propagates back); here a private file is bound on /etc/resolv.conf and each
    (private, target) pair in ``masks`` is bound over ``target`` if the target exists."""
    if not os.path.exists(ETC_RESOLV):
        raise RuntimeError(f"{ETC_RESOLV} does not exist on this host: nothing to bind the private copy on")
    steps = [f"mount --bind {shlex.quote(str(resolv))} {ETC_RESOLV}"]
    for src, target in masks:
        steps.append(f"if [ -e {shlex.quote(target)} ]; then mount --bind {shlex.quote(str(src))} "
                     f"{shlex.quote(target)}; fi")
    script = "set -e; " + "; ".join(steps) + '; exec "$@"'
    return ["unshare", "--uts", "sh", "-c", script, "sh", *argv]


class _DhcpClient:
    """Common part of the two clients: private dir, process, kernel-state queries."""

    kind = "client"

    def __init__(self, lab: Lab, ns: Namespace, iface: str) -> None:
        self.lab = lab
        self.ns = ns
        self.iface = iface
        self.dir = lab.tmp / f"{self.kind}-{ns.short}-{iface}-{lab._next_id()}"
        self.dir.mkdir()
        self.resolv = self.dir / "resolv.conf"
        self.resolv.touch()
        self.log = self.dir / f"{self.kind}.log"
        self.log.touch()
        self.proc: TrackedProcess | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.ns.name}/{self.iface})"

    @property
    def running(self) -> bool:
        return self.proc is not None and not self.proc.exited()

    def address(self) -> str | None:
        """Current global IPv4 'address/prefix' on the interface, or None."""
        addrs = self.ns.addresses(self.iface, 4)
        return addrs[0] if addrs else None

    def stop(self) -> None:
        """Kill the client (SIGTERM to its group, then SIGKILL): no release, the address stays."""
        if self.proc is not None:
            self.lab.stop_process(self.proc)
            self.proc = None

    def restart(self, timeout: float = 30.0) -> str:
        """Stop WITHOUT releasing, then start again (what a link-up hook does after a move)."""
        self.stop()
        return self.start(timeout)

    def start(self, timeout: float = 30.0) -> str:
        raise NotImplementedError

    def _log_size(self) -> int:
        return self.log.stat().st_size

    def _log_since(self, offset: int) -> str:
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _wait_address(self, ip: str, timeout: float) -> str:
        """Wait until ``ip`` is on the interface; return it as address/prefix."""
        def present() -> str | None:
            return next((a for a in self.ns.addresses(self.iface) if a.split("/")[0] == ip), None)

        return wait_for(present, timeout, f"{ip} on {self.ns.name}/{self.iface}")


class Dhclient(_DhcpClient):
    """ISC dhclient in the foreground (``-d -v -1``) with private ``-pf``/``-lf``/``-cf`` (empty).

    The stock Debian dhclient-script does the kernel work.  What the kernel reports in the node
    (``ip -ts monitor link address route``; measured):

    * first lease (``start``): NEWADDR (``dynamic``, valid/preferred lifetime = lease), then the
      local, broadcast and subnet routes in the same millisecond, then ~1-2 ms later the default
      route (RTM_NEWROUTE default via GW).
    * ``restart()`` on the SAME network (INIT-REBOOT with the same lease file; the address is
      still on the interface because ``stop`` does not release): the server ACKs and
      dhclient-script (reason REBOOT) runs ``ip addr add``, which fails with "Address already
      assigned"; the default route add fails silently too.  The kernel reports NOTHING, and the
      address keeps its OLD, decreasing lifetimes until the next real renewal.  It is not a
      renewal as the kernel sees it.
    * ``restart()`` after a move (attach another router, other subnet): REQUEST old address ->
      NAK -> the client runs EXPIRE: DELADDR of the old address, then deletions of its
      subnet/broadcast/local routes; the old default route disappears with NO deletion event.
      Then DISCOVER/OFFER/REQUEST/ACK and the first-lease sequence for the new address (~11-13
      ms between DELADDR and the new NEWADDR here).
    * ``restart()`` after a move to a hotspot serving the same subnet (``rc``): the new server
      ACKs the old address: nothing at all in address/route events; only the gateway's MAC
      differs.
    * ``renew()``: a genuine renewal (RENEW at T1, ``ip addr change``): exactly one NEWADDR for
      the same address with fresh lifetimes, nothing else.
    * ``release()``: DELADDR, then the subnet/broadcast/local route deletions; the default route
      vanishes with no deletion event.

    ``metric``: the default route gets ``metric N`` (without it: metric 0, the kernel's default for
    IPv4).  Debian's dhclient-script reads ``IF_METRIC``; dhclient gives its script only its own
    variables plus those named with ``-e VAR=value`` (not its environment), so ``metric`` becomes
    ``-e IF_METRIC=N``.  A second uplink with a higher metric keeps its default route beside the
    first one's (``default via GW dev IF metric N``).

    ``client_id``: sent as option 61 (``send dhcp-client-identifier "ID";`` in the private config,
    rewritten whenever the attribute is set).  dnsmasq keys its leases by the client id when there
    is one, so setting another id and calling ``restart()`` makes the same interface a NEW client:
    its INIT-REBOOT request for the old address is NAKed (that address is leased to the old id),
    the old address goes as after a move (EXPIRE), and a DISCOVER gets another address (dnsmasq
    falls back to matching by MAC only for a lease that has no client id: give the first lease an
    id too).
    """

    kind = "dhclient"

    def __init__(self, lab: Lab, ns: Namespace, iface: str, metric: int | None = None,
                 client_id: str | None = None) -> None:
        super().__init__(lab, ns, iface)
        self.pid_file = self.dir / "dhclient.pid"
        self.lease_file = self.dir / "dhclient.leases"
        self.conf_file = self.dir / "dhclient.conf"
        self.metric = metric
        self.client_id = client_id  # writes conf_file
        self.hooks = self.dir / "empty-hooks.d"
        self.hooks.mkdir()

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @client_id.setter
    def client_id(self, value: str | None) -> None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._:-]+", value):
            raise ValueError(f"client id {value!r}: letters, digits and ._:- only")
        self._client_id = value
        self.conf_file.write_text("" if value is None else f'send dhcp-client-identifier "{value}";\n')

    def _argv(self, *flags: str) -> list[str]:
        masks = [(self.hooks, d) for d in DHCLIENT_HOOK_DIRS]
        masks += [(Path("/dev/null"), f) for f in DHCLIENT_HOOK_FILES]
        env = ["-e", f"IF_METRIC={self.metric}"] if self.metric is not None else []
        dh = ["dhclient", "-4", "-v", *flags, *env, "-pf", str(self.pid_file), "-lf", str(self.lease_file),
              "-cf", str(self.conf_file), self.iface]
        return _private_root_argv(self.resolv, masks, dh)

    def _bound_since(self, offset: int) -> str | None:
        """Address of the first 'bound to X' logged after ``offset`` (dhclient logs it once the
        script has configured the interface)."""
        assert self.proc is not None
        m = re.search(r"^bound to (\S+)", self._log_since(offset), re.M)
        if m:
            return m.group(1)
        self.proc.check_alive(f"dhclient on {self.ns.name}/{self.iface}")
        return None

    def start(self, timeout: float = 30.0) -> str:
        """Start dhclient (``-d -v -1``) and return address/prefix once the lease is applied."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        offset = self._log_size()
        self.proc = self.ns.spawn(self._argv("-d", "-1"), log=self.log)
        ip = wait_for(lambda: self._bound_since(offset), timeout, f"dhclient on {self.ns.name}/{self.iface} "
                      f"to bind a lease (log {self.log})")
        return self._wait_address(ip, timeout)

    def renew(self, timeout: float = 30.0) -> str:
        """Wait for the running client's next genuine renewal (RENEW at T1) and return the address.

        ISC dhclient has no signal to renew now, so this needs a server with a short T1:
        ``Lab.dnsmasq(..., renew_after=N)`` / ``AccessLab(renew_after=N)``.  With dnsmasq's
        default T1 (lease/2 = 60 s) this times out."""
        if not self.running:
            raise RuntimeError(f"{self!r} is not running")
        offset = self._log_size()
        ip = wait_for(lambda: self._bound_since(offset), timeout,
                      f"a dhclient renewal on {self.ns.name}/{self.iface} (server T1 short? "
                      f"use renew_after=...)")
        return self._wait_address(ip, timeout)

    def release(self, timeout: float = 15.0) -> None:
        """``dhclient -r`` with the same private files: it kills the running client (pid file),
        sends DHCPRELEASE and runs the script (RELEASE): the address goes.  Takes ~1 s."""
        self.ns.run(*self._argv("-r"), timeout=timeout)
        if self.proc is not None:
            proc = self.proc
            wait_for(proc.exited, timeout, "the running dhclient to exit after dhclient -r")
            self.lab.stop_process(proc)  # reaps it (and any straggler in its group)
            self.proc = None
        wait_for(lambda: self.address() is None, timeout, f"no IPv4 address on {self.ns.name}/{self.iface}")


# Used only when /etc/udhcpc/default.script is absent: the kernel-facing part of Debian's script
# (busybox 1.35), with resolv.conf written to the private bind-mounted file and logging to the
# private events file through the PATH shims.
_UDHCPC_FALLBACK_SCRIPT = r"""#!/bin/sh
# Kernel-facing copy of Debian's /etc/udhcpc/default.script (busybox udhcpc).
RESOLV_CONF="/etc/resolv.conf"
log() { logger -t "udhcpc[$PPID]" -p daemon.$1 "$interface: $2"; }
case $1 in
    bound|renew)
    busybox ifconfig $interface ${mtu:+mtu $mtu} $ip netmask $subnet ${broadcast:+broadcast $broadcast}
    crouter=$(busybox ip -4 route show dev $interface | busybox awk '$1 == "default" { print $3; }')
    router="${router%% *}"
    if [ ".$router" != ".$crouter" ]; then
        busybox ip -4 route flush exact 0.0.0.0/0 dev $interface
    fi
    if [ -n "$router" ]; then
        [ ".$subnet" = .255.255.255.255 ] && onlink=onlink || onlink=
        busybox ip -4 route add default via $router dev $interface $onlink
    fi
    [ -n "$domain" ] && R="domain $domain" || R=""
    for i in $dns; do R="$R
nameserver $i"; done
    echo "$R" > "$RESOLV_CONF"
    log info "$1: IP=$ip/$subnet router=$router domain=\"$domain\" dns=\"$dns\" lease=$lease"
    ;;
    deconfig)
    busybox ip link set $interface up
    busybox ip -4 addr flush dev $interface
    busybox ip -4 route flush dev $interface
    log notice "deconfigured"
    ;;
    leasefail | nak)
    log err "configuration failed: $1: $message"
    ;;
    *)
    echo "$0: Unknown udhcpc command: $1" >&2
    exit 1
    ;;
esac
"""


class Udhcpc(_DhcpClient):
    """busybox udhcpc in the foreground with a private pid file and Debian's default script.

    The script is /etc/udhcpc/default.script when present (else an equivalent copy).  It writes
    /etc/resolv.conf (the private bind mount takes it), calls ``resolvconf`` if installed and
    ``logger``: both are replaced by shims in a private PATH directory; the ``logger`` shim appends
    to ``events`` (a private file), which is how the lab knows the script has finished.

    What the kernel reports (measured):

    * ``start``: the script first runs ``deconfig`` (``ip addr flush`` + ``ip route flush`` on the
      interface: DELADDR and route deletions if an address was there).  Then ``bound`` uses
      ``busybox ifconfig IP netmask M``: NEWADDR as /8 (classful default of 10.x, with its
      local/broadcast/10.0.0.0/8 routes), DELADDR of that /8 (and its routes), NEWADDR as /24
      (and its routes), all within ~0.2 ms, then the default route ~4-5 ms later.  The
      address has NO lifetimes (``valid_lft forever``, not ``dynamic``): the kernel cannot tell it
      from a static address.
    * ``renew()`` (SIGUSR1: renew now; also what happens at T1 = lease/2, udhcpc ignores option
      T1): the script re-runs ``ifconfig`` with the same values (the kernel treats that as a
      no-op) and ``ip route add default`` fails with "File exists": the kernel reports NOTHING.
    * ``restart()``: ``deconfig`` first, so even on the same network the kernel sees DELADDR and
      its route deletions (the default route vanishes silently), then ~90 ms later the /8, /24,
      default sequence again; after a move the same with the new address.
    * ``release()`` (SIGUSR2): DELADDR and route deletions, default route silently, then the
      lab stops the client (udhcpc itself would wait in "released" state).
    """

    kind = "udhcpc"

    def __init__(self, lab: Lab, ns: Namespace, iface: str) -> None:
        super().__init__(lab, ns, iface)
        self.pid_file = self.dir / "udhcpc.pid"
        self.events = self.dir / "events"
        self.events.touch()
        self.bin = self.dir / "bin"
        self.bin.mkdir()
        shim_logger = f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(self.events))}\n'
        (self.bin / "logger").write_text(shim_logger)
        (self.bin / "resolvconf").write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
        for shim in ("logger", "resolvconf"):
            (self.bin / shim).chmod(0o755)
        if UDHCPC_DEFAULT_SCRIPT.exists():
            self.script = UDHCPC_DEFAULT_SCRIPT
        else:
            self.script = self.dir / "default.script"
            self.script.write_text(_UDHCPC_FALLBACK_SCRIPT)
            self.script.chmod(0o755)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return env

    def _events_since(self, offset: int) -> str:
        with open(self.events, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _configured_since(self, offset: int) -> str | None:
        """IP of the first 'bound:'/'renew:' the script logged after ``offset`` (its last step)."""
        assert self.proc is not None
        m = re.search(r"\b(?:bound|renew): IP=([0-9.]+)/", self._events_since(offset))
        if m:
            return m.group(1)
        self.proc.check_alive(f"udhcpc on {self.ns.name}/{self.iface}")
        return None

    def start(self, timeout: float = 30.0) -> str:
        """Start udhcpc (``-f``, discover every second) and return address/prefix once the
        script has configured the interface."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        offset = self.events.stat().st_size
        argv = ["udhcpc", "-f", "-i", self.iface, "-p", str(self.pid_file), "-s", str(self.script),
                "-t", "5", "-T", "1", "-A", "2"]
        self.proc = self.ns.spawn(_private_root_argv(self.resolv, [], argv), log=self.log, env=self._env())
        ip = wait_for(lambda: self._configured_since(offset), timeout,
                      f"udhcpc on {self.ns.name}/{self.iface} to bind a lease (log {self.log})")
        return self._wait_address(ip, timeout)

    def renew(self, timeout: float = 30.0) -> str:
        """SIGUSR1 (to the udhcpc PID): renew now; returns once the script ran ``renew``."""
        if self.proc is None or not self.running:
            raise RuntimeError(f"{self!r} is not running")
        offset = self.events.stat().st_size
        os.kill(self.proc.pid, signal.SIGUSR1)
        ip = wait_for(lambda: self._configured_since(offset), timeout,
                      f"udhcpc renewal on {self.ns.name}/{self.iface}")
        return self._wait_address(ip, timeout)

    def release(self, timeout: float = 15.0) -> None:
        """SIGUSR2: DHCPRELEASE and deconfig (the address goes), then stop the client."""
        if self.proc is None or not self.running:
            raise RuntimeError(f"{self!r} is not running")
        offset = self.events.stat().st_size
        os.kill(self.proc.pid, signal.SIGUSR2)
        wait_for(lambda: "deconfigured" in self._events_since(offset), timeout,
                 f"udhcpc on {self.ns.name}/{self.iface} to deconfigure after SIGUSR2")
        wait_for(lambda: self.address() is None, timeout, f"no IPv4 address on {self.ns.name}/{self.iface}")
        self.stop()
