"""Run the real `orchestrator` command inside a lab namespace and read what it reports."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator_routing.shell_hook import full_hook_argv

from orchestrator import control

from .netns import Namespace, TrackedProcess, run_prefix, wait_for

ORCHESTRATOR = [sys.executable, "-m", "orchestrator.cli"]

#: The host's own interpreter, the one another user runs an installed daemon's commands with.
SYSTEM_PYTHON = "/usr/bin/python3"
#: What the command line imports beyond the standard library: the package and its runtime
#: dependencies (pyproject.toml), plus tomli where the standard library has no tomllib (3.10).
RUNTIME_PACKAGES = ("orchestrator", "pluggy", "sdnotify")


@contextlib.contextmanager
def world_readable_orchestrator() -> Iterator[list[str]]:
    """The ``orchestrator`` command line as another user runs it from an installation every user
    can read (as /opt/orchestrator): a private directory (0755, removed at exit) holding copies of
    the packages it imports, taken from this virtualenv, and :data:`SYSTEM_PYTHON` started isolated
    and without site-packages (``-I -S``) with that directory alone on its ``sys.path``.  Nothing
    is read from the checkout, which may be a user's private (0700) directory."""
    probe = [SYSTEM_PYTHON, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    release = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    version = tuple(int(number) for number in release.split("."))
    python = f"{SYSTEM_PYTHON} (Python {release})"
    if version < (3, 10):
        raise RuntimeError(f"{python}: orchestrator needs Python 3.10 or later")
    packages = RUNTIME_PACKAGES if version >= (3, 11) else (*RUNTIME_PACKAGES, "tomli")
    site = Path(tempfile.mkdtemp(prefix=f"{run_prefix()}install-"))
    try:
        for name in packages:
            spec = importlib.util.find_spec(name)
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError(f"{python} needs package {name}, which {sys.prefix} does not have")
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(spec.submodule_search_locations[0], site / name, ignore=ignore)
        for path in [site, *site.rglob("*")]:  # readable by every user, whatever the umask
            path.chmod(0o755 if path.is_dir() else 0o644)
        main = "from orchestrator.cli import main; sys.exit(main())"
        yield [SYSTEM_PYTHON, "-I", "-S", "-c", f"import sys; sys.path[:0] = [{str(site)!r}]; {main}"]
    finally:
        shutil.rmtree(site)


class MonitorProcess:
    """`orchestrator monitor --json` in a namespace; its lines are read from a private file."""

    def __init__(self, ns: Namespace, config: Path, env: dict[str, str] | None = None) -> None:
        self.out = ns.lab.tmp / f"monitor-{ns.short}-{ns.lab._next_id()}.jsonl"
        self.proc: TrackedProcess = ns.spawn(
            [*ORCHESTRATOR, "monitor", "--json", "--config", str(config)],
            stdout=self.out.open("wb"),
            stderr=None,
            env=env,
        )
        self.ready = self.wait_for(lambda e: e["event"] == "ready", 30, "the monitor to be ready")

    def events(self) -> list[dict[str, Any]]:
        self.proc.check_alive("orchestrator monitor")
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, predicate: Any, timeout: float, what: str, after: int = 0) -> dict[str, Any]:
        """The first event after index ``after`` matching ``predicate``."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.events()[after:] if predicate(e)), None)

        found: dict[str, Any] = wait_for(find, timeout, what)
        return found

    def mark(self) -> int:
        return len(self.events())

    def uplink_changes(self, after: int = 0) -> list[tuple[Any, Any]]:
        return [(e["old"], e["new"]) for e in self.events()[after:] if e["event"] == "uplink-changed"]


def sync(ns: Namespace, monitor: MonitorProcess) -> None:
    """Make a change the monitor must report and wait for it: everything the kernel said before
    has then been read and judged (one verdict per burst, in order)."""
    marker = "192.0.2.254"
    ns.ip("addr", "add", f"{marker}/32", "dev", "lo")
    ns.ip("addr", "del", f"{marker}/32", "dev", "lo")
    start = max(0, monitor.mark() - 1)
    monitor.wait_for(
        lambda e: e["event"] == "address" and e["address"] == marker and e["deleted"],
        15, "the sync marker", after=start,
    )


def answers(socket_path: Path) -> bool:
    """Whether a daemon answers `status` on its control socket (it is ready once it does)."""
    try:
        control.request(socket_path, "status", timeout=2)
    except (OSError, ValueError):
        return False
    return True


def lanes_idle(status: dict[str, Any]) -> bool:
    """Every lane of a daemon's ``status`` has nothing queued or running: what was handed to the
    plugins has run."""
    return all(lane["queued"] == 0 and lane["busy_s"] is None for lane in status["lanes"])


class DaemonProcess:
    """`orchestrator run` in a namespace; ready once its control socket answers."""

    def __init__(self, ns: Namespace, config: Path, control_socket: Path,
                 env: dict[str, str] | None = None) -> None:
        self.ns = ns
        self.socket = control_socket
        self.log = ns.lab.tmp / f"daemon-{ns.short}-{ns.lab._next_id()}.log"
        self.proc: TrackedProcess = ns.spawn(
            [*ORCHESTRATOR, "run", "--config", str(config)], env=env, log=self.log
        )
        wait_for(self._answers, 30, "the daemon's control socket")

    def _answers(self) -> bool:
        self.proc.check_alive(f"orchestrator run (log: {self.log.read_text()[-2000:]})")
        return answers(self.socket)

    def request(self, command: str) -> dict[str, Any]:
        """The daemon's answer to a control command (as root)."""
        self.proc.check_alive("orchestrator run")
        return control.request(self.socket, command)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def wait_idle(self, timeout: float = 15) -> None:
        """Wait for :func:`lanes_idle`."""
        wait_for(lambda: lanes_idle(self.status()), timeout, "idle lanes")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer ends it: nothing of it runs its shutdown."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def client_hook(directory: Path, config: Path, python: str = sys.executable,
                env: dict[str, str] | None = None) -> Path:
    """The thin client hook `orchestrator hook --print-client-hook` writes (naming ``python``),
    root's and executable, with its cache in ``directory``; ``env``: the printing command's (one in
    which the plugins the configuration enables are found)."""
    path = directory / f"client-hook-{len(list(directory.glob('client-hook-*')))}"
    command = [*ORCHESTRATOR, "hook", "--print-client-hook", "--config", str(config)]
    command += ["--cache-dir", str(directory / "cache"), "--python", python]
    path.write_text(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)
    path.chmod(0o755)
    return path


def full_hook_command(directory: Path, config: Path, hook: Path) -> list[str]:
    """The full hook as the generated ``hook`` runs it (cache in ``directory``, as ``client_hook``
    names it), for running it directly."""
    return full_hook_argv(sys.executable, str(config), str(directory / "cache"), str(hook))


def spawn_named(argv: list[str], name: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` and return once the kernel names the process ``name``: Popen may return
    before the exec shows in /proc (the child is still named after this Python until then)."""
    proc = subprocess.Popen(argv)
    wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == name, 10, f"{name} to start")
    return proc


#: uid and gid of Debian's nobody and nogroup: another user, with no user created on the host.
NOBODY = 65534
NOGROUP = 65534


def socket_owner_and_mode(path: Path) -> tuple[int, int, int]:
    """A control socket's uid, gid and permission bits (asserting it is a socket)."""
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)
