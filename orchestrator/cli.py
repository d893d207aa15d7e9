"""The ``orchestrator`` command line.

Exit codes: 0 success, 1 runtime failure (daemon not reachable, netlink error), 2 bad usage or an
invalid configuration (one line per problem on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import inspect
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, control
from .commands import Command
from .config import DAEMON, DEFAULT_PATH, RESTART_ONLY_KEYS, ConfigError, read_toml
from .events import AddressEvent, AnyEvent, LinkEvent, StandbyUplinksChanged, UplinkChanged, event_to_json

if TYPE_CHECKING:
    from .plugins import PluginInfo

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


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"configuration file (default: {DEFAULT_PATH})",
    )


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the answer as JSON")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    _json_argument(parser)
    parser.add_argument(
        "--watch", nargs="?", type=positive_seconds, const=1.0, metavar="SECONDS",
        help="redraw the answer every SECONDS (default 1) until Ctrl-C",
    )


def positive_seconds(text: str) -> float:
    """``--watch``'s interval: a number above zero (0 would ask the daemon without pause)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.05 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0.05 to 3600 seconds, got {text}")
    return seconds


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="override daemon.log_level (debug shows every netlink event)",
    )


def build_parser(commands: Iterable[Command]) -> argparse.ArgumentParser:
    """The command line: the core's commands and the plugins' alike, each with ``--config``."""
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        one = sub.add_parser(command.name, help=command.help, description=command.description)
        _config_argument(one)
        command.arguments(one)
    return parser


