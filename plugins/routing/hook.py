"""The full client hook: validate miredo's variables, then bring the tunnel to its profile's end state.

miredo runs the generated shell hook (``shell_hook``), which hands a run to this one whenever it
does not handle the run itself: unusual or bad input, a follow_address profile, a TOML newer than
the generated hook.  This is therefore the bad-input front door (anything unexpected in the
environment ends the run with one line on stderr and nothing changed) and the reference the shell
hook is tested against.  It still starts quickly: the profiles come from a cache compiled from the
TOML (rebuilt, with the full validation, whenever the TOML changes), and netlink is spoken through
``wire``, the public API's rtnetlink codec.

Exit status: 0 applied (or nothing to do), 1 the kernel refused an operation (the line says what
was and was not applied), 2 bad input or configuration (nothing changed).
"""

from __future__ import annotations

import _socket
import marshal
import os
import sys

from orchestrator import replace_file, writes

from . import markers
from .endstate import STATES, Step, end_state
from .kernel import InterfaceMissing, converge
from .profile import Profile, canonical_ipv6, is_link_local, tunnel_mtu

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orchestrator import Config

DEFAULT_CONFIG = "/etc/orchestrator/orchestrator.toml"
DEFAULT_CACHE_DIR = "/run/orchestrator"
CACHE_NAME = "client-hook.cache"
CACHE_FORMAT = 6  # part of the stamp: a cache written by another version is compiled anew


USAGE = "usage: orchestrator hook [--config PATH] [--cache-dir DIR] [--hook-file PATH]"


class BadInput(Exception):
    """Refused before anything was changed."""


