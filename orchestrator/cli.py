"""The ``orchestrator`` command line.

Exit codes: 0 success, 1 runtime failure (daemon not reachable, netlink error), 2 bad usage or an
invalid configuration (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__, control
from .config import DAEMON, DEFAULT_PATH, ConfigError
from .events import AddressEvent, AnyEvent, LinkEvent, UplinkChanged, event_to_json

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Keeps a mobile node's IPv6 connectivity alive across IPv4 moves.  The daemon watches the kernel's
routing netlink (links, addresses, routes, rules), recognises a DHCP move as opposed to a renewal or a
carrier blip, and drives plugins (a tunnel's routing policy, Teredo re-qualification, a Mobile IPv6
handover, third-party tunnels) in order and in isolation."""

EPILOG = f"""\
files:
  {DEFAULT_PATH}   the policy (see etc/orchestrator.toml for every key)

exit status:
  0 success, 1 runtime failure, 2 usage error or invalid configuration
"""


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_PATH})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the daemon in the foreground",
        description="Run the daemon in the foreground; logs go to stderr.  SIGTERM or SIGINT stop it.",
    )
    _config_arg(run)
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="override daemon.log_level (debug shows every netlink event)",
    )

    check = sub.add_parser(
        "check-config",
        help="validate a configuration file",
        description="Validate the configuration against the core's and every installed plugin's "
        "schema, then let the enabled plugins cross-check it.  Exit 0 when valid (warnings about "
        "settings that are valid but likely to hurt, such as miredo naming its server by host name, go "
        "to stderr); exit 2 with one line per problem otherwise.",
    )
    _config_arg(check)

    monitor = sub.add_parser(
        "monitor",
        help="print the event stream as the daemon sees it",
        description="Print the normalized event stream, derived events (uplink-changed, "
        "tunnel-address-changed, link-changed) included, without running any plugin.  It needs no "
        "running daemon.  With --json: one object per line with at least 'time' (unix seconds) and "
        "'event': ready (once bound and dumped, with the start-up uplink), link, address, route, rule, "
        "uplink-changed, tunnel-address-changed, link-changed, gateway, resync.",
    )
    _config_arg(monitor)
    monitor.add_argument("--json", action="store_true", help="one JSON object per line")

    status = sub.add_parser(
        "status",
        help="ask the running daemon for its state",
        description="Ask the running daemon over its control socket (daemon.control_socket) for the "
        "uplink, tunnels, recent moves with their phases, counters and plugins.",
    )
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="the full answer as JSON")

    reload = sub.add_parser(
        "reload",
        help="make the running daemon re-read its configuration",
        description="Ask the running daemon (root only) to re-read and validate its configuration, "
        "as SIGHUP does.  A file with problems changes nothing: they are printed and the exit status is "
        "2.  A good file is applied as a difference: plugins enabled or disabled, plugins whose section "
        "(or the [[interfaces]] policy) changed restarted; the network state and moves in flight stay.  "
        "daemon.control_socket and daemon.netlink_rcvbuf_mib apply after a restart.",
    )
    _config_arg(reload)

    hook = sub.add_parser(
        "hook",
        help="miredo's client hook: apply the tunnel's routing profile",
        description="Run as miredo's client hook: read miredo's variables (STATE, IFACE, ADDRESS, "
        "LLADDRESS, MTU, OLD_ADDRESS) from the environment, validate them, and bring the interface to "
        "the end state of its [routing.profiles.<name>].  Exit 0 applied, 1 the kernel refused an "
        "operation (what was and was not applied is printed), 2 bad input (nothing changed).  miredo "
        "itself runs the thin script --print-client-hook writes, which starts this without Python's "
        "site machinery.",
    )
    _config_arg(hook)
    hook.add_argument(
        "--cache-dir",
        default="/run/orchestrator",
        metavar="DIR",
        help="where the compiled profiles are cached (default: /run/orchestrator)",
    )
    hook.add_argument("--hook-file", metavar="PATH", help="refuse to run unless PATH is root's and safe")
    hook.add_argument(
        "--full-python", metavar="PATH", help="the installation's interpreter, to compile the profiles' cache"
    )
    hook.add_argument(
        "--print-client-hook",
        action="store_true",
        help="print the /etc/miredo/client-hook for this installation and exit",
    )
    hook.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter --print-client-hook names (default: this one); the hook itself needs only "
        "the standard library of Python 3.10 or newer, so the system's python3 (often quicker to start) "
        "does as well: compiling the cache, when the configuration changed, is left to this one",
    )

    mip6d = sub.add_parser(
        "mip6d-conf",
        help="print mip6d.conf's Interface blocks for the [[interfaces]] policy",
        description="Render the Interface blocks of mip6d.conf from the configuration's [[interfaces]] "
        "table, the policy's one source of truth: mip6_preference becomes MnIfPreference, role tunnel "
        '"Tunnel enabled"; role lan is never a care-of address and is left out.  Paste or include the '
        "output in mip6d.conf; the daemon compares that file (mipv6.mip6d_conf) with this at start-up.  "
        "Exit 0; exit 1 when an entry cannot be rendered (a pattern such as wlan*), named on stderr.",
    )
    _config_arg(mip6d)

    plugins = sub.add_parser(
        "plugins",
        help="list discovered plugins",
        description="List every plugin of the entry-point group 'orchestrator.plugins': its "
        "distribution and version, hooks, configuration sections, whether the configuration enables "
        "it, and why it could not be loaded.",
    )
    _config_arg(plugins)
    plugins.add_argument("--json", action="store_true", help="one JSON array")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command.replace("-", "_")
    handler = globals()[f"cmd_{command}"]
    try:
        result: int = handler(args)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.path}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return result


