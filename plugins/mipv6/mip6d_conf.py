"""mip6d's interface policy, written from the TOML ``[[interfaces]]`` table and checked against it.

The TOML is the one source of truth: the daemon predicts the care-of address from the same
preferences mip6d uses, so a mip6d.conf that says something else makes every prediction wrong.
mip6d reads ``MnIfPreference`` once at start (SIGHUP does nothing), hence a written block and a
check, never a live change.

The syntax is UMIP's own (src/scan.l, src/gram.y):

* ``Interface "NAME" { MnIfPreference N; Tunnel enabled; }`` or ``Interface "NAME";``.  N must be
  0..10 (POL_MN_IF_MIN_PREFERENCE in src/policy.h; lower is preferred, 0 = never used, 10 is also
  the default); mip6d refuses to start on anything else.  ``Tunnel`` takes enabled/allow/true or
  disabled/deny/block/false.
* Comments are ``#`` to the end of the line only: the lexer has no ``/* */`` or ``//`` (``/`` is a
  token, as in ``2001:db8::/64``), and a ``#`` inside a quoted string is part of the string.
* ``include "GLOB"`` (UMIP 1.0+) reads other files in place, up to 5 deep, with no ``;`` after it.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import Config, InterfaceSpec

MAX_PREFERENCE = 10  # POL_MN_IF_MIN_PREFERENCE: the least preferred value mip6d accepts
DEFAULT_PREFERENCE = 10  # POL_MN_IF_DEF_PREFERENCE: what an Interface without MnIfPreference gets
MAX_INCLUDE_DEPTH = 5  # MAX_INCLUDE_DEPTH in src/scan.l
_NUMBER = re.compile("[0-9]+")
_TRUE = frozenset({"enabled", "allow", "true"})
_FALSE = frozenset({"disabled", "deny", "block", "false"})
# One token the way mip6d's flex lexer cuts it: a comment, a quoted string (an unterminated one
# ends at the newline), one punctuation character, or a run of anything else.
_TOKEN = re.compile(
    r'\s+|#[^\n]*|"(?P<string>[^"\n]*)["\n]?|(?P<punct>[{};/=(),])|(?P<word>[^\s{};/=(),"#]+)'
)


@dataclass(frozen=True)
class InterfacePolicy:
    """What mip6d.conf says of one interface.  ``preference`` None: no ``MnIfPreference`` (mip6d
    then uses DEFAULT_PREFERENCE)."""

    preference: int | None
    tunnel: bool = False

    @property
    def effective_preference(self) -> int:
        return DEFAULT_PREFERENCE if self.preference is None else self.preference

    def describe(self) -> str:
        return f"MnIfPreference {self.effective_preference}" + (", Tunnel enabled" if self.tunnel else "")


@dataclass(frozen=True)
class Rendered:
    """``text`` to paste into (or include from) mip6d.conf; ``interfaces`` what it says, by name;
    ``problems`` one line per ``[[interfaces]]`` entry that could not be written."""

    text: str
    interfaces: dict[str, InterfacePolicy] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def render(config: Config) -> Rendered:
    """The ``Interface`` blocks for every entry mip6d may use as a care-of interface.

    Entries with role ``lan`` (never a care-of address) or without ``mip6_preference`` are not
    mip6d's business and are left out silently; an entry that cannot be written is left out with a
    problem naming it.
    """
    interfaces: dict[str, InterfacePolicy] = {}
    problems: list[str] = []
    for spec in config.interfaces:
        policy = _policy(spec)
        if policy is None:
            continue
        problem = _unwritable(config, spec, policy)
        if problem:
            problems.append(f"{spec.origin} (match {spec.match!r}): {problem}; not written")
        else:
            interfaces[spec.match] = policy
    header = (
        f"# Generated from {config.path} ([[interfaces]]) by the orchestrator: edit that file, not this.\n"
        '# Paste into mip6d.conf, or save it and add the line: include "/path/to/this/file"\n'
    )
    return Rendered(header + "".join(_block(name, p) for name, p in interfaces.items()), interfaces, problems)


def parse(text: str) -> dict[str, InterfacePolicy]:
    """The ``Interface`` blocks of a mip6d.conf, by name.

    Everything else is skipped, including the statements of other blocks (``MnHomeLink``,
    ``IPsecPolicySet`` …); an interface named twice keeps its first block.
    """
    return _scan(text)[0]


def differences(config: Config, path: Path) -> list[str]:
    """One line per way ``path`` (with the files it includes) disagrees with the TOML.

    An interface that only an fnmatch pattern of the TOML names cannot be written by ``render``,
    but it is still checked here against that pattern's entry.
    """
    try:
        found = _read(path, MAX_INCLUDE_DEPTH)
    except _Unreadable as error:
        return [str(error)]
    lines = [f"{path}: {line}" for line in found.problems]
    wanted = render(config).interfaces
    for name, policy in wanted.items():
        if name not in found.interfaces:
            lines.append(f'{path}: no Interface "{name}"; {_where(config, name)} gives {policy.describe()}')
    for name, policy in found.interfaces.items():
        line = _difference(config, name, policy)
        if line:
            lines.append(f'{path}: Interface "{name}" {line}')
    return lines


def _policy(spec: InterfaceSpec) -> InterfacePolicy | None:
    """What an entry asks of mip6d: nothing for a LAN side or an interface without preference."""
    if spec.role == "lan" or spec.mip6_preference is None:
        return None
    return InterfacePolicy(spec.mip6_preference, spec.is_tunnel)


def _unwritable(config: Config, spec: InterfaceSpec, policy: InterfacePolicy) -> str | None:
    """Why an entry cannot become an Interface block, or None."""
    if any(c in spec.match for c in "*?["):
        return "an fnmatch pattern cannot name a mip6d Interface: list each interface by its name"
    if not _valid_name(spec.match):
        return "not a Linux interface name that mip6d.conf can quote"
    if policy.effective_preference > MAX_PREFERENCE:
        return f"mip6_preference {policy.preference}: mip6d accepts 0..{MAX_PREFERENCE} and will not start"
    first = config.interface(spec.match)
    if first is not None and first is not spec:
        return f"{first.origin} (match {first.match!r}) comes first and decides"
    return None


def _valid_name(name: str) -> bool:
    """Linux's dev_valid_name(), plus the quote mip6d's strings cannot hold."""
    return (
        0 < len(name) < 16
        and name not in {".", ".."}
        and name.isprintable()
        and not any(c.isspace() or c in '/:"' for c in name)
    )


def _where(config: Config, name: str) -> str:
    """Which TOML entry decides for ``name``, as a user finds it in the file."""
    spec = config.interface(name)
    if spec is None:
        return f"no [[interfaces]] entry of {config.path}"
    file = "" if spec.declared_by_plugin else f"{config.path} "
    return f"{file}{spec.origin} (match {spec.match!r})"


def _difference(config: Config, name: str, found: InterfacePolicy) -> str | None:
    """How mip6d.conf's block for ``name`` differs from the TOML entry that decides for it."""
    spec = config.interface(name)
    where = _where(config, name)
    if spec is None:
        return f"is not in the TOML ({where} matches it): add one, or remove the block"
    if spec.role == "lan":
        return f"makes a care-of interface of what {where} gives role lan"
    wanted = _policy(spec)
    if wanted is None:
        return f"is used by mip6d, but {where} sets no mip6_preference"
    parts = []
    if found.effective_preference != wanted.effective_preference:
        parts.append(f"has MnIfPreference {found.effective_preference}, {where} says {wanted.preference}")
    if wanted.tunnel and not found.tunnel:
        parts.append(f'lacks "Tunnel enabled;", {where} makes it a tunnel')
    if found.tunnel and not wanted.tunnel:
        parts.append(f'has "Tunnel enabled;", {where} gives it role {spec.role} without ipv6_tunnel')
    return "; ".join(parts) or None


