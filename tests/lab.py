"""Real-kernel test lab: network namespaces, veths, a bridge, dnsmasq and real DHCP clients.

Why: the daemon's job is to read rtnetlink the way the kernel really writes it when a DHCP client
moves.  Mocks would encode our guesses; this lab drives the real clients (ISC dhclient, busybox
udhcpc) against real servers (dnsmasq) inside private network namespaces, so tests observe what
the kernel actually reports.  Needs root, iproute2, util-linux (unshare, mount) and, per test,
dnsmasq / dhclient / udhcpc (``scripts/install-deps`` installs them).

Host safety (every rule here is deliberate):
  * every namespace is named ``orch<PID>-<short>`` (PID of the test run, see :func:`run_prefix`),
    every interface is created *inside* a namespace (never in the host's), names are <= 15 chars;
  * everything is undone at exit, also when a test fails: processes (killed by process group, by
    PID, never by name), then namespaces, then the private temp dir;
  * every dnsmasq / dhclient / udhcpc gets private pid, lease, config and log files in ``lab.tmp``;
  * DHCP client scripts run in a private mount and UTS namespace (``ip netns exec`` + ``unshare
    --uts``): a private file is bind-mounted on /etc/resolv.conf, the dhclient hook directories are
    masked by empty private directories (the host's hooks restart timesyncd, call resolvconf...),
    and hostname changes stay in the private UTS namespace;
  * "public" addresses come only from documentation ranges; the access LANs are 10.x inside
    namespaces.

API
---
``wait_for(predicate, timeout, what, interval=0.02) -> T``
    poll until ``predicate()`` is truthy and return it; ``AssertionError`` naming ``what`` else.
``await_route_listener(ns, seen, what)``  a route listener in ``ns`` is provably subscribed
``run_prefix() -> str``, ``lab_namespaces(prefix=None) -> list[str]``, ``stale_namespaces() -> list[str]``,
``requirements_problem(*bins) -> str | None``
    (with ``LAB_BINARIES`` / ``ACCESS_LAB_BINARIES``)

``Lab()`` (context manager)
    ``.tmp: Path``; ``.prefix: str``; ``.namespaces``; ``.processes``
    ``.namespace(short) -> Namespace``
    ``.veth(ns_a, name_a, ns_b, name_b, mac_a=None, mac_b=None) -> None``
    ``.dnsmasq(ns, iface, *, range_start, range_end, router, lease="2m", renew_after=None)
    -> TrackedProcess``
    ``.dhclient(ns, iface) -> Dhclient``; ``.udhcpc(ns, iface) -> Udhcpc``
    ``.monitor(ns, objects=("link", "address", "route")) -> Monitor``
    ``.stop_process(proc, timeout=3.0) -> None``; ``.close()``

``Namespace``
    ``.name``, ``.short``
    ``.run(*argv, check=True, input=None, timeout=30) -> CompletedProcess[str]``  (ip netns exec)
    ``.spawn(argv, stdout=None, stderr=None, env=None, log=None) -> TrackedProcess``
    ``.ip(*args, check=True) -> CompletedProcess[str]``; ``.ip_json(*args) -> list[dict]``
    ``.sysctl(key, value)``; ``.addresses(iface, family=4) -> list[str]``;
    ``.default_route() -> str | None`` (gateway); ``.has_carrier(iface) -> bool``;
    ``.mac(iface) -> str``

``Dhclient`` / ``Udhcpc`` (one client on one interface; same methods)
    ``.start(timeout=30) -> str``   address/prefix once the lease is on the interface
    ``.restart(timeout=30) -> str`` stop WITHOUT releasing, start again (dhclient: same lease file)
    ``.renew(timeout=30) -> str``   a genuine in-place renewal (see each class for how)
    ``.release(timeout=15)``        release the lease; the address goes; the client ends
    ``.stop()``                     kill the client, no release: the address stays
    ``.address() -> str | None``    current global IPv4 address/prefix on the interface
    ``.running: bool``

``Monitor`` (``ip -ts monitor`` in a namespace, the kernel's own account)
    ``.events() -> list[Event]``; ``.mark() -> int``; ``.since(mark) -> list[Event]``;
    ``.wait_for(predicate, timeout, what)``; ``Event(ts, text)`` with ``.kind``
    ("link" / "address" / "route"), ``.deleted``, ``.time`` (Unix time ``ip`` printed it:
    ``monitor_time(ts)``; the monitor runs with TZ=UTC0)

``AccessLab(renew_after=None, lease="2m", attached="ra")`` (a ``Lab``), the DHCP-move topology::

        node:eth0 ---- n0 ]                  [ p-ra ---- ra:lan 10.1.0.1/24  dnsmasq .100-.150
                          ] sw: br0 (one of) [ p-rb ---- rb:lan 10.2.0.1/24  dnsmasq .100-.150
                                             [ p-rc ---- rc:lan 10.1.0.1/24  dnsmasq .100-.150

    ``.node``, ``.sw``, ``.routers: dict[str, Namespace]``, ``.node_if == "eth0"``
    ``.attach(short)``       only that router's port is in br0 (the others: nomaster, down)
    ``.carrier(on)``         node's eth0 loses / regains carrier (its peer n0 down / up in sw)
    ``.router_mac(short) -> str``; ``.attached: str | None``
    ``.dhclient()`` / ``.udhcpc()`` / ``.monitor()`` default to the node's eth0.

What the kernel reports (``ip -ts monitor link address route`` in the node, measured here with
isc-dhcp-client 4.4.3-P1, busybox udhcpc 1.35.0, dnsmasq 2.90, kernel 6.18): see the docstrings
of :class:`Dhclient` and :class:`Udhcpc`.  Carrier loss (``carrier(False)``) only brings a link
message (NO-CARRIER) and IPv6 multicast neighbour deletions: the IPv4 address and routes stay
(routes flagged ``linkdown`` without a route message).

Example::

    with AccessLab() as lab:                 # ra attached, three dnsmasqs running
        dh = lab.dhclient()                  # the node's eth0
        assert dh.start().startswith("10.1.0.")
        lab.attach("rb")
        assert dh.restart().startswith("10.2.0.") and lab.node.default_route() == "10.2.0.1"
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

IFNAMSIZ = 15  # usable characters in a Linux interface name
ETC_RESOLV = "/etc/resolv.conf"
# dhclient-script sources these (Debian); on a host they may restart timesyncd or call resolvconf.
DHCLIENT_HOOK_DIRS = ("/etc/dhcp/dhclient-enter-hooks.d", "/etc/dhcp/dhclient-exit-hooks.d")
DHCLIENT_HOOK_FILES = ("/etc/dhcp/dhclient-enter-hooks", "/etc/dhcp/dhclient-exit-hooks")
UDHCPC_DEFAULT_SCRIPT = Path("/etc/udhcpc/default.script")
# Sync marker used by Monitor: a route in a private table, in a documentation range.
MONITOR_MARK_DST = "192.0.2.255"
MONITOR_MARK_TABLE = "4242"
MONITOR_MARK = ("unreachable", f"{MONITOR_MARK_DST}/32", "table", MONITOR_MARK_TABLE)


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy and return that.

    Why: tests must wait for kernel state, not for a guessed delay.  Raises ``AssertionError``
    naming ``what`` (and the last value seen) after ``timeout`` seconds.  Exceptions raised by the
    predicate propagate at once (a dead process should fail the test now, not at the deadline).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def run_prefix() -> str:
    """Prefix of every namespace this test run creates: ``orch<PID>-`` (one run never collides
    with another, and a leak is attributable)."""
    return f"orch{os.getpid()}-"


def lab_namespaces(prefix: str | None = None) -> list[str]:
    """Names from ``ip netns list`` that start with ``prefix`` (default: this run's prefix)."""
    prefix = run_prefix() if prefix is None else prefix
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.startswith(prefix)]


