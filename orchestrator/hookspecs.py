"""Every hook a plugin can implement.  This file is the reference: read it before writing a plugin.

How hooks are called
--------------------
Implement a hook by defining a function of the same name in your plugin module (or on your plugin
object) decorated with ``orchestrator.hookimpl``.  Declare only the arguments you use: they are passed
by name.  Every event hook also accepts ``context``, the ``PluginContext`` of your plugin (your config
section, a logger named after you, the move timeline, the network state, read-only).  The network state
changes on the event loop: read it from ``async def`` hooks; a plain function runs in a worker thread
and should use only what its arguments carry.

The daemon calls the implementations of one hook one by one, in the order of ``plugins.enable``
(pluggy's ``tryfirst``/``trylast`` still apply), not through pluggy's ``hook()`` call, so that one
failing plugin never stops the others:

* ``async def`` implementations are awaited on the daemon's event loop; plain functions run in a
  worker thread.  Never block the event loop in a coroutine; a long wait (a qualification, a
  handover) is a timer (``asyncio.get_running_loop().call_later``) or a task, not a blocking call.
* each call is bounded by ``daemon.plugin_timeout_s``; a call that takes longer is abandoned and
  reported as a failure (a plain function's thread cannot be killed, so it keeps running detached).
* an exception or a timeout is logged with the plugin's name, counted, recorded on the move, and
  passed to ``orchestrator_on_error``; the other plugins still run.
* hookwrappers are refused: a plugin that declares one is reported and not loaded.

Lanes
-----
Every event belongs to a lane: ``uplink`` (moves), ``interface:<name>`` (one per interface),
``policy`` (routes and rules removed) or ``control`` (start-up, phases, completions, errors).
Calls within a lane keep their order; lanes run in parallel.  Hooks marked "carries state" describe
the current state rather than a happening, so a queued call not yet started is *superseded* by a
newer one of the same hook in the same lane: the plugin then sees one call whose ``old`` is the
oldest unseen value and whose ``new`` is the latest.  Errors, phases and completions are never superseded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .commands import Command
    from .config import Config
    from .context import PluginContext
    from .events import LinkChanged, RouteEvent, RuleEvent, TunnelAddressChanged, UplinkChanged
    from .moves import Move
    from .schema import Section
    from .state import NetworkState

PROJECT = "orchestrator"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Hooks whose queued calls a newer call may supersede (see "Lanes" above).
CARRIES_STATE = frozenset(
    {
        "orchestrator_uplink_changed",
        "orchestrator_tunnel_address_changed",
        "orchestrator_link_changed",
    }
)


@hookspec
def orchestrator_config_schema() -> Mapping[str, Section]:
    """Declare the configuration sections this plugin owns: ``{"section": Section(...)}``.

    Called once at load time, for every installed plugin (enabled or not, so a section is checked
    even before its plugin is enabled).  The core validates each section: unknown keys, wrong types
    and out-of-range values are reported naming the file and the key path.  A section nobody
    declares is an error.  Not called in a lane; must not block.
    """
    raise NotImplementedError


@hookspec
def orchestrator_check_config(config: Config) -> list[str]:
    """Return problems that a schema cannot express (cross-key checks, files named by the config).

    Each problem is one line, starting with the key path (``"teredo.interface: ..."``).  Called at
    load time for enabled plugins after every section passed its schema.  Not called in a lane.
    """
    raise NotImplementedError


@hookspec
def orchestrator_config_warnings(config: Config) -> list[str]:
    """Return what is valid but likely to hurt (a setting of another program this plugin depends on).

    One line each, starting with the key path.  ``check-config`` prints them and still succeeds;
    the daemon logs them at start-up.  Called for enabled plugins after ``check_config`` passed;
    not called in a lane.
    """
    raise NotImplementedError


@hookspec
def orchestrator_interfaces(config: Config) -> list[Mapping[str, Any]]:
    """Declare interface roles: entries like the file's ``[[interfaces]]`` (``match``, ``role``,
    ``mip6_preference``, ``routing_profile``, ``ipv6_tunnel``), usually derived from your section.

    They are validated like the file's and appended after them, so a user's own entry for the same
    interface wins.  Called for enabled plugins whenever the configuration is loaded (start-up,
    reload, ``check-config``), before ``orchestrator_check_config``, which then sees them.  Not
    called in a lane; must not block.
    """
    raise NotImplementedError


@hookspec
def orchestrator_address_prefixes(config: Config) -> Mapping[str, str]:
    """The IPv6 prefix each of this plugin's tunnels takes its addresses from: ``{interface: prefix}``
    (the teredo plugin: its interface -> ``2001::/32``).

    The routing plugin's client hook refuses an ``ADDRESS`` outside it; ``config.address_prefixes``
    holds every enabled plugin's answer.  Called for enabled plugins whenever the configuration is
    loaded, after ``orchestrator_interfaces``; a prefix that is not an IPv6 network, or an interface
    another plugin already declared, is a configuration problem naming the plugin.  Not called in a
    lane; must not block.
    """
    raise NotImplementedError


@hookspec
def orchestrator_commands() -> list[Command]:
    """Add commands to the ``orchestrator`` command line: return a list of ``Command``.

    Called by the command line only (never by the daemon), for every installed plugin that loads,
    enabled or not, when it is asked for a command the core does not have or for its help.
    ``--config PATH`` is added to every command.  A command runs only when the configuration file
    enables its plugin (or does not exist yet); otherwise it says so and exits 2.  A name the core
    or another plugin already uses is refused and reported.  Not called in a lane; must not block.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def orchestrator_uplink_reference(config: Config) -> str | None:
    """The IPv4 address the uplink is judged towards when ``uplinks.reference`` is not set.

    The uplink is then the route the kernel would use to reach it (a tunnel plugin returns its
    server).  First non-None result wins, in ``plugins.enable`` order; None from everyone means the
    best default route through an ``uplink`` interface.  Called once at start-up, not in a lane.
    """