def main(argv: list[str], environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ) if environ is None else environ
    try:
        options = _options(argv)
        for path in (options["--hook-file"], options["--config"]):
            if path:
                _check_safe(path)
                _check_safe(os.path.dirname(os.path.abspath(path)))
        compiled = _compiled(options["--config"], options["--cache-dir"])
        step, profile = _step(environ, compiled)
        run_markers = (markers.applying(step.state), markers.done(step), markers.failed(step.state))
        converge(step.interface, profile, end_state(profile, step), run_markers)
    except BadInput as error:
        print(f"orchestrator hook: {error}", file=sys.stderr)
        return 2
    except InterfaceMissing as error:
        print(f"orchestrator hook: IFACE: no interface {error}", file=sys.stderr)
        return 2
    except writes.ApplyError as error:
        print(f"orchestrator hook: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # one line for miredo's log, never a traceback
        print(f"orchestrator hook: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def _options(argv: list[str]) -> dict[str, str]:
    options = {
        "--config": DEFAULT_CONFIG,
        "--cache-dir": DEFAULT_CACHE_DIR,
        "--hook-file": "",
    }
    if len(argv) % 2:
        raise BadInput(USAGE)
    for name, value in zip(argv[::2], argv[1::2], strict=True):
        if name not in options:
            raise BadInput(USAGE)
        options[name] = value
    return options


def unsafe(info: os.stat_result) -> bool:
    """Not root's, or writable by its group or by others."""
    return info.st_uid != 0 or bool(info.st_mode & 0o022)


def _check_safe(path: str) -> None:
    """Root's files only: a hook or policy someone else could write is someone else's root shell."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise BadInput(f"{path}: {error.strerror}") from None
    if unsafe(info):
        raise BadInput(f"{path}: refusing to run: it must be owned by root and writable by nobody else")


# -- the compiled configuration -----------------------------------------------------------------


def _compiled(config_path: str, cache_dir: str) -> dict[str, Any]:
    """The tunnels and profiles of the TOML, from the cache when it still matches the file.

    Compiling needs the daemon's whole configuration machinery (and its plugins' schemas, ~0.3 s):
    the cache spares every later run that cost until the file changes.
    """
    try:
        info = os.stat(config_path)
    except OSError as error:
        raise BadInput(f"{config_path}: {error.strerror}") from None
    stamp = (CACHE_FORMAT, os.path.abspath(config_path), info.st_mtime_ns, info.st_size, info.st_ino)
    cache = os.path.join(cache_dir, CACHE_NAME)
    compiled = _read_cache(cache_dir, cache)
    if compiled is not None and compiled.get("stamp") == stamp:
        return compiled
    compiled = compile_config(config_path)
    compiled["stamp"] = stamp
    _write_cache(cache_dir, cache, compiled)
    return compiled


def _read_cache(cache_dir: str, cache: str) -> dict[str, Any] | None:
    """The cache, if root wrote it where only root can: a directory and a file nobody else can
    write, opened without following links and checked on the open descriptor (no swap between
    the check and the read)."""
    try:
        directory = os.stat(cache_dir)
        if directory.st_uid != 0 or directory.st_mode & 0o022:
            return None
        descriptor = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != 0 or info.st_mode & 0o077:
            return None
        try:
            compiled = marshal.load(handle)
        except (EOFError, ValueError, TypeError):
            return None
    return compiled if isinstance(compiled, dict) else None


def compile_config(config_path: str) -> dict[str, Any]:
    """Validate the TOML with the daemon's own code (every plugin's schema) and keep what the hook
    needs (``compiled``)."""
    from orchestrator import ConfigError, load_config

    try:
        return compiled(load_config(config_path))
    except ConfigError as error:
        raise BadInput(f"{config_path}: {error.problems[0]}") from None
    except KeyError as error:
        raise BadInput(f"{config_path}: routing table {error} is not in rt_tables") from None


def compiled(config: Config) -> dict[str, Any]:
    """What a hook needs of a valid configuration: the tunnels, their profiles and their address
    prefixes (KeyError: a table name that is not in rt_tables)."""
    from .profile import from_section

    profiles = {
        name: from_section(name, section).to_plain()
        for name, section in config.section("routing").get("profiles", {}).items()
    }
    return {
        "interfaces": [(spec.match, spec.is_tunnel, spec.routing_profile) for spec in config.interfaces],
        "profiles": profiles,
        "prefixes": dict(config.address_prefixes),
    }


def _write_cache(cache_dir: str, cache: str, compiled: dict[str, Any]) -> None:
    """Atomically, root-only; a cache that cannot be written only costs the next run some time."""
    try:
        os.makedirs(cache_dir, mode=0o755, exist_ok=True)
        replace_file(cache, marshal.dumps(compiled), 0o600)
    except OSError:
        pass


# -- miredo's variables ---------------------------------------------------------------------------


def _step(environ: dict[str, str], compiled: dict[str, Any]) -> tuple[Step, Profile]:
    """miredo's STATE, IFACE, ADDRESS, LLADDRESS and MTU, validated; every other variable (OLD_*
    included: the end state does not need them) is untrusted text and never read."""
    state = environ.get("STATE", "")
    if state not in STATES:
        raise BadInput(f"STATE: expected one of {', '.join(STATES)}, got {state!r}")
    interface = environ.get("IFACE", "")
    profile = _profile_of(interface, compiled)
    step = Step(state, interface)
    if state == "up":
        step.address = _ipv6(environ, "ADDRESS")
        raw = _socket.inet_pton(_socket.AF_INET6, step.address)
        prefix = compiled["prefixes"].get(interface)
        if prefix is not None and not _within(raw, prefix):
            raise BadInput(f"ADDRESS: {step.address!r} is not in {prefix}, {interface}'s address prefix")
        if not _unicast_global(raw):
            raise BadInput(f"ADDRESS: {step.address!r} is not a global unicast address")
        step.lladdress = _ipv6(environ, "LLADDRESS")
        raw = _socket.inet_pton(_socket.AF_INET6, step.lladdress)
        if not is_link_local(raw):
            raise BadInput(f"LLADDRESS: {step.lladdress!r} is not a link-local address (fe80::/10)")
    mtu = environ.get("MTU", "")
    if mtu or (state == "up" and profile.mtu == "tunnel"):
        step.mtu = tunnel_mtu(mtu)
        if step.mtu is None:
            raise BadInput(f"MTU: expected a number from 1280 to 65535, got {mtu!r}")
    return step, profile


def _within(raw: bytes, prefix: str) -> bool:
    """Whether the address ``raw`` lies in ``prefix`` (``2001::/32``, as the configuration loader
    wrote it); no ipaddress: it costs start-up."""
    text, length = prefix.split("/")
    network = _socket.inet_pton(_socket.AF_INET6, text)
    whole, bits = divmod(int(length), 8)
    if raw[:whole] != network[:whole]:
        return False
    mask = (0xFF00 >> bits) & 0xFF
    return bits == 0 or raw[whole] & mask == network[whole] & mask


def _unicast_global(raw: bytes) -> bool:
    """Not unspecified, loopback, multicast, link-local or IPv4-mapped: an address a tunnel can own."""
    zero = b"\0" * 15
    return not (
        raw in (zero + b"\0", zero + b"\1")
        or raw[0] == 0xFF
        or is_link_local(raw)
        or raw[:12] == b"\0" * 10 + b"\xff\xff"
    )


def _profile_of(interface: str, compiled: dict[str, Any]) -> Profile:
    """The profile of a tunnel the config names, on an interface that exists."""
    if (
        not interface
        or len(interface) > 15
        or not interface.isprintable()
        or any(c in interface for c in "/: ")
    ):
        raise BadInput(f"IFACE: not an interface name: {interface!r}")
    for match, tunnel, profile_name in compiled["interfaces"]:
        if _pattern_matches(interface, match):
            if not tunnel or not profile_name:
                break
            try:
                _socket.if_nametoindex(interface)
            except OSError:
                raise BadInput(f"IFACE: no interface {interface!r}") from None
            return Profile.from_plain(compiled["profiles"][profile_name])
    raise BadInput(f"IFACE: {interface!r} is not a tunnel with a routing_profile in the configuration")


def _pattern_matches(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase``, as the daemon matches; the literal head of the pattern is checked
    first, so the import of ``fnmatch`` (and its ``re``, ~5 ms) happens only when it can match."""
    wild = min((i for i, c in enumerate(pattern) if c in "*?["), default=-1)
    if wild < 0:
        return name == pattern
    if not name.startswith(pattern[:wild]):
        return False
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _ipv6(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "")
    try:
        return canonical_ipv6(value)
    except (OSError, ValueError):
        raise BadInput(f"{name}: not an IPv6 address: {value!r}") from None


if __name__ == "__main__":  # what the shell hook runs: `python -I -m orchestrator_routing.hook ...`
    sys.exit(main(sys.argv[1:]))
