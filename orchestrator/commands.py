"""Command: one subcommand of the ``orchestrator`` command line, as the core and plugins declare it.

The core's own commands and those plugins add through ``orchestrator_commands`` are the same kind of
object (as tox 4 registers its built-in commands exactly like a plugin's), so the command line knows
no plugin by name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes only the ``--config`` every command has."""


@dataclass(frozen=True)
class Command:
    """``orchestrator NAME``: what ``--help`` says of it, its options, and what runs it.

    ``arguments`` adds the command's own options to its parser (``--config PATH`` is added for every
    command).  ``run`` gets the parsed arguments (``args.config`` is a ``pathlib.Path``) and returns
    the exit status: 0 success, 1 runtime failure, 2 bad usage or an invalid configuration.  A
    ``ConfigError`` it raises is printed one line per problem, with exit status 2.
    """

    name: str
    help: str
    description: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