# syslog priorities by logging level: journald reads a "<N>" prefix as the line's priority.
JOURNAL_PRIORITY = {
    logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2
}


class JournalFormatter(logging.Formatter):
    """For stderr connected to the journal: no timestamp (the journal has its own), a ``<N>``
    priority prefix instead of a level name, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")
        return f"<{JOURNAL_PRIORITY.get(record.levelno, 6)}>{text}"


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to stderr's device:inode when stderr goes to the journal."""
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return os.environ.get("JOURNAL_STREAM", "") == f"{stat.st_dev}:{stat.st_ino}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon, load

    config, infos = load(args.config)
    setup_logging(args.log_level or config.daemon.log_level)
    for info in infos:
        if info.error:
            logging.getLogger("orchestrator").warning("plugin %s skipped: %s", info.name, info.error)

    async def main_task() -> None:
        await Daemon(config, infos).run()

    try:
        asyncio.run(main_task())
    except OSError as error:
        logging.getLogger("orchestrator").error("fatal: %s", error)
        from .notify import Notifier

        with contextlib.suppress(OSError):
            Notifier().failed(error.errno or errno.EIO, f"fatal: {error}")
        return EXIT_FAILURE
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    from . import plugins
    from .daemon import load

    config, infos = load(args.config)
    for warning in plugins.config_warnings(plugins.activate(infos, config.enable), config):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK (plugins: {', '.join(config.enable) or 'none'})")
    return EXIT_OK


