"""The ``[[exec]]`` entries: one script each, with the events and interfaces it runs for."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator import REQUIRED, Key, Section

#: The events a script can ask for, named after the hooks that carry them.
EVENTS = ("uplink-changed", "tunnel-address-changed", "link-changed", "move-finished")


def _events_problem(events: list[str]) -> str | None:
    unknown = [event for event in events if event not in EVENTS]
    if unknown:
        return f"unknown events {unknown} (known: {', '.join(EVENTS)})"
    return None if events else "expected at least one event"


def _command_problem(command: list[str]) -> str | None:
    if not command:
        return "expected the program and its arguments, got an empty list"
    if not os.path.isabs(command[0]):
        return f"the program must be an absolute path (no shell, no PATH search), got {command[0]!r}"
    return None


SECTION = Section(
    {
        "events": Key("list[str]", f"events that run the script: {', '.join(EVENTS)}", REQUIRED,
                      check=_events_problem),
        "command": Key("list[str]", "argv: an absolute program path and its arguments", REQUIRED,
                       check=_command_problem),
        "interfaces": Key(
            "list[str]", "interface names or fnmatch patterns; absent: every interface",
            check=lambda names: None if names else "expected at least one name (absent: every interface)",
        ),
        "timeout_s": Key("float", "kill the script's process group after this long", 10.0, 0.1, 3600),
        "dispatcher_arguments": Key(
            "bool", "append the interface and the action as $1 and $2, as NetworkManager-dispatcher", False
        ),
        "name": Key("str", "name in logs and problems; default: the program's file name"),
    },
    doc="scripts run on the daemon's events, in file order",
    array=True,
)


@dataclass(frozen=True)
class Script:
    """One ``[[exec]]`` entry, validated."""

    index: int
    name: str
    events: frozenset[str]
    command: tuple[str, ...]
    interfaces: tuple[str, ...] | None
    timeout_s: float
    dispatcher_arguments: bool

    @classmethod
    def from_entry(cls, index: int, entry: Mapping[str, Any]) -> Script:
        command = tuple(entry["command"])
        return cls(
            index=index,
            name=entry.get("name") or os.path.basename(command[0]),
            events=frozenset(entry["events"]),
            command=command,
            interfaces=tuple(entry["interfaces"]) if "interfaces" in entry else None,
            timeout_s=float(entry["timeout_s"]),
            dispatcher_arguments=entry["dispatcher_arguments"],
        )

    def wants(self, event: str, interfaces: Sequence[str]) -> bool:
        """Whether this script runs for ``event`` on any of ``interfaces`` (the ones it concerns)."""
        if event not in self.events:
            return False
        if self.interfaces is None:
            return True
        return any(fnmatch.fnmatchcase(name, pattern) for name in interfaces for pattern in self.interfaces)

    def argv(self, interface: str, action: str) -> list[str]:
        return [*self.command, interface, action] if self.dispatcher_arguments else list(self.command)


def scripts(section: Mapping[str, Any]) -> list[Script]:
    return [Script.from_entry(index, entry) for index, entry in enumerate(section.get("entries", []))]


def problems(section: Mapping[str, Any]) -> list[str]:
    """What the schema cannot see: a program that is missing or not executable now."""
    found = []
    for script in scripts(section):
        program = script.command[0]
        if not os.path.isfile(program):
            found.append(f"exec[{script.index}].command: no such program {program!r}")
        elif not os.access(program, os.X_OK):
            found.append(f"exec[{script.index}].command: {program!r} is not executable")
    return found
