"""``orchestrator hook``: the routing plugin's command, declared through ``orchestrator_commands``.

miredo does not run this: it runs the shell script ``--print-client-hook`` writes.  This command is
the full hook that script hands unusual runs to (``hook.main``), under the full command line, and
the installer's helper.
"""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator import Command

from . import hook, shell_hook

EXIT_OK = 0
EXIT_BAD_CONFIG = 2


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=hook.DEFAULT_CACHE_DIR,
        metavar="DIR",
        help=f"where the compiled profiles are cached (default: {hook.DEFAULT_CACHE_DIR})",
    )
    parser.add_argument("--hook-file", metavar="PATH", help="refuse to run unless PATH is root's and safe")
    parser.add_argument(
        "--print-client-hook",
        action="store_true",
        help="print the /etc/miredo/client-hook for this configuration and installation and exit",
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="with --print-client-hook: write the hook to PATH instead (mode 0755, replaced in one step, "
        "so a configuration that does not validate leaves the installed hook as it was)",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter the printed hook runs the full hook with, for the runs it does not handle "
        "itself (default: this one; it must have this project installed)",
    )


def run_hook(args: argparse.Namespace) -> int:
    """Print the client hook for this configuration, or run the full hook with miredo's variables
    from the environment."""
    if args.print_client_hook:
        try:
            profiles = hook.compile_config(str(args.config))
        except hook.BadInput as error:
            print(f"orchestrator hook: {error}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        text = shell_hook.script(profiles, str(args.config), args.cache_dir, args.python)
        if args.output is None:
            print(text, end="")
        else:
            shell_hook.install(text, args.output)
        return EXIT_OK
    argv = ["--config", str(args.config), "--cache-dir", args.cache_dir]
    if args.hook_file:
        argv += ["--hook-file", args.hook_file]
    return hook.main(argv, dict(os.environ))


HOOK = Command(
    "hook",
    "miredo's client hook: apply the tunnel's routing profile",
    "With --print-client-hook: validate the configuration and print the shell script that "
    "/etc/miredo/client-hook must hold (its profiles are compiled in; print it again after changing "
    "the configuration: until then it hands every run to the full hook, which is slower).  Without: "
    "run as the full client hook: read miredo's variables (STATE, IFACE, ADDRESS, LLADDRESS, MTU) from "
    "the environment, validate them, and bring the interface to the end state of its "
    "[routing.profiles.<name>].  Exit 0 applied, 1 the kernel refused an operation (what was and was not "
    "applied is printed), 2 bad input or configuration (nothing changed).",
    run_hook,
    _arguments,
)