# What every Lab needs, and what an AccessLab adds (its routers run dnsmasq).
LAB_BINARIES = ("ip", "unshare", "mount")
ACCESS_LAB_BINARIES = (*LAB_BINARIES, "dnsmasq", "ss")


def stale_namespaces() -> list[str]:
    """``orch<PID>-*`` namespaces whose test run (PID) is gone: leaks of a killed run, listed for
    a human to inspect (``ip netns pids NAME``) and delete; never deleted automatically."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    stale = []
    for line in out.splitlines():
        m = re.match(r"(orch(\d+)-\S+)", line)
        if m and not Path(f"/proc/{m.group(2)}").exists():
            stale.append(m.group(1))
    return stale


def requirements_problem(*binaries: str) -> str | None:
    """Why this lab cannot run here (for ``pytest.skip``), or None.  Checks root and binaries
    (``LAB_BINARIES`` always; add ``ACCESS_LAB_BINARIES``, "dhclient", "udhcpc"... as needed)."""
    if os.geteuid() != 0:
        return "network-namespace tests need root"
    missing = [b for b in dict.fromkeys((*LAB_BINARIES, *binaries)) if shutil.which(b) is None]
    if missing:
        return f"missing binaries: {', '.join(missing)} (run scripts/install-deps)"
    if not Path("/proc/self/ns/net").exists():
        return "kernel without network namespaces"
    return None


class CommandError(subprocess.CalledProcessError):
    """A failed lab command; unlike CalledProcessError its message carries stderr."""

    def __str__(self) -> str:
        err = (self.stderr or "").strip() if isinstance(self.stderr, str) else self.stderr
        return f"{shlex.join(map(str, self.cmd))} failed with exit status {self.returncode}: {err}"


def _run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
         timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout,
                         stdin=None if input is not None else subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise CommandError(res.returncode, res.args, res.stdout, res.stderr)
    return res


def _check_ifname(name: str) -> None:
    if not 0 < len(name) <= IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"bad interface name {name!r} (1..{IFNAMSIZ} chars, no '/' or space)")


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _seconds(lease: str) -> int:
    """dnsmasq lease time ('120', '90s', '2m', '1h') in seconds."""
    m = re.fullmatch(r"(\d+)([smhd]?)", lease)
    if not m:
        raise ValueError(f"lease time {lease!r}: use e.g. 120, 2m, 1h")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class TrackedProcess(subprocess.Popen[bytes]):
    """A Popen the lab owns: own session/process group (pgid == pid) and a private log file."""

    log_path: Path | None = None
    ns: Namespace | None = None

    def exited(self) -> bool:
        """True once the process has exited, WITHOUT reaping it (the PID, and thus the process
        group id, stays reserved until the lab reaps it, so signalling the group is always safe)."""
        if self.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def check_alive(self, what: str) -> None:
        """Raise a clear AssertionError (with the log tail) if the process died."""
        if self.exited():
            rc = self.wait()
            raise AssertionError(f"{what}: {shlex.join(map(str, self.args))} exited with status {rc};"  # type: ignore[arg-type]
                                 f" log {self.log_path}:\n{_tail(self.log_path)}")

    def signal_group(self, sig: int) -> None:
        """Signal the whole process group by PID (only while the leader is not reaped)."""
        if self.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)


# --------------------------------------------------------------------------------------------------
# namespaces and the lab
# --------------------------------------------------------------------------------------------------
class Namespace:
    """One named network namespace owned by a Lab."""

    def __init__(self, lab: Lab, short: str, name: str) -> None:
        self.lab = lab
        self.short = short
        self.name = name
        self._deleted = False

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # -- commands ---------------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, input: str | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (``ip netns exec``: also a private mount namespace
        and a /sys of this namespace) and wait for it.  Raises CommandError (with stderr)."""
        return _run(["ip", "netns", "exec", self.name, *argv], check=check, input=input, timeout=timeout)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n NS ARGS``: cheaper than ``run("ip", ...)`` (no mount namespace set-up)."""
        return _run(["ip", "-n", self.name, *args], check=check)

    def ip_json(self, *args: str) -> list[dict[str, Any]]:
        """``ip -j -n NS ARGS`` parsed."""
        out = _run(["ip", "-j", "-n", self.name, *args]).stdout.strip()
        return json.loads(out) if out else []

    def spawn(self, argv: Sequence[str], *, stdout: int | IO[Any] | None = None,
              stderr: int | IO[Any] | None = None, env: dict[str, str] | None = None,
              log: Path | None = None) -> TrackedProcess:
        """Start a long-running process inside the namespace, tracked by the lab.

        It gets its own session (``start_new_session``) so the lab can kill it and every child
        (e.g. a running dhclient-script) through the process group, by PID.  Unless ``stdout`` /
        ``stderr`` are given, both go to a private log file (``log`` or one in lab.tmp): a pipe
        nobody reads would eventually block the process.
        """
        if log is None:
            log = self.lab.tmp / f"{self.short}-{Path(argv[0]).name}-{self.lab._next_id()}.log"
        opened: IO[bytes] | None = None
        if stdout is None or stderr is None:
            opened = open(log, "ab")  # noqa: SIM115 - the child keeps its own copy
        if stdout is None:
            stdout = opened
            if stderr is None:
                stderr = subprocess.STDOUT
        elif stderr is None:
            stderr = opened
        try:
            proc = TrackedProcess(["ip", "netns", "exec", self.name, *argv], stdin=subprocess.DEVNULL,
                                  stdout=stdout, stderr=stderr, env=env, start_new_session=True)
        finally:
            if opened is not None:
                opened.close()
        proc.log_path = log if opened is not None else None
        proc.ns = self
        self.lab._track(proc)
        return proc

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl in this namespace (net.* keys are per namespace).

        ``key`` is dotted (net.ipv4.ip_forward) or, for names containing dots (eth0.100), slashed
        (net/ipv4/conf/eth0.100/forwarding).  Written through /proc/sys: no procps needed."""
        path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
        self.run("sh", "-c", 'printf "%s\\n" "$1" > "$0"', path, str(value))

    # -- kernel state -----------------------------------------------------------------------------
    def addresses(self, iface: str, family: int = 4) -> list[str]:
        """Global addresses as 'addr/prefix' on ``iface`` (``family`` 4 or 6)."""
        out = self.ip_json(f"-{family}", "addr", "show", "dev", iface)
        return [f"{a['local']}/{a['prefixlen']}" for link in out for a in link.get("addr_info", [])
                if a.get("scope") == "global"]

    def default_route(self) -> str | None:
        """Gateway of the IPv4 default route in the main table, or None (also for a device route)."""
        routes = self.ip_json("-4", "route", "show", "default")
        return next((r.get("gateway") for r in routes if r.get("gateway")), None)

    def link(self, iface: str) -> dict[str, Any]:
        """``ip -j -d link show dev iface`` as a dict."""
        return self.ip_json("-d", "link", "show", "dev", iface)[0]

    def has_carrier(self, iface: str) -> bool:
        """Kernel's carrier flag (IFF_LOWER_UP) of ``iface``."""
        return "LOWER_UP" in self.link(iface).get("flags", [])

    def mac(self, iface: str) -> str:
        """MAC address of ``iface``."""
        return str(self.link(iface)["address"])

    def delete(self) -> None:
        """Delete the namespace (its interfaces go with it; a veth's peer elsewhere too)."""
        if not self._deleted:
            _run(["ip", "netns", "delete", self.name])
            self._deleted = True


