"""Plugin discovery and registration: built-ins and third-party plugins the same way.

Every plugin, built-in or not, comes from the entry-point group ``orchestrator.plugins`` (as tox 4
registers its own plugins exactly like external ones).  Entry points are loaded one by one and each
plugin is validated in a scratch manager first, so a plugin that fails to import, names an unknown
hook, or declares a hookwrapper is reported with the reason and skipped; the others load.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import ipaddress
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pluggy

from . import config as config_module
from . import hookspecs
from .config import CORE_SECTIONS, Config, ConfigError, InterfaceSpec, interface_specs
from .netlink.wire import RT_TABLE_MAIN
from .schema import Section, schema_problems

GROUP = "orchestrator.plugins"
log = logging.getLogger(__name__)
RESERVED_SECTIONS = frozenset({*CORE_SECTIONS, "interfaces"})


@dataclass
class PluginInfo:
    """What discovery found for one entry point."""

    name: str
    target: str
    distribution: str | None
    version: str | None
    plugin: Any = None
    hooks: list[str] = field(default_factory=list)
    sections: dict[str, Section] = field(default_factory=dict)
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None

    def to_json(self, enabled: Iterable[str] = ()) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "sections": sorted(self.sections),
            "enabled": self.name in set(enabled),
            "error": self.error,
        }


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def discover(entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> list[PluginInfo]:
    """Load and validate every plugin of the group; failures are recorded, never raised."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    found: dict[str, PluginInfo] = {}
    infos: list[PluginInfo] = []
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        dist = entry_point.dist
        info = PluginInfo(
            name=entry_point.name,
            target=entry_point.value,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
        )
        infos.append(info)
        if entry_point.name in found:
            first = found[entry_point.name]
            info.error = f"name already provided by {first.distribution or first.target}"
            continue
        found[entry_point.name] = info
        _load(info, entry_point)
    _reject_section_clashes(infos)
    return infos


def _load(info: PluginInfo, entry_point: importlib.metadata.EntryPoint) -> None:
    try:
        plugin = entry_point.load()
    except Exception as error:
        info.error = f"cannot import {entry_point.value}: {type(error).__name__}: {error}"
        return
    scratch = new_manager()
    try:
        scratch.register(plugin, name=info.name)
        scratch.check_pending()
        callers = scratch.get_hookcallers(plugin) or []
        impls = [impl for caller in callers for impl in caller.get_hookimpls()]
        wrappers = sorted(i.function.__name__ for i in impls if i.wrapper or i.hookwrapper)
        if wrappers:
            raise pluggy.PluginValidationError(plugin, f"hook wrappers are not supported: {wrappers}")
        _refuse(plugin, info.name, _coroutines_answered_at_once(callers))
        info.hooks = sorted(impl.function.__name__ for impl in impls)
        for declared in scratch.hook.orchestrator_config_schema():
            info.sections.update(declared)
        _refuse(plugin, info.name, schema_problems(info.sections))
        taken = sorted(set(info.sections) & RESERVED_SECTIONS)
        if taken:
            raise pluggy.PluginValidationError(plugin, f"declares the core's sections {taken}")
    except Exception as error:
        info.error = f"invalid plugin: {type(error).__name__}: {error}"
        return
    info.plugin = plugin


def _coroutines_answered_at_once(callers: Iterable[pluggy.HookCaller]) -> list[str]:
    """A hook answered at once (outside the lanes: one without a ``context`` argument) takes what it
    returns as the answer: nothing would await a coroutine."""
    return [
        f"{caller.name} must be a plain function: it is answered at once, outside the lanes"
        for caller in sorted(callers, key=lambda caller: caller.name)
        if caller.spec is not None and "context" not in caller.spec.argnames
        and any(inspect.iscoroutinefunction(impl.function) for impl in caller.get_hookimpls())
    ]


def _refuse(plugin: object, name: str, problems: list[str]) -> None:
    """The plugin is invalid when there are ``problems``: its error names it and says each."""
    if problems:
        raise pluggy.PluginValidationError(plugin, f"plugin {name!r}: {'; '.join(problems)}")


def _reject_section_clashes(infos: Iterable[PluginInfo]) -> None:
    """A section two plugins declare belongs to the first (by name); the second fails to load, so
    the conflict is reported rather than silently resolved."""
    owners: dict[str, str] = {}
    for info in infos:
        if not info.loaded:
            continue
        clash = sorted(name for name in info.sections if name in owners)
        if clash:
            info.error = f"invalid plugin: declares sections {clash} already declared by {owners[clash[0]]}"
            info.plugin = None
        else:
            owners.update(dict.fromkeys(info.sections, info.name))


def sections(infos: Iterable[PluginInfo]) -> dict[str, Section]:
    return {name: section for info in infos if info.loaded for name, section in info.sections.items()}


def activate(infos: Iterable[PluginInfo], enable: Iterable[str]) -> pluggy.PluginManager:
    """A manager holding the enabled plugins, registered so that pluggy calls them in
    ``plugins.enable`` order (pluggy calls the last registered first)."""
    by_name: Mapping[str, PluginInfo] = {info.name: info for info in infos if info.loaded}
    pm = new_manager()
    for name in reversed(list(enable)):
        pm.register(by_name[name].plugin, name=name)
    return pm