def _block(name: str, policy: InterfacePolicy) -> str:
    tunnel = "\tTunnel enabled;\n" if policy.tunnel else ""
    return f'\nInterface "{name}" {{\n\tMnIfPreference {policy.preference};\n{tunnel}}}\n'


@dataclass
class _Found:
    interfaces: dict[str, InterfacePolicy] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _Unreadable(Exception):
    """The file itself cannot be read: the one line ``differences`` returns."""


def _read(path: Path, depth: int) -> _Found:
    """``path``'s Interface blocks and those of the files it includes, in mip6d's order.

    mip6d passes an include pattern to glob() as written, relative to its working directory; a
    relative pattern is taken here relative to the including file, the likeliest intent.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise _Unreadable(f"{path}: cannot read: {error.strerror}") from None
    interfaces, includes = _scan(text)
    found = _Found(dict(interfaces))
    for pattern in includes:
        if depth <= 1:
            found.problems.append(f'include "{pattern}" is nested more than {MAX_INCLUDE_DEPTH} deep')
            continue
        matches = sorted(glob.glob(str(path.parent / pattern)))
        if not matches:
            found.problems.append(f'include "{pattern}" matches no file')
        for match in matches:
            try:
                included = _read(Path(match), depth - 1)
            except _Unreadable as error:
                found.problems.append(str(error))
                continue
            found.problems.extend(included.problems)
            for name, policy in included.interfaces.items():
                found.interfaces.setdefault(name, policy)
    return found


def _scan(text: str) -> tuple[dict[str, InterfacePolicy], list[str]]:
    """The Interface blocks (first one wins) and include patterns at the top level of ``text``."""
    interfaces: dict[str, InterfacePolicy] = {}
    includes: list[str] = []
    tokens = _tokens(text)
    depth = 0
    for kind, value in tokens:
        if kind == "punct":
            depth += {"{": 1, "}": -1}.get(value, 0)
            depth = max(depth, 0)  # a stray "}" must not hide what follows
        elif depth == 0 and kind == "word" and value == "include":
            kind, value = next(tokens, ("", ""))
            if kind == "string":
                includes.append(value)
        elif depth == 0 and kind == "word" and value == "Interface":
            kind, name = next(tokens, ("", ""))
            if kind == "string":
                interfaces.setdefault(name, _interface_options(tokens))
    return interfaces, includes


def _interface_options(tokens: Iterator[tuple[str, str]]) -> InterfacePolicy:
    """Read what follows ``Interface "NAME"``: ``;`` or a ``{ … }`` block, whose end it consumes."""
    kind, value = next(tokens, ("", ""))
    if (kind, value) != ("punct", "{"):
        return InterfacePolicy(None)
    preference: int | None = None
    tunnel = False
    statement: list[str] = []
    depth = 1
    for kind, value in tokens:
        if kind == "punct" and value in ("{", "}"):
            depth += 1 if value == "{" else -1
            if depth == 0:
                break
        elif (kind, value) == ("punct", ";"):
            if len(statement) == 2 and statement[0] == "MnIfPreference" and _NUMBER.fullmatch(statement[1]):
                preference = int(statement[1])
            elif len(statement) == 2 and statement[0] == "Tunnel" and statement[1] in _TRUE | _FALSE:
                tunnel = statement[1] in _TRUE
            statement = []
        elif depth == 1:
            statement.append(value)
    return InterfacePolicy(preference, tunnel)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, text) for each token mip6d's lexer would return: "string", "punct" or "word"."""
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is not None:
            yield kind, match.group(kind)