def format_event(event: AnyEvent, ifname: str | None) -> str:
    if isinstance(event, UplinkChanged):
        from .daemon import describe_uplink

        return f"uplink-changed move {event.move}: {describe_uplink(event)}"
    fields = event_to_json(event, ifname)
    kind = fields.pop("event")
    return f"{kind} " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def cmd_monitor(args: argparse.Namespace) -> int:
    from . import plugins
    from .daemon import load
    from .engine import Engine

    config, infos = load(args.config)
    reference = plugins.uplink_reference(plugins.activate(infos, config.enable), config)

    def sink(event: AnyEvent, _when: float) -> None:
        ifname = None
        if isinstance(event, (LinkEvent, AddressEvent)):
            ifname = engine.state.view.name_of(event.index) or getattr(event, "name", None)
        if args.json:
            line = json.dumps({"time": round(time.time(), 6), **event_to_json(event, ifname)})
        else:
            line = f"{time.strftime('%H:%M:%S')} {format_event(event, ifname)}"
        print(line, flush=True)

    engine = Engine(config, sink, reference)

    async def watch() -> None:
        engine.load()
        engine.stream()
        # The baseline, once bound and dumped: every change after this line is in the stream.
        uplink = engine.state.tracker.current
        if args.json:
            ready = {"time": round(time.time(), 6), "event": "ready", "uplink": uplink and uplink.to_json()}
            print(json.dumps(ready), flush=True)
        else:
            print(f"{time.strftime('%H:%M:%S')} ready: uplink {uplink or 'none'}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await engine.close()

    try:
        asyncio.run(watch())
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away: nothing left to say
    return EXIT_OK


def ask_daemon(config: Path, command: str) -> dict[str, Any] | None:
    """The running daemon's answer to ``command`` (None, said on stderr, when there is none)."""
    from .config import read_toml

    path = Path(DAEMON.keys["control_socket"].default)
    if config.exists():
        path = Path(read_toml(config).get("daemon", {}).get("control_socket", path))
    try:
        answer = control.request(path, command)
    except (OSError, ValueError) as error:
        print(f"orchestrator: cannot reach the daemon at {path}: {error}", file=sys.stderr)
        return None
    if "error" in answer:
        print(f"orchestrator: {answer['error']}", file=sys.stderr)
        return None
    return answer


def cmd_status(args: argparse.Namespace) -> int:
    answer = ask_daemon(args.config, "status")
    if answer is None:
        return EXIT_FAILURE
    print(json.dumps(answer, indent=2) if args.json else human_status(answer))
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    answer = ask_daemon(args.config, "reload")
    if answer is None:
        return EXIT_FAILURE
    if not answer.get("ok"):
        for problem in answer.get("problems", []):
            print(f"{args.config}: {problem}", file=sys.stderr)
        print("orchestrator: reload refused; the daemon keeps its running policy", file=sys.stderr)
        return EXIT_USAGE
    print("reloaded: " + ("; ".join(answer.get("changes", [])) or "nothing changed"))
    return EXIT_OK


def human_status(status: dict[str, Any]) -> str:
    uplink = status["uplink"]
    via = f" via {uplink['gateway']}" if uplink and uplink["gateway"] else ""
    lines = ["uplink:  " + (f"{uplink['interface']} {uplink['address']}{via}" if uplink else "none")]
    for name, address in status["tunnels"].items():
        lines.append(f"tunnel:  {name} {address or '(no address)'}")
    if status.get("reload_problem"):
        lines.append(f"config:  {status['reload_problem']} (the running policy stays)")
    watchdog = status.get("watchdog")
    if watchdog:
        state = f"withheld: {watchdog['withheld']}" if watchdog["withheld"] else "pinging"
        lines.append(f"watchdog: every {watchdog['interval_s']:g} s, {state}")
    counters = status["counters"]
    lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    for plugin in status["plugins"]:
        error = f" ({plugin['error']})" if plugin["error"] else ""
        lines.append(f"plugin:  {plugin['name']} [{plugin['state']}] from {plugin['source']}{error}")
        shown = {key: value for key, value in plugin.get("status", {}).items() if value not in ("", None)}
        if shown:
            lines.append("         " + ", ".join(f"{key}={value}" for key, value in shown.items()))
    for move in status["moves"][-5:]:
        phases = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in move["phases"].items())
        lines.append(f"move {move['id']}: {move['outcome'] or 'in progress'} ({phases})")
    return "\n".join(lines)


def plugin_module(plugin: str, module: str) -> Any:
    """A built-in plugin's module for a command of its own, or None (said on stderr) when that
    plugin is not installed: the core does not depend on any plugin."""
    import importlib

    try:
        return importlib.import_module(f"orchestrator_{plugin}.{module}")
    except ImportError:
        print(f"orchestrator: the {plugin} plugin is not installed", file=sys.stderr)
        return None


def cmd_mip6d_conf(args: argparse.Namespace) -> int:
    from .daemon import load

    mip6d_conf = plugin_module("mipv6", "mip6d_conf")
    if mip6d_conf is None:
        return EXIT_FAILURE
    config, _ = load(args.config)
    rendered = mip6d_conf.render(config)
    print(rendered.text, end="")
    for problem in rendered.problems:
        print(f"{args.config}: {problem}", file=sys.stderr)
    return EXIT_FAILURE if rendered.problems else EXIT_OK


def cmd_hook(args: argparse.Namespace) -> int:
    hook = plugin_module("routing", "hook")
    if hook is None:
        return EXIT_FAILURE
    if args.print_client_hook:
        print(hook.client_hook_script(args.python, str(args.config), args.cache_dir), end="")
        return EXIT_OK
    argv = ["--config", str(args.config), "--cache-dir", args.cache_dir]
    if args.hook_file:
        argv += ["--hook-file", args.hook_file]
    if args.full_python:
        argv += ["--full-python", args.full_python]
    return int(hook.main(argv))


def cmd_plugins(args: argparse.Namespace) -> int:
    from . import plugins
    from .config import read_toml

    infos = plugins.discover()
    enabled: list[str] = []
    if args.config.exists():
        enabled = read_toml(args.config).get("plugins", {}).get("enable", [])
    else:
        print(f"orchestrator: no {args.config}: every plugin is shown as disabled", file=sys.stderr)
    if args.json:
        print(json.dumps([info.to_json(enabled) for info in infos], indent=2))
        return EXIT_OK
    for info in infos:
        state = "enabled" if info.name in enabled else "disabled"
        origin = f"{info.distribution} {info.version}" if info.distribution else info.target
        print(f"{info.name} ({origin}) [{state if info.loaded else 'error'}]")
        if info.error:
            print(f"    error: {info.error}")
        if info.hooks:
            print(f"    hooks: {', '.join(info.hooks)}")
        if info.sections:
            print(f"    sections: {', '.join(sorted(info.sections))}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
