"""``orchestrator hook``: the routing plugin's command, declared through ``orchestrator_commands``.

miredo does not run this: it runs the thin script ``--print-client-hook`` writes, which calls
``hook.main`` in a bare interpreter.  This command is that same hook under the full command line
(what the thin script re-executes once to compile its cache), and the installer's helper.
"""

from __future__ import annotations

import argparse
import os
import sys

from orchestrator import Command

from . import hook

EXIT_OK = 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=hook.DEFAULT_CACHE_DIR,
        metavar="DIR",
        help=f"where the compiled profiles are cached (default: {hook.DEFAULT_CACHE_DIR})",
    )
    parser.add_argument("--hook-file", metavar="PATH", help="refuse to run unless PATH is root's and safe")
    parser.add_argument(
        "--full-python", metavar="PATH", help="the installation's interpreter, to compile the profiles' cache"
    )
    parser.add_argument(
        "--print-client-hook",
        action="store_true",
        help="print the /etc/miredo/client-hook for this installation and exit",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter --print-client-hook names (default: this one); the hook itself needs only "
        "the standard library of Python 3.10 or newer, so the system's python3 (often quicker to start) "
        "does as well: compiling the cache, when the configuration changed, is left to this one",
    )


def run_hook(args: argparse.Namespace) -> int:
    """Print the thin hook, or run the hook itself with miredo's variables from the environment."""
    if args.print_client_hook:
        print(hook.client_hook_script(args.python, str(args.config), args.cache_dir), end="")
        return EXIT_OK
    argv = ["--config", str(args.config), "--cache-dir", args.cache_dir]
    if args.hook_file:
        argv += ["--hook-file", args.hook_file]
    if args.full_python:
        argv += ["--full-python", args.full_python]
    return hook.main(argv, dict(os.environ))


HOOK = Command(
    "hook",
    "miredo's client hook: apply the tunnel's routing profile",
    "Run as miredo's client hook: read miredo's variables (STATE, IFACE, ADDRESS, LLADDRESS, MTU, "
    "OLD_ADDRESS) from the environment, validate them, and bring the interface to the end state of its "
    "[routing.profiles.<name>].  Exit 0 applied, 1 the kernel refused an operation (what was and was not "
    "applied is printed), 2 bad input (nothing changed).  miredo itself runs the thin script "
    "--print-client-hook writes, which starts this without Python's site machinery.",
    run_hook,
    _arguments,
)
