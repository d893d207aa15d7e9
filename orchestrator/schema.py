"""Declarative configuration schemas, shared by the core and by plugins.

A plugin declares its section as a ``Section`` of ``Key``s; the core validates every section with
the same code, so every problem is reported the same way: the file, the key path, what was
expected and what was found.  Validation collects all problems instead of stopping at the first,
because a user fixing a file wants the whole list at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[Any], "str | None"]


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Key:
    """One key: its type, default, bounds and a one-line description (used in docs and errors).

    ``kind`` is one of ``str``, ``int``, ``float`` (an integer is accepted), ``bool``,
    ``list[str]``, ``ipv4`` (an IPv4 literal), ``ipv6`` (an IPv6 literal), or ``str|int``.
    """

    kind: str
    doc: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Check | None = None


@dataclass(frozen=True)
class Section:
    """A table with a fixed set of keys; ``tables`` names its sub-tables.

    ``array``: the section is an array of such tables (``[[name]]``, one per script, say).  At the
    top level its validated value is ``{"entries": [table, ...]}`` in file order; as a sub-table
    (``[[teredo.standby]]``) it is the list itself.  A sub-table that is not an array is a table of
    tables keyed by user-chosen names (``[routing.profiles.<name>]``).
    """

    keys: Mapping[str, Key]
    tables: Mapping[str, Section] = field(default_factory=dict)
    doc: str = ""
    array: bool = False


_KIND_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "a list of strings",
    "ipv4": "an IPv4 address literal",
    "ipv6": "an IPv6 address literal",
    "str|int": "a string or an integer",
}
KINDS = tuple(_KIND_NAMES)


def schema_problems(sections: Mapping[Any, object]) -> list[str]:
    """What makes the sections a plugin declares unable to check a file: a value that is not a
    ``Section``, keys that are not ``Key``s, a kind nobody knows.  Asked when the plugin loads, so that
    its mistake is its own error rather than a crash of every configuration load (a disabled plugin's
    sections are checked too).  Each problem names the section and the key."""
    problems: list[str] = []
    for name, section in sections.items():
        problems += _section_problems(section, f"section {name!r}")
    return problems


def _section_problems(section: object, where: str, within: tuple[str, ...] = ()) -> list[str]:
    """``within``: the path of a sub-table (``("profiles", "<name>")``) inside the section ``where``."""
    here = f"{where}, table {'.'.join(within)!r}" if within else where
    if not isinstance(section, Section):
        return [f"{here}: expected a Section, got {type(section).__name__}"]
    problems: list[str] = []
    for label, found in (("keys", section.keys), ("tables", section.tables)):
        if not isinstance(found, Mapping) or not all(isinstance(name, str) for name in found):
            got = f"the names {[*found]!r}" if isinstance(found, Mapping) else type(found).__name__
            problems.append(f"{here}: expected its {label} as a mapping by name (a string), got {got}")
    if problems:
        return problems
    for name, key in section.keys.items():
        at = f"{where}, key {'.'.join((*within, name))!r}"
        if not isinstance(key, Key):
            problems.append(f"{at}: expected a Key, got {type(key).__name__}")
        elif key.kind not in KINDS:
            problems.append(f"{at}: unknown kind {key.kind!r} (known kinds: {', '.join(KINDS)})")
    for name, table in section.tables.items():
        entry = "[]" if isinstance(table, Section) and table.array else "<name>"
        problems += _section_problems(table, where, (*within, name, entry))
    return problems


def _type_ok(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if kind in ("str", "ipv4", "ipv6"):
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float))
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "str|int":
        return isinstance(value, (str, int))
    return False


def _literal_problem(kind: str, value: Any) -> str | None:
    parser = {"ipv4": ipaddress.IPv4Address, "ipv6": ipaddress.IPv6Address}.get(kind)
    if parser is None:
        return None
    try:
        parser(value)
    except ValueError:
        return f"expected {_KIND_NAMES[kind]}, got {describe_value(value)}"
    return None


def describe_value(value: Any) -> str:
    """A value as the file spells it (``true``, ``"2s"``), or what it is for a table or a list."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def check_key(key: Key, value: Any) -> str | None:
    """The problem with one value, or None when it is acceptable."""
    if not _type_ok(key.kind, value):
        return f"expected {_KIND_NAMES[key.kind]}, got {describe_value(value)}"
    problem = _literal_problem(key.kind, value)
    if problem:
        return problem
    if key.choices is not None and value not in key.choices:
        return f"expected one of {', '.join(key.choices)}, got {describe_value(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key.minimum is not None and value < key.minimum:
            return f"expected a value >= {key.minimum:g}, got {describe_value(value)}"
        if key.maximum is not None and value > key.maximum:
            return f"expected a value <= {key.maximum:g}, got {describe_value(value)}"
    return key.check(value) if key.check else None


def validate(section: Section, table: Any, path: str, problems: list[str]) -> dict[str, Any]:
    """Validate ``table`` against ``section``; fill defaults; append problems as "path: text"."""
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table, got {describe_value(table)}")
        return {}
    result: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{path}.{name}" if path else name
        if name in section.keys:
            problem = check_key(section.keys[name], value)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                result[name] = value
        elif name in section.tables:
            sub = section.tables[name]
            validated = _validate_array if sub.array else _validate_named_tables
            result[name] = validated(sub, value, where, problems)
        else:
            problems.append(f"{where}: unknown key (known: {', '.join(known_keys(section))})")
    for name, key in section.keys.items():
        if name in result or name in table:
            continue
        if key.default is REQUIRED:
            problems.append(f"{path}.{name}: missing (required: {key.doc})")
        elif key.default is not None:
            result[name] = key.default
    return result


def validate_section(section: Section, value: Any, path: str, problems: list[str]) -> dict[str, Any]:
    """Validate a whole top-level section: one table, or each entry of an array of tables."""
    if not section.array:
        return validate(section, value if value is not None else {}, path, problems)
    return {"entries": _validate_array(section, [] if value is None else value, path, problems)}


def _validate_array(section: Section, value: Any, path: str, problems: list[str]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        problems.append(f"{path}: expected an array of tables ([[{path}]]), got {describe_value(value)}")
        return []
    return [validate(section, entry, f"{path}[{i}]", problems) for i, entry in enumerate(value)]


def _validate_named_tables(
    section: Section, value: Any, path: str, problems: list[str]
) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a table of named tables, got {describe_value(value)}")
        return {}
    return {name: validate(section, sub, f"{path}.{name}", problems) for name, sub in value.items()}


def known_keys(section: Section) -> list[str]:
    return sorted([*section.keys, *section.tables])