@hookspec
def orchestrator_startup(context: PluginContext) -> None:
    """The daemon is about to go live: the first dump is in ``context.state``; no event yet.

    Lane ``control``; bounded by ``plugin_timeout_s``.  Use it to reach the start-up state your
    plugin wants (a tunnel without an address on a complete uplink, say).
    """


@hookspec
def orchestrator_shutdown(context: PluginContext) -> None:
    """The daemon is stopping: cancel your timers, leave nothing half-applied.

    Lane ``control``; bounded by ``plugin_timeout_s``.
    """


@hookspec
def orchestrator_uplink_changed(context: PluginContext, event: UplinkChanged, move: Move) -> None:
    """The IPv4 uplink changed: a DHCP move (``old`` and ``new`` set), a loss (``new`` is None) or
    a return (``old`` is None).  Renewals and short carrier blips are never reported.

    Lane ``uplink``; carries state; bounded by ``plugin_timeout_s``.  Each call starts a move:
    ``move.phase(name)`` records a timeline phase; return when your part is done, or take
    ``part = move.hold()`` and call ``part.done()`` (or ``part.failed(reason)``) later — the move
    ends when every hold is released, or as ``timeout`` at ``daemon.move_timeout_s``.
    """


@hookspec
def orchestrator_tunnel_address_changed(
    context: PluginContext, event: TunnelAddressChanged, move: Move | None
) -> None:
    """The usable global IPv6 address of a ``tunnel`` interface changed (``new`` None: it has none).

    Tentative addresses are not reported until they are final.  ``move`` is the move in progress,
    if any.  Lane ``interface:<name>``; carries state; bounded by ``plugin_timeout_s``.
    """


@hookspec
def orchestrator_watched_tables(config: Config) -> list[int]:
    """Routing tables (numbers) whose IPv6 routes this plugin needs to hear about, besides main.

    Called once at start-up, not in a lane; every plugin's answer is used.
    """
    raise NotImplementedError


@hookspec
def orchestrator_policy_removed(context: PluginContext, event: RouteEvent | RuleEvent) -> None:
    """Someone (or something) removed an IPv6 route of a watched table or an IPv6 rule.

    For plugins that own routing policy and put it back (systemd-networkd deletes foreign rules
    when it restarts).  Lane ``policy``; not superseded; bounded by ``plugin_timeout_s``.
    """


@hookspec
def orchestrator_link_changed(context: PluginContext, event: LinkChanged) -> None:
    """An interface named in ``[[interfaces]]`` changed administrative state or carrier, appeared
    or vanished.  Lane ``interface:<name>``; carries state; bounded by ``plugin_timeout_s``.
    """


@hookspec(firstresult=True)
def orchestrator_expected_coa(config: Config, state: NetworkState, exclude: frozenset[str]) -> str | None:
    """The care-of address the mobility daemon should use now, predicted from the policy.

    Used to know which Binding Update to wait for and what status shows; it never steers the
    mobility daemon.  ``exclude``: addresses being purged (the kernel may not have reported their
    removal yet).  Asked through ``context.ask`` and answered at once on the event loop: a plain
    function that only computes.  First non-None answer wins in ``plugins.enable`` order; the
    ``mipv6`` plugin answers last with UMIP's rule (lowest ``mip6_preference`` with a usable global
    address), so a plugin for a differently configured mobility daemon can answer first.
    """


@hookspec(firstresult=True)
def orchestrator_requalify_tunnel(interface: str, reason: str) -> bool | None:
    """Another plugin needs tunnel ``interface`` re-qualified (a handover over it got no answer).

    The tunnel's own plugin answers True when it took the request (it applies its own limits, and
    never acts without an IPv4 uplink); None when the tunnel is not its.  Asked through
    ``context.ask``: a plain function that returns at once (schedule the work, do not do it here).
    """


@hookspec
def orchestrator_move_phase(context: PluginContext, move: Move, phase: str) -> None:
    """A move reached a phase (``move.phases[phase]`` is its time in seconds since the move began).

    Lane ``control``; never superseded; bounded by ``plugin_timeout_s``.
    """


@hookspec
def orchestrator_move_finished(context: PluginContext, move: Move) -> None:
    """A move ended: ``move.outcome`` is ``ok``, ``failed``, ``timeout`` or ``superseded``.

    Lane ``control``; never superseded; bounded by ``plugin_timeout_s``.
    """


@hookspec
def orchestrator_on_error(
    context: PluginContext, plugin: str, hook: str, error: str, move: Move | None
) -> None:
    """A plugin call failed: ``error`` is the exception text or ``"timeout after N s"``.

    Lane ``control``; never superseded; bounded by ``plugin_timeout_s``.  A failure inside this hook
    is logged and counted but not reported to it again.
    """