def _command_word(argv: list[str]) -> str | None:
    """The command named on the line (the top level takes no option with a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {command.name: command for command in CORE_COMMANDS}
    owners: dict[str, str] = {}
    word = _command_word(argv)
    if word not in commands:  # a plugin's command, or the help that lists them all
        from . import plugins

        infos = plugins.discover()
        owners = add_plugin_commands(infos, commands)
        if word is not None and word not in commands:
            broken = [f"{info.name} ({info.error})" for info in infos if not info.loaded]
            if broken:
                print(
                    f"orchestrator: no command {word!r}; plugins that could not be loaded, one of "
                    f"which may provide it: {'; '.join(broken)}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
    args = build_parser(commands.values()).parse_args(argv)
    try:
        owner = owners.get(args.command)
        if owner is not None and not plugin_enabled(owner, args.config):
            print(
                f"orchestrator {args.command}: note: a command of plugin {owner!r}, which {args.config} "
                "does not enable (plugins.enable): the daemon does not run that plugin",
                file=sys.stderr,
            )
        result: int = commands[args.command].run(args)
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.path}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return result


def add_plugin_commands(infos: list[PluginInfo], commands: dict[str, Command]) -> dict[str, str]:
    """Add the commands every loadable plugin declares (enabled or not, so that help lists them)
    to ``commands``; returns each added command's plugin.  A name already taken, or a declaration
    that fails, is said on stderr and skipped."""
    from . import plugins

    owners: dict[str, str] = {}
    manager = plugins.activate(infos, [info.name for info in infos if info.loaded])
    for plugin, offered, error in plugins.call_each(manager.hook.orchestrator_commands, {}):
        if error is None and not (
            isinstance(offered, (list, tuple))
            and all(isinstance(c, Command) and not inspect.iscoroutinefunction(c.run) for c in offered)
        ):
            error = TypeError("orchestrator_commands must return a list of orchestrator.Command "
                              "whose run is a plain function")
        if error is not None:
            print(f"orchestrator: plugin {plugin}: its commands are skipped: {error}", file=sys.stderr)
            continue
        for command in offered:
            if command.name in commands:
                holder = owners.get(command.name, "the core")
                print(f"orchestrator: plugin {plugin}: command {command.name!r} is {holder}'s: skipped",
                      file=sys.stderr)
            else:
                commands[command.name] = command
                owners[command.name] = plugin
    return owners


def enabled_plugins(config: Path) -> list[str] | None:
    """``plugins.enable`` of the file, None when there is no file."""
    if not config.exists():
        return None
    enabled: list[str] = read_toml(config).get("plugins", {}).get("enable", [])
    return enabled


def plugin_enabled(plugin: str, config: Path) -> bool:
    """Whether the file enables ``plugin`` (true before there is a file: installing)."""
    enabled = enabled_plugins(config)
    return enabled is None or plugin in enabled

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
    from . import plugins
    from .daemon import Daemon

    config, infos = plugins.load(args.config)
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

    config, infos = plugins.load(args.config)
    for warning in plugins.config_warnings(plugins.activate(infos, config.enable), config):
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    print(f"{args.config}: OK (plugins: {', '.join(config.enable) or 'none'})")
    return EXIT_OK


def format_event(event: AnyEvent, ifname: str | None) -> str:
    """One line of ``orchestrator monitor``: uplinks as the log names them, values as the TOML
    spells them (``true``), never a Python repr."""
    from .daemon import describe_standby, describe_uplink
    from .status_text import value_text

    if isinstance(event, UplinkChanged):
        return f"uplink-changed move {event.move}: {describe_uplink(event)}"
    if isinstance(event, StandbyUplinksChanged):
        return f"{event.kind}: {describe_standby(event)}"
    fields = event_to_json(event, ifname)
    kind = fields.pop("event")
    return f"{kind} " + " ".join(f"{k}={value_text(v)}" for k, v in fields.items() if v is not None)


def cmd_monitor(args: argparse.Namespace) -> int:
    from . import plugins
    from .daemon import describe_one
    from .engine import Engine

    config, infos = plugins.load(args.config)
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
            print(f"{time.strftime('%H:%M:%S')} ready: uplink {describe_one(uplink)}", flush=True)
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


CLEAR_SCREEN = "\x1b[H\x1b[2J"  # cursor home, erase the screen (ECMA-48)


def _stop_watching(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_status(args: argparse.Namespace) -> int:
    from .status_text import human_status

    if args.watch is not None:
        # Ctrl-C or SIGTERM ends a watch cleanly, even when started with SIGINT ignored (a shell's
        # background job): Python would otherwise keep the inherited SIG_IGN.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _stop_watching)
    try:
        while True:
            answer = ask_daemon(args.config, "status")
            if answer is None:
                return EXIT_FAILURE
            text = json.dumps(answer, indent=2) if args.json else human_status(answer)
            if args.watch is None:
                print(text)
                return EXIT_OK
            heading = time.strftime("%H:%M:%S ") + f"every {args.watch:g} s, Ctrl-C ends\n"
            print(CLEAR_SCREEN + heading + text, flush=True)
            time.sleep(args.watch)
    except KeyboardInterrupt:  # how --watch ends
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


def cmd_plugins(args: argparse.Namespace) -> int:
    from . import plugins

    infos = plugins.discover()
    enabled = enabled_plugins(args.config)
    if enabled is None:
        print(f"orchestrator: no {args.config}: every plugin is shown as disabled", file=sys.stderr)
        enabled = []
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


RELOAD_DESCRIPTION = (
    "Ask the running daemon (root only) to re-read and validate its configuration, as SIGHUP does.  "
    "A file with problems changes nothing: they are printed and the exit status is 2.  A good file is "
    "applied as a difference: plugins enabled or disabled, plugins whose section (or the [[interfaces]] "
    "policy) changed restarted; the network state and moves in flight stay.  "
    + ", ".join(f"daemon.{key}" for key in RESTART_ONLY_KEYS)
    + " and the routing tables the plugins watch apply after a restart."
)

CORE_COMMANDS = (
    Command(
        "run",
        "run the daemon in the foreground",
        "Run the daemon in the foreground; logs go to stderr.  SIGTERM or SIGINT stop it.",
        cmd_run,
        _run_arguments,
    ),
    Command(
        "check-config",
        "validate a configuration file",
        "Validate the configuration against the core's and every installed plugin's schema, then let "
        "the enabled plugins cross-check it.  Exit 0 when valid (warnings about settings that are valid "
        "but likely to hurt, such as miredo naming its server by host name, go to stderr); exit 2 with "
        "one line per problem otherwise.",
        cmd_check_config,
    ),
    Command(
        "monitor",
        "print the event stream as the daemon sees it",
        "Print the normalized event stream, derived events (uplink-changed, standby-uplinks-changed, "
        "tunnel-address-changed, link-changed, link-alias-changed) included, without running any "
        "plugin.  It needs no running daemon.  With --json: "
        "one object per line with at least 'time' (unix seconds) and 'event': ready (once bound and "
        "dumped, with the start-up uplink), link, address, route, rule, uplink-changed, "
        "standby-uplinks-changed, tunnel-address-changed, link-changed, link-alias-changed, gateway, "
        "resync.",
        cmd_monitor,
        _json_argument,
    ),
    Command(
        "status",
        "ask the running daemon for its state",
        "Ask the running daemon over its control socket (daemon.control_socket) for the uplink, tunnels, "
        "recent moves with their phases (as a timeline: each phase's segment as wide as the time it "
        "took, times in ms since the move began), counters, metrics and plugins.",
        cmd_status,
        _status_arguments,
    ),
    Command("reload", "make the running daemon re-read its configuration", RELOAD_DESCRIPTION, cmd_reload),
    Command(
        "plugins",
        "list discovered plugins",
        "List every plugin of the entry-point group 'orchestrator.plugins': its distribution and version, "
        "hooks, configuration sections, whether the configuration enables it, and why it could not be "
        "loaded.",
        cmd_plugins,
        _json_argument,
    ),
)


if __name__ == "__main__":
    sys.exit(main())
