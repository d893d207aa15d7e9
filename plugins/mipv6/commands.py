"""``orchestrator mip6d-conf``: the mipv6 plugin's command, declared through ``orchestrator_commands``."""

from __future__ import annotations

import argparse
import sys

from orchestrator import Command, load_config

from .mip6d_conf import render

EXIT_OK, EXIT_FAILURE = 0, 1


def print_mip6d_conf(args: argparse.Namespace) -> int:
    """The rendered blocks on stdout, every entry that cannot be rendered on stderr (exit 1)."""
    rendered = render(load_config(args.config))
    print(rendered.text, end="")
    for problem in rendered.problems:
        print(f"{args.config}: {problem}", file=sys.stderr)
    return EXIT_FAILURE if rendered.problems else EXIT_OK


MIP6D_CONF = Command(
    "mip6d-conf",
    "print mip6d.conf's Interface blocks for the [[interfaces]] policy",
    "Render the Interface blocks of mip6d.conf from the configuration's [[interfaces]] table, the "
    "policy's one source of truth: mip6_preference becomes MnIfPreference, role tunnel "
    '"Tunnel enabled"; role lan is never a care-of address and is left out.  Paste or include the '
    "output in mip6d.conf; the daemon compares that file (mipv6.mip6d_conf) with this at start-up.  "
    "Exit 0; exit 1 when an entry cannot be rendered (a pattern such as wlan*), named on stderr.",
    print_mip6d_conf,
)
