"""Namespaces and the processes started in them: the lab's building blocks.

Host safety (every rule here is deliberate):
  * every namespace is named ``orch<PID>-<short>`` (PID of the test run, see :func:`run_prefix`),
    every interface is created *inside* a namespace (never in the host's), names are <= 15 chars;
  * processes are killed by process group, by PID, never by name (:class:`TrackedProcess`);
  * "public" addresses come only from documentation ranges.

API
---
``wait_for(predicate, timeout, what, interval=0.02) -> T``
    poll until ``predicate()`` is truthy and return it; ``AssertionError`` naming ``what`` else.
``run_prefix() -> str``, ``lab_namespaces(prefix=None) -> list[str]``,
``requirements_problem(*bins) -> str | None`` (with ``LAB_BINARIES``), ``tail(path, lines=15) -> str``

``Namespace``
    ``.name``, ``.short``
    ``.run(*argv, check=True, input=None, timeout=30) -> CompletedProcess[str]``  (ip netns exec)
    ``.spawn(argv, stdout=None, stderr=None, env=None, log=None) -> TrackedProcess``
    ``.ip(*args, check=True) -> CompletedProcess[str]``; ``.ip_json(*args) -> list[dict]``
    ``.sysctl(key, value)``; ``.addresses(iface, family=4) -> list[str]``;
    ``.default_route() -> str | None`` (gateway); ``.has_carrier(iface) -> bool``;
    ``.mac(iface) -> str``; ``.pids() -> list[int]`` (the processes inside)

``children(pid)``, ``descendants(pid)``, ``alive(pid)``; ``rss_mib(pid) -> float`` (VmRSS)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lab import Lab

T = TypeVar("T")

IFNAMSIZ = 15  # usable characters in a Linux interface name
ETC_RESOLV = "/etc/resolv.conf"


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


# What every Lab needs (an AccessLab adds its own: access_lab.ACCESS_LAB_BINARIES).
LAB_BINARIES = ("ip", "unshare", "mount")



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


def tail(path: Path | None, lines: int = 15) -> str:
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
                                 f" log {self.log_path}:\n{tail(self.log_path)}")

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

    def pids(self) -> list[int]:
        """PIDs of the processes inside the namespace (``ip netns pids``; none if it cannot say)."""
        res = _run(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in res.stdout.split() if p.isdigit()]

    def delete(self) -> None:
        """Delete the namespace (its interfaces go with it; a veth's peer elsewhere too)."""
        if not self._deleted:
            _run(["ip", "netns", "delete", self.name])
            self._deleted = True


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc/PID/task/*/children).  A process that exits while
    it is read (a miredo worker ending after a SIGHUP) simply has none."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            found += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """All descendants of ``pid``."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def rss_mib(pid: int) -> float:
    """The resident set of ``pid`` in MiB (VmRSS of /proc/PID/status); ValueError if it has none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for PID {pid}")
