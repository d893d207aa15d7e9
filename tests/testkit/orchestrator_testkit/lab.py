"""The lab: owner of namespaces, processes and a private temp dir, undone at exit.

Why: the daemon's job is to read rtnetlink the way the kernel really writes it when a DHCP client
moves.  Mocks would encode our guesses; the lab drives the real clients (ISC dhclient, busybox
udhcpc) against real servers (dnsmasq) inside private network namespaces, so tests observe what
the kernel actually reports.  Needs root, iproute2, util-linux (unshare, mount) and, per test,
dnsmasq / dhclient / udhcpc (``scripts/install-deps`` installs them).

Everything is undone at exit, also when a test fails: processes (killed by process group, by PID,
never by name), then namespaces, then the private temp dir.  Every dnsmasq / dhclient / udhcpc gets
private pid, lease, config and log files in ``lab.tmp``.

API: ``Lab()`` (context manager)
    ``.tmp: Path``; ``.prefix: str``; ``.namespaces``; ``.processes``
    ``.namespace(short) -> Namespace``
    ``.veth(ns_a, name_a, ns_b, name_b, mac_a=None, mac_b=None) -> None``
    ``.dnsmasq(ns, iface, *, range_start, range_end, router, lease="2m", renew_after=None)
    -> TrackedProcess``
    ``.dhclient(ns, iface, metric=None, client_id=None) -> Dhclient``; ``.udhcpc(ns, iface) -> Udhcpc``
    ``.monitor(ns, objects=("link", "address", "route")) -> Monitor``
    ``.stop_process(proc, timeout=3.0) -> None``; ``.close()``
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .dhcp_clients import Dhclient, Udhcpc
from .ip_monitor import Monitor
from .netns import Namespace, TrackedProcess, _check_ifname, _run, _seconds, run_prefix, wait_for


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

    def dhclient(self, ns: Namespace, iface: str, metric: int | None = None,
                 client_id: str | None = None) -> Dhclient:
        """An ISC dhclient for ``iface`` with private files (not started); ``metric`` for its
        default route, ``client_id`` to send (see :class:`dhcp_clients.Dhclient`)."""
        return Dhclient(self, ns, iface, metric=metric, client_id=client_id)

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
        for pid in ns.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            errors.append(f"untracked process {pid} was left in {ns.name} (killed)")