class Lab:
    """Owner of namespaces, processes and a private temp dir; undoes everything at exit."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = run_prefix() if prefix is None else prefix
        self._tmp: Path | None = None
        self._namespaces: list[Namespace] = []
        self._procs: list[TrackedProcess] = []
        self._ids = 0
        self._closed = False

    # -- context manager --------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}lab-"))
        self._catch_sigterm()
        return self

    def _catch_sigterm(self) -> None:
        """Turn SIGTERM (e.g. ``timeout pytest ...``) into SystemExit while the lab lives, so the
        with-block unwinds and cleans up; our processes have their own sessions and would
        otherwise outlive the test run.  Only in the main thread, only over the default action."""
        self._old_sigterm: Any = None
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            def on_term(signum: int, frame: object) -> None:
                raise SystemExit(128 + signum)

            signal.signal(signal.SIGTERM, on_term)
            self._old_sigterm = signal.SIG_DFL

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        self.close(raise_errors=exc is None)

    @property
    def tmp(self) -> Path:
        """Private temp dir of this lab (removed at exit)."""
        if self._tmp is None:
            raise RuntimeError("use the Lab as a context manager (with Lab() as lab: ...)")
        return self._tmp

    @property
    def namespaces(self) -> list[Namespace]:
        return list(self._namespaces)

    @property
    def processes(self) -> list[TrackedProcess]:
        return list(self._procs)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _track(self, proc: TrackedProcess) -> None:
        self._procs.append(proc)

    # -- building blocks --------------------------------------------------------------------------
    def namespace(self, short: str) -> Namespace:
        """Create namespace ``<prefix><short>`` with loopback up."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", short):
            raise ValueError(f"bad namespace short name {short!r}")
        ns = Namespace(self, short, f"{self.prefix}{short}")
        _run(["ip", "netns", "add", ns.name])
        self._namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def veth(self, ns_a: Namespace, name_a: str, ns_b: Namespace, name_b: str,
             mac_a: str | None = None, mac_b: str | None = None) -> None:
        """A veth pair created directly inside ``ns_a`` with its peer in ``ns_b`` (it never
        exists in the host's namespace, so no host name can clash); both ends up."""
        _check_ifname(name_a)
        _check_ifname(name_b)
        args = ["link", "add", name_a, *(["address", mac_a] if mac_a else []), "type", "veth",
                "peer", "name", name_b, *(["address", mac_b] if mac_b else []), "netns", ns_b.name]
        ns_a.ip(*args)
        ns_a.ip("link", "set", name_a, "up")
        ns_b.ip("link", "set", name_b, "up")

    def dnsmasq(self, ns: Namespace, iface: str, *, range_start: str, range_end: str, router: str,
                lease: str = "2m", renew_after: int | None = None,
                extra: Iterable[str] = ()) -> TrackedProcess:
        """A DHCP-only dnsmasq on ``iface`` (which must already carry the server's address).

        Private lease and pid files; ``--conf-file=/dev/null --no-resolv --no-hosts`` so it reads
        nothing of the host's; ``--port=0`` (no DNS, hence no DNS-server option, so clients never
        rewrite resolv.conf); ``--no-ping`` (else 3 s per new address); logs to its private log.
        ``renew_after`` (>= 3 s) sets option T1 (and T2 = 7/8 lease) so dhclient renews every few
        seconds (dnsmasq's minimum lease is 2 min, so T1 would be 1 min; udhcpc ignores T1).
        Returns once it listens on UDP 67.
        """
        d = self.tmp / f"dnsmasq-{ns.short}-{iface}-{self._next_id()}"
        d.mkdir()
        argv = ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
                f"--interface={iface}", "--bind-interfaces",
                f"--dhcp-range={range_start},{range_end},{lease}",
                f"--dhcp-option=option:router,{router}", "--no-ping", "--dhcp-authoritative",
                f"--dhcp-leasefile={d / 'leases'}", f"--pid-file={d / 'pid'}",
                "--log-facility=-", "--log-dhcp"]
        if renew_after is not None:
            total = _seconds(lease)
            t2 = max(renew_after + 1, total * 7 // 8)
            # Measured with dnsmasq 2.90: T1=2 came out as 5 s or as the default 60 s; 3 is honoured.
            if not 3 <= renew_after < t2 < total:
                raise ValueError(f"renew_after={renew_after}: need 3 <= T1 < T2 < lease ({lease})")
            argv += [f"--dhcp-option=option:T1,{renew_after}", f"--dhcp-option=option:T2,{t2}"]
        argv += list(extra)
        proc = ns.spawn(argv, log=d / "dnsmasq.log")

        def listening() -> bool:
            proc.check_alive(f"dnsmasq in {ns.name} on {iface}")
            return bool(ns.run("ss", "-H", "-uln", "sport = :67").stdout.strip())

        wait_for(listening, 10, f"dnsmasq in {ns.name} to listen on UDP 67")
        return proc

    def dhclient(self, ns: Namespace, iface: str) -> Dhclient:
        """An ISC dhclient for ``iface`` with private files (not started)."""
        return Dhclient(self, ns, iface)

    def udhcpc(self, ns: Namespace, iface: str) -> Udhcpc:
        """A busybox udhcpc for ``iface`` with private files (not started)."""
        return Udhcpc(self, ns, iface)

    def monitor(self, ns: Namespace, objects: Sequence[str] = ("link", "address", "route")) -> Monitor:
        """Start ``ip -ts monitor`` in ``ns``; returns once it is provably subscribed."""
        return Monitor(self, ns, objects)

    # -- teardown ---------------------------------------------------------------------------------
    def stop_process(self, proc: TrackedProcess, timeout: float = 3.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout``, reap the leader.

        The leader is reaped last, so its PID (= the group id) cannot be reused while we signal."""
        if proc.returncode is not None:
            return
        proc.signal_group(signal.SIGTERM)
        proc.signal_group(signal.SIGCONT)  # a stopped process would not act on SIGTERM
        deadline = time.monotonic() + timeout
        while not proc.exited() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.signal_group(signal.SIGKILL)  # stragglers of the group, or a leader ignoring SIGTERM
        proc.wait(timeout=10)

    def close(self, raise_errors: bool = True) -> None:
        """Kill tracked processes (reverse order), delete namespaces (reverse), remove tmp.

        Every step runs even if an earlier one failed; errors are raised together at the end
        (or only printed when a test exception is already propagating)."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for proc in reversed(self._procs):
            try:
                self.stop_process(proc)
            except Exception as e:  # keep cleaning up
                errors.append(f"stopping {proc.args!r}: {e}")
        for ns in reversed(self._namespaces):
            try:
                self._kill_untracked(ns, errors)
                ns.delete()
            except Exception as e:
                errors.append(f"deleting {ns.name}: {e}")
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if getattr(self, "_old_sigterm", None) is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
        if errors:
            msg = "lab cleanup problems:\n  " + "\n  ".join(errors)
            if raise_errors:
                raise RuntimeError(msg)
            print(msg, file=sys.stderr)

    @staticmethod
    def _kill_untracked(ns: Namespace, errors: list[str]) -> None:
        """A process still inside one of OUR namespaces was started by this lab indirectly (e.g.
        a client that daemonized): kill it by PID, and report it as a leak."""
        if ns._deleted:
            return
        res = _run(["ip", "netns", "pids", ns.name], check=False)
        pids = [int(p) for p in res.stdout.split() if p.isdigit()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            errors.append(f"untracked process {pid} was left in {ns.name} (killed)")


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
    """

    kind = "dhclient"

    def __init__(self, lab: Lab, ns: Namespace, iface: str) -> None:
        super().__init__(lab, ns, iface)
        self.pid_file = self.dir / "dhclient.pid"
        self.lease_file = self.dir / "dhclient.leases"
        self.conf_file = self.dir / "dhclient.conf"
        self.conf_file.touch()
        self.hooks = self.dir / "empty-hooks.d"
        self.hooks.mkdir()

    def _argv(self, *flags: str) -> list[str]:
        masks = [(self.hooks, d) for d in DHCLIENT_HOOK_DIRS]
        masks += [(Path("/dev/null"), f) for f in DHCLIENT_HOOK_FILES]
        dh = ["dhclient", "-4", "-v", *flags, "-pf", str(self.pid_file), "-lf", str(self.lease_file),
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


# --------------------------------------------------------------------------------------------------
# ip monitor
# --------------------------------------------------------------------------------------------------
# ``ip -ts`` (iproute2 6.1) starts each message with "[2026-11-28T01:22:26.642012] ": strftime
# "%Y-%m-%dT%H:%M:%S" of localtime() plus ".%06ld" microseconds of gettimeofday(), taken when ip
# prints the message (the kernel stamps nothing), with no time zone.  Monitor runs ip with
# TZ=UTC0, so a stamp is UTC whatever the host's zone and no DST change falls between two stamps.
# (``ip -t`` instead prints a "Timestamp: Sat Nov 28 01:22:26 2026 642006 usec" line of its own.)
_TS_RE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\]\s?(.*)$")
_TS_FIELDS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
MONITOR_TZ = "UTC0"
_ADDR_RE = re.compile(r"^(?:Deleted )?\d+: \S+\s+inet6? ")
_LINK_RE = re.compile(r"^(?:Deleted )?\d+: \S+: <")


def monitor_time(ts: str) -> float:
    """Unix time (seconds) of an ``ip -ts`` stamp printed under ``TZ=UTC0`` (as :class:`Monitor`
    runs it).  Any number of fraction digits, or none, is accepted."""
    m = _TS_FIELDS_RE.fullmatch(ts)
    if not m:
        raise ValueError(f"not an ip -ts time stamp: {ts!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = m.group(7) or ""
    whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass(frozen=True)
class Event:
    """One message as ``ip -ts monitor`` printed it (continuation lines included)."""

    ts: str
    text: str

    @property
    def time(self) -> float:
        """When ``ip`` printed it, as Unix time (see :func:`monitor_time`): compare stamps of one
        monitor with each other, not with this process's clocks."""
        return monitor_time(self.ts)

    @property
    def deleted(self) -> bool:
        return self.text.startswith("Deleted ")

    @property
    def kind(self) -> str:
        """'address', 'link' or 'route' (neigh etc. are reported as 'route' if monitored)."""
        if _ADDR_RE.match(self.text):
            return "address"
        if _LINK_RE.match(self.text):
            return "link"
        return "route"

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0]


class Monitor:
    """``ip -ts monitor OBJECTS`` in a namespace, logged to a private file.

    Why: an independent record of what the kernel announced, to compare with what the daemon
    concluded.  On start it adds and deletes an ``unreachable 192.0.2.255/32`` route in table
    4242 of that namespace and waits to see both, so nothing after the constructor returns can
    be missed; those marker events are filtered out.  ``route`` is always monitored (needed for
    the marker)."""

    def __init__(self, lab: Lab, ns: Namespace,
                 objects: Sequence[str] = ("link", "address", "route")) -> None:
        self.ns = ns
        objs = list(objects) if "route" in objects else [*objects, "route"]
        self.path = lab.tmp / f"monitor-{ns.short}-{lab._next_id()}.log"
        self.proc = ns.spawn(["ip", "-ts", "monitor", *objs], log=self.path,
                             env={**os.environ, "TZ": MONITOR_TZ})

        def seen(deleted: bool) -> bool:
            self.proc.check_alive(f"ip monitor in {ns.name}")
            return any(MONITOR_MARK_DST in e.text and e.deleted == deleted for e in self._all())

        await_route_listener(ns, lambda: seen(False), f"ip monitor in {ns.name}")
        wait_for(lambda: seen(True), 10, f"ip monitor in {ns.name} to report the marker's deletion")
        self._start = len(self._all())

    def _all(self) -> list[Event]:
        events: list[Event] = []
        text = self.path.read_text(errors="replace")
        # only complete lines: ip may be caught half-way through writing a message
        for line in text[:text.rfind("\n") + 1].splitlines():
            m = _TS_RE.match(line)
            if m:
                events.append(Event(m.group(1), m.group(2)))
            elif events and line[:1].isspace():
                last = events[-1]
                events[-1] = Event(last.ts, f"{last.text}\n{line}")
        return events

    def events(self) -> list[Event]:
        """Every event since the monitor was ready (the sync markers excluded)."""
        return [e for e in self._all()[self._start:] if MONITOR_MARK_DST not in e.text]

    def sync(self) -> None:
        """Make the kernel announce a marker and wait for it: whatever the kernel announced before
        is then in the log, so "nothing happened" can be asserted without waiting and hoping."""
        before = len(self._all())
        self.ns.ip("route", "add", *MONITOR_MARK)
        self.ns.ip("route", "del", *MONITOR_MARK)
        wait_for(lambda: any(MONITOR_MARK_DST in e.text and e.deleted for e in self._all()[before:]),
                 10, f"ip monitor in {self.ns.name} to report a sync marker")

    def mark(self) -> int:
        """A position for :meth:`since`."""
        return len(self.events())

    def since(self, mark: int) -> list[Event]:
        return self.events()[mark:]

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float, what: str) -> list[Event]:
        """Wait until ``predicate(events())`` holds; returns the events."""
        def check() -> list[Event] | None:
            evs = self.events()
            return evs if predicate(evs) else None

        return wait_for(check, timeout, what)


def await_route_listener(ns: Namespace, seen: Callable[[], bool], what: str) -> None:
    """Return once a route listener in ``ns`` (an ``ip monitor``, a user's script...) is provably
    subscribed: ``seen()`` must report the ``unreachable 192.0.2.255/32`` marker route of table
    4242, which is re-created until it does (a listener subscribes asynchronously, and replacing an
    identical route would announce nothing).  The marker is deleted again at the end."""
    def marker_seen() -> bool:
        ns.ip("route", "del", *MONITOR_MARK, check=False)
        ns.ip("route", "add", *MONITOR_MARK)
        return wait_for_quiet(seen, 0.2)

    wait_for(marker_seen, 10, f"{what} to report the sync marker route")
    ns.ip("route", "del", *MONITOR_MARK)


def wait_for_quiet(predicate: Callable[[], Any], timeout: float, interval: float = 0.01) -> bool:
    """Like wait_for but returns False instead of raising (for retry loops)."""
    try:
        wait_for(predicate, timeout, "", interval)
    except AssertionError:
        return False
    return True


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

    def dhclient(self, ns: Namespace | None = None, iface: str | None = None) -> Dhclient:
        """dhclient on the node's eth0 by default."""
        return super().dhclient(ns or self.node, iface or self.node_if)

    def udhcpc(self, ns: Namespace | None = None, iface: str | None = None) -> Udhcpc:
        """udhcpc on the node's eth0 by default."""
        return super().udhcpc(ns or self.node, iface or self.node_if)

    def monitor(self, ns: Namespace | None = None,
                objects: Sequence[str] = ("link", "address", "route")) -> Monitor:
        """ip monitor in the node by default."""
        return super().monitor(ns or self.node, objects)