def call_each(
    hook: pluggy.HookCaller,
    arguments: Mapping[str, Any],
    per_plugin: Callable[[str], Mapping[str, Any]] | None = None,
) -> Iterator[tuple[str, Any, Exception | None]]:
    """Call every implementation of ``hook`` now, in ``plugins.enable`` order, with the arguments it
    declares (``per_plugin`` adds a plugin's own, its context say): ``(plugin, result, error)``.
    For the questions answered at once, outside the lanes; a failing plugin never stops the others.
    A coroutine is no answer: ``async def`` is refused at load, but a plain wrapper can return one."""
    for impl in reversed(hook.get_hookimpls()):
        given = {**arguments, **(per_plugin(impl.plugin_name) if per_plugin else {})}
        try:
            result, error = impl.function(**{name: given[name] for name in impl.argnames}), None
        except Exception as caught:
            result, error = None, caught
        if inspect.iscoroutine(result):
            result.close()  # never awaited, and never warned about as such
            result, error = None, TypeError(f"{hook.name} returned a coroutine: it is answered at once")
        yield impl.plugin_name, result, error


def uplink_reference(pm: pluggy.PluginManager, config: Config) -> str | None:
    """``uplinks.reference``, else the first reference an enabled plugin offers."""
    if config.uplinks.reference is not None:
        return config.uplinks.reference
    for plugin, reference, error in call_each(pm.hook.orchestrator_uplink_reference, {"config": config}):
        if error is not None:
            log.error("plugin %s failed in orchestrator_uplink_reference: %s", plugin, error)
        elif reference is not None:
            return str(reference)
    return None


def watched_tables(pm: pluggy.PluginManager, config: Config) -> set[int]:
    """The main table, and every table an enabled plugin asks for."""
    tables = {RT_TABLE_MAIN}
    for plugin, asked, error in call_each(pm.hook.orchestrator_watched_tables, {"config": config}):
        if error is None:
            try:
                tables.update(int(table) for table in cast("Iterable[int] | None", asked) or [])
            except (TypeError, ValueError) as bad:  # not a list of table numbers
                error = bad
        if error is not None:
            log.error("plugin %s failed in orchestrator_watched_tables: %s", plugin, error)
    return tables


def declare_interfaces(pm: pluggy.PluginManager, config: Config) -> Config:
    """``config`` with the interface entries the enabled plugins declare after the file's own;
    every problem is collected and raised together, naming the plugin."""
    problems: list[str] = []
    declared: list[InterfaceSpec] = []
    for plugin, entries, error in call_each(pm.hook.orchestrator_interfaces, {"config": config}):
        if error is not None:
            problems.append(f"{plugin}: interface declaration failed: {error}")
        else:
            declared += interface_specs(entries, f"plugin {plugin!r} interfaces", problems, plugin)
    if problems:
        raise ConfigError(config.path, problems)
    return config.with_interfaces(declared)


def declare_address_prefixes(pm: pluggy.PluginManager, config: Config) -> Config:
    """``config`` with the address prefixes the enabled plugins declare for their tunnels; a prefix
    that is not an IPv6 network, or an interface two plugins claim, is a problem naming the plugin."""
    problems: list[str] = []
    prefixes: dict[str, str] = {}
    owners: dict[str, str] = {}
    for plugin, declared, error in call_each(pm.hook.orchestrator_address_prefixes, {"config": config}):
        if error is None and not isinstance(declared, Mapping):
            error = TypeError(f"expected a mapping of interface names to prefixes, got {declared!r}")
        if error is not None:
            problems.append(f"{plugin}: address prefix declaration failed: {error}")
            continue
        for interface, prefix in declared.items():
            try:
                network = ipaddress.IPv6Network(prefix)
            except (TypeError, ValueError) as bad:
                problems.append(f"{plugin}: address prefix of {interface!r}: {bad}")
                continue
            if interface in owners:
                problems.append(f"{plugin}: address prefix of {interface!r}: {owners[interface]} declares it")
                continue
            owners[interface], prefixes[interface] = plugin, str(network)
    if problems:
        raise ConfigError(config.path, problems)
    return replace(config, address_prefixes=prefixes)


def check_config(pm: pluggy.PluginManager, config: Config) -> list[str]:
    """Cross-key problems reported by the enabled plugins; a crashing check is a problem too."""
    return _config_lines(pm.hook.orchestrator_check_config, config, "configuration check")


def config_warnings(pm: pluggy.PluginManager, config: Config) -> list[str]:
    """What the enabled plugins find valid but likely to hurt; a crashing check is reported too."""
    return _config_lines(pm.hook.orchestrator_config_warnings, config, "configuration warnings")


def _config_lines(hook: pluggy.HookCaller, config: Config, what: str) -> list[str]:
    lines: list[str] = []
    for plugin, found, error in call_each(hook, {"config": config}):
        if error is None:
            try:
                lines.extend(str(line) for line in cast("Iterable[object] | None", found) or [])
            except TypeError as bad:  # not a list of lines
                error = bad
        if error is not None:
            lines.append(f"{plugin}: {what} failed: {error}")
    return lines


def load(path: Path) -> tuple[Config, list[PluginInfo]]:
    """Discover plugins, then validate the config against the core's and their schemas."""
    infos = discover()
    return validate(path, infos), infos


def validate(path: Path, infos: list[PluginInfo]) -> Config:
    """The configuration at ``path``, checked by the core and the plugins (``ConfigError`` else)."""
    loaded = {info.name for info in infos if info.loaded}
    broken = {info.name: info.error for info in infos if info.error and info.name not in loaded}
    config = config_module.load(path, sections(infos), loaded, broken)
    enabled = activate(infos, config.enable)
    config = declare_address_prefixes(enabled, declare_interfaces(enabled, config))
    problems = check_config(enabled, config)
    if problems:
        raise ConfigError(path, problems)
    return config


def load_config(path: Path | str) -> Config:
    """The configuration at ``path`` exactly as the daemon would run it: every installed plugin's
    schema, the interfaces the enabled plugins declare, and their cross-checks.  Raises
    ``ConfigError`` listing every problem, each naming the file and the key path."""
    return load(Path(path))[0]
