"""Every hook a plugin can implement.  This file is the reference: read it before writing a plugin.

How hooks are called
--------------------
Implement a hook by defining a function of the same name in your plugin module (or on your plugin
object) decorated with ``orchestrator.hookimpl``.  Declare only the arguments you use: they are passed
by name.  Every event hook also accepts ``context``, the ``PluginContext`` of your plugin (your config
section, a logger named after you, the move timeline, the network state, read-only).  The network state
changes on the event loop: read it from ``async def`` hooks; a plain function runs in a worker thread
and should use only what its arguments carry, ``context.report`` and ``context.ask``: these two are
handed to the event loop and behave as they do from a coroutine (``ask`` waits for the loop's answer,
at most ``daemon.plugin_timeout_s``, then raises ``TimeoutError``).

The daemon calls the implementations of one hook one by one, in the order of ``plugins.enable``
(pluggy's ``tryfirst``/``trylast`` still apply), not through pluggy's ``hook()`` call, so that one
failing plugin never stops the others.  For a hook called in a lane (see "Lanes"):

* ``async def`` implementations are awaited on the daemon's event loop; plain functions run in a
  worker thread.  Never block the event loop in a coroutine; a long wait (a qualification, a
  handover) is a timer (``asyncio.get_running_loop().call_later``) or a task, not a blocking call.
* each call is bounded by ``daemon.plugin_timeout_s``; a call that takes longer is abandoned and
  reported as a failure (a plain function's thread cannot be killed, so it keeps running detached).
* a plugin holds at most 4 such threads (``STUCK_THREADS_PER_PLUGIN`` in ``orchestrator/workers.py``):
  while it holds that many, a call of its plain-function hooks is not started but fails at once
  (``plugin NAME holds 4 threads that never returned: call not started``, also counted in
  ``plugin_calls_refused``; ``orchestrator status`` shows the plugin's ``stuck_threads``), until one
  of those threads returns.
* an exception or a timeout is logged with the plugin's name, counted, recorded on the move, and
  passed to ``orchestrator_on_error``; the other plugins still run.

The other hooks, those without a ``context`` argument (configuration, commands, the uplink
reference, the watched tables, and the questions asked through ``context.ask``), are called
directly, in the caller's thread and without a timeout, and their result is used as returned: they
are plain functions, and quick. An ``async def`` implementation of one is refused, and so are
hookwrappers: a plugin that declares one is reported and not loaded. Each hook's docstring says when
it is called, in which lane, under which timeout and what its result means; docs/plugins.md's hook
reference is generated from them (``scripts/hook-reference``).

Lanes
-----
Every event belongs to a lane: ``uplink`` (moves), ``interface:<name>`` (one per interface),
``policy`` (routes and rules removed) or ``control`` (start-up, shutdown, phases, completions,
errors).  Calls within a lane keep their order; lanes run in parallel.  Hooks marked "carries state"
(``CARRIES_STATE``) describe the current state rather than a happening, so a queued call not yet
started is *superseded* by a newer one of the same hook in the same lane: the plugin then sees one
call whose ``old`` is the oldest unseen value and whose ``new`` is the latest (no call at all when
they are equal).  Every other hook is never superseded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .commands import Command
    from .config import Config
    from .context import PluginContext
    from .events import (
        LinkAliasChanged,
        LinkChanged,
        RouteEvent,
        RuleEvent,
        StandbyUplinksChanged,
        TunnelAddressChanged,
        UplinkChanged,
    )
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
        "orchestrator_standby_uplinks_changed",
        "orchestrator_tunnel_address_changed",
        "orchestrator_link_changed",
    }
)

@hookspec
def orchestrator_config_schema() -> Mapping[str, Section]:
    """Declare the configuration sections this plugin owns: ``{"section": Section(...)}``.

    The core validates each section against its schema (unknown keys, wrong types and out-of-range
    values are reported naming the file and the key path), so the plugin reads only checked values; a
    top-level section nobody declares is an error.  See "Declaring a config schema" in docs/plugins.md.

    * Called: once per process, when plugins are discovered (daemon start-up, ``check-config``,
      ``monitor``, ``plugins``, ``load_config``, a plugin's command; a reload keeps the answer), for
      every installed plugin, enabled or not, so that a section is checked before its plugin is enabled.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: the sections.  The plugin is not loaded (``orchestrator plugins`` says why) when this
      raises, or declares a malformed section (not a ``Section``, a key that is not a ``Key``, an
      unknown ``kind``), a core section (``daemon``, ``plugins``, ``uplinks``, ``interfaces``) or a
      section that a plugin earlier by name already declared.
    """
    raise NotImplementedError


@hookspec
def orchestrator_check_config(config: Config) -> list[str]:
    """Return the problems a schema cannot express: cross-key checks, files the configuration names,
    an interface that must have a given role.

    Each problem is one line starting with the key path (``"teredo.interface: ..."``).  The
    configuration has passed every schema and holds the interfaces and address prefixes that the
    enabled plugins declare.

    * Called: for enabled plugins, at every configuration load (daemon start-up, reload,
      ``check-config``, ``monitor``, ``load_config``), after ``orchestrator_interfaces`` and
      ``orchestrator_address_prefixes``.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: any problem makes the configuration invalid (a reload is then refused and the running
      policy stays).  A check that raises is one too: ``<plugin>: configuration check failed: ...``.
    """
    raise NotImplementedError


@hookspec
def orchestrator_config_warnings(config: Config) -> list[str]:
    """Return what is valid but likely to hurt (a setting of another program this plugin depends on).

    One line each, starting with the key path.

    * Called: for enabled plugins, once the configuration is valid: by ``check-config``, which prints
      them and still succeeds, and when the daemon starts, which logs them (a reload does not ask).
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: the warnings.  A check that raises is reported as one:
      ``<plugin>: configuration warnings failed: ...``.
    """
    raise NotImplementedError


@hookspec
def orchestrator_interfaces(config: Config) -> list[Mapping[str, Any]]:
    """Declare interface roles: entries shaped like the file's ``[[interfaces]]`` tables (``match``,
    ``role``, ``mip6_preference``, ``routing_profile``, ``ipv6_tunnel``), usually derived from your own
    section, so that a user configures your tunnel in one place.

    They are validated like the file's (a problem reads ``plugin 'name' interfaces[0].role: ...``) and
    appended after them: the first entry matching an interface wins, so a user's own entry wins.  See
    "Declaring an interface role" in docs/plugins.md.

    * Called: for enabled plugins, at every configuration load (daemon start-up, reload,
      ``check-config``, ``monitor``, ``load_config``), first: ``orchestrator_address_prefixes`` and
      ``orchestrator_check_config`` see the entries.  A reload that changes them restarts every plugin.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: the entries.  An invalid entry makes the configuration invalid, and so does a
      declaration that raises: ``<plugin>: interface declaration failed: ...``.
    """
    raise NotImplementedError


@hookspec
def orchestrator_address_prefixes(config: Config) -> Mapping[str, str]:
    """The IPv6 prefix each of this plugin's tunnels takes its addresses from: ``{interface: prefix}``
    (the ``teredo`` plugin: its interface -> ``2001::/32``).

    The ``routing`` plugin's client hook refuses an ``ADDRESS`` outside it; ``config.address_prefixes``
    holds every enabled plugin's answer.  Declare only tunnels whose addresses derive from the
    uplink: a daemon started without a record of its previous uplink takes such a tunnel's address,
    created before the uplink's IPv4 address, for a sign of a move it did not see.

    * Called: for enabled plugins, at every configuration load (daemon start-up, reload,
      ``check-config``, ``monitor``, ``load_config``), after ``orchestrator_interfaces`` and before
      ``orchestrator_check_config``.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: the prefixes.  A prefix that is not an IPv6 network, an interface a plugin earlier in
      ``plugins.enable`` already declared, an answer that is not a mapping and a declaration that raises
      are configuration problems naming the plugin.
    """
    raise NotImplementedError


@hookspec
def orchestrator_commands() -> list[Command]:
    """Add commands to the ``orchestrator`` command line: return a list of ``Command``.

    ``orchestrator NAME`` parses the command's options (``--config PATH`` is added to every command)
    and calls its ``run``, whose result is the exit status.  A command of a plugin the configuration
    file does not enable still runs (``mip6d-conf`` serves a mip6d the daemon does not watch), after
    a note on stderr saying so.  See "Adding a command" in docs/plugins.md.

    * Called: by the command line only, never by the daemon: for every installed plugin that loads,
      enabled or not, when the line names a command the core does not have, or none (the help that
      lists them all).
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block): every plugin is asked before a plugin's command runs.
    * Result: the commands.  A name the core or a plugin earlier by name already has is skipped, and so
      is the whole answer when this raises or returns no list (or tuple) of ``Command``; each skip is
      said on stderr.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def orchestrator_uplink_reference(config: Config) -> str | None:
    """The IPv4 address the uplink is judged towards when ``uplinks.reference`` is not set.

    The uplink is then the route the kernel would use to reach it: a tunnel plugin returns its server
    (the ``teredo`` plugin returns ``teredo.server``), so that the uplink is the one its packets leave
    by.

    * Called: only when ``uplinks.reference`` is not set, for enabled plugins until one answers: when
      the daemon starts, on every reload (a new answer is used from the next kernel change on), and
      when ``orchestrator monitor`` starts.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: first non-None result wins, in ``plugins.enable`` order; None from everyone means the
      best default route through an interface with role ``uplink``.  An exception is logged and the next
      plugin is asked.
    """


@hookspec
def orchestrator_startup(context: PluginContext) -> None:
    """The plugin goes live: reach the start-up state it wants (a tunnel without an address on a
    complete uplink, say), create its timers and the objects bound to the loop, set its counters and
    status.  Keep ``context`` if you need it later.

    When the daemon starts, the first netlink dump is in ``context.state`` (the uplink it starts with,
    ``context.state.tracker.current``, is no move) and no event has been delivered: the daemon waits up
    to ``plugin_timeout_s`` + 0.5 s for the ``control`` lane to drain before it reads the first one.

    * Called: when the daemon starts, for every enabled plugin; on a reload, for a plugin newly enabled
      or restarted (its section or the ``[[interfaces]]`` policy changed), with a new context.
    * Lane: ``control``; never superseded; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.  Other hooks may be called before it has returned (a start-up slower than that
      wait, a plugin started by a reload): ignore them until then, as the built-ins do.
    """


@hookspec
def orchestrator_shutdown(context: PluginContext) -> None:
    """The plugin stops: cancel your timers, release the parts you hold, leave nothing half-applied.

    * Called: when the daemon stops (SIGTERM, SIGINT), for every enabled plugin, which get up to
      ``plugin_timeout_s`` + 0.5 s in all before the lanes are cancelled; on a reload, for a plugin
      disabled or restarted (a restart then calls ``orchestrator_startup`` on the same object).
    * Lane: ``control``; never superseded; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.  Calls queued before it may still arrive afterwards: a stopped plugin ignores
      them (the built-ins set their state to None and check it).
    """


@hookspec
def orchestrator_uplink_changed(context: PluginContext, event: UplinkChanged, move: Move) -> None:
    """The IPv4 uplink changed: a DHCP move (``event.old`` and ``event.new`` set), a loss
    (``event.new`` is None) or a return (``event.old`` is None).  Renewals, short carrier blips and the
    uplink the daemon starts with are never reported.

    Each call starts a move (see "The life of a move"): ``move.phase(name)`` records a timeline phase;
    return when your part is done, or take ``part = move.hold()`` and call ``part.done()`` (or
    ``part.failed(reason)``) later.  The move ends when every implementation has returned and every
    hold is released, or as ``timeout`` at ``daemon.move_timeout_s``; an implementation that raises or
    times out adds a problem to it, so it ends ``failed``.  Do not wait for the network here: the
    ``teredo`` plugin takes its request and returns, and its re-qualifier holds the move, records
    ``requalify-sent`` and ``tunnel-up``, and releases it when the tunnel has its address again or the
    qualification timed out.  The ``mipv6`` plugin uses ``@hookimpl(tryfirst=True)`` so that it
    listens before a tunnel plugin's kick.

    * Called: once per move (unless superseded).
    * Lane: ``uplink``; carries state: a queued call not yet started is merged into the newer one, whose
      ``event.old`` becomes the oldest uplink not yet reported (the older moves have ended as
      ``superseded``); when that is ``event.new`` again, no call is made and the move ends at once.
      Bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored: returning is what lets the move end.
    """


@hookspec
def orchestrator_tunnel_address_changed(
    context: PluginContext, event: TunnelAddressChanged, move: Move | None
) -> None:
    """The usable global IPv6 address of a tunnel (role ``tunnel``, or an uplink with ``ipv6_tunnel``)
    changed: ``event.interface``, ``event.old``, ``event.new`` (None: it has none now).

    Usable means neither tentative (so an address is reported once it is final) nor deprecated; the
    newest one counts.  The address a tunnel has at start-up is no change: read it with
    ``context.state.tunnel_address(name)``.  ``move`` is the move in progress when the change was
    seen, else None.

    * Called: on every such change.
    * Lane: ``interface:<name>``; carries state: a queued call not yet started is merged into the
      newer one, whose ``event.old`` becomes the oldest address not yet reported (no call at all when
      that is ``event.new`` again); bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec
def orchestrator_watched_tables(config: Config) -> list[int]:
    """Routing tables (numbers) whose IPv6 routes this plugin needs to hear about besides ``main``
    (254): their removals reach ``orchestrator_policy_removed``.

    * Called: for enabled plugins when the daemon starts, which watches the union of the answers; again
      on every reload, only to compare: a different union is reported in the reload's changes and
      applies after a restart.  ``orchestrator monitor`` does not ask: it watches ``main`` only.
    * Lane: none; no timeout: called directly, so it must be a plain function (``async def`` is
      refused) and quick (never block).
    * Result: every plugin's answer is used.  An exception, or an answer that is not a list of table
      numbers, is logged.
    """
    raise NotImplementedError


@hookspec
def orchestrator_policy_removed(context: PluginContext, event: RouteEvent | RuleEvent) -> None:
    """Someone (or something) removed an IPv6 route of a watched table or an IPv6 rule.

    For plugins that own routing policy and put it back (systemd-networkd deletes foreign rules when it
    restarts): the ``routing`` plugin re-applies what it owns.  A ``RouteEvent`` has ``table``,
    ``dst``, ``dst_len``, ``gateway``, ``oif``, ``priority``; a ``RuleEvent`` has ``priority``,
    ``table``, ``src``, ``src_len``.  Your own removals come here too, and so do the removals replayed
    after a netlink overrun: compare with what you want and converge.

    * Called: for every such removal (the watched tables: ``main`` and those the enabled plugins'
      ``orchestrator_watched_tables`` asked for at start-up).
    * Lane: ``policy``; never superseded; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec
def orchestrator_link_changed(context: PluginContext, event: LinkChanged) -> None:
    """An interface an ``[[interfaces]]`` entry matches (the file's or a plugin's) changed
    administrative state (``event.up``) or carrier (``event.carrier``), appeared or vanished
    (``event.present``); ``event.interface`` is its name.  Its state at start-up is no change: read it
    from ``context.state``.

    * Called: on every such change.
    * Lane: ``interface:<name>``; carries state: a queued call not yet started is dropped for the newer
      one; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec
def orchestrator_standby_uplinks_changed(context: PluginContext, event: StandbyUplinksChanged) -> None:
    """The complete uplinks other than the active one changed: ``event.standby``, best default route
    first (each interface with role ``uplink`` at its own metric).  An uplink is complete with
    carrier, an IPv4 address and a default route through it; the active one is the subject of
    ``orchestrator_uplink_changed`` and never in the list.  A standby uplink that loses carrier,
    address or route leaves the list at once (no grace: nothing is lost by it).  The standby
    uplinks at start-up are no change: read them from ``context.state.standby``.  A tunnel bound
    to an uplink (``[[interfaces]] uplink``) asks ``context.state.tunnel_uplink(name)`` for it (None:
    that uplink is not complete); ``context.state.uplink_of(ifname)`` is any interface's.

    * Called: on every such change.
    * Lane: ``uplink``, after the active uplink's change of the same burst; carries state: a queued
      call not yet started is dropped for the newer one; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec
def orchestrator_link_alias_changed(context: PluginContext, event: LinkAliasChanged) -> None:
    """The alias of an interface an ``[[interfaces]]`` entry matches changed (``event.alias``, None
    when it has none).  miredo's client hook marks the begin and end of each run that changes the
    tunnel there, in the same netlink stream as its changes; the kernel reports an alias only while
    the link is up.  Its alias at start-up is no change: read it from ``context.state``.

    * Called: on every such change, in the order the kernel reported them.
    * Lane: ``interface:<name>``; never superseded; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec(firstresult=True)
def orchestrator_expected_coa(config: Config, state: NetworkState, exclude: frozenset[str]) -> str | None:
    """The care-of address the mobility daemon should use now, predicted from the policy.

    Used to know which Binding Update to wait for and what status shows; it never steers the mobility
    daemon.  ``exclude``: addresses being purged (the kernel may not have reported their removal yet).
    The ``mipv6`` plugin asks ``context.ask("orchestrator_expected_coa", config=..., state=...,
    exclude=...)`` and answers last (``@hookimpl(trylast=True)``) with UMIP's rule (the lowest
    ``mip6_preference`` with a usable global address), so a plugin for a differently configured
    mobility daemon can answer first.

    * Called: when a plugin asks through ``context.ask``, for enabled plugins until one answers, at
      once, on the event loop.
    * Lane: none, and no timeout: a plain function that only computes (an ``async def`` implementation
      is refused when its plugin loads).
    * Result: first non-None result wins, in ``plugins.enable`` order (``tryfirst``/``trylast``
      apply).  An answer that raises is logged, counted in ``plugin_errors`` and skipped;
      ``orchestrator_on_error`` is not told.
    """


@hookspec(firstresult=True)
def orchestrator_requalify_tunnel(interface: str, reason: str) -> bool | None:
    """Another plugin needs tunnel ``interface`` re-qualified (a handover over it got no answer);
    ``reason`` says why.

    The tunnel's own plugin answers True when it took the request (it applies its own limits, and never
    acts without an IPv4 uplink), None when the tunnel is not its.  The ``teredo`` plugin answers for
    its ``teredo.interface``; the ``mipv6`` plugin asks ``context.ask("orchestrator_requalify_tunnel",
    interface=..., reason=...)`` when a handover over a tunnel failed.

    * Called: when a plugin asks through ``context.ask``, for enabled plugins until one answers, at
      once, on the event loop.
    * Lane: none, and no timeout: a plain function that returns at once; schedule the work, do not do
      it here (an ``async def`` implementation is refused when its plugin loads).
    * Result: first non-None result wins, in ``plugins.enable`` order; None from everyone: nobody took
      it.  An answer that raises is logged, counted in ``plugin_errors`` and skipped.
    """


@hookspec
def orchestrator_move_phase(context: PluginContext, move: Move, phase: str) -> None:
    """A move reached a phase: ``move.phases[phase]`` is its time in seconds since the move began.

    * Called: for every phase recorded on a move, by a plugin or by the core (``detected``); not for
      ``finished``, which comes with ``orchestrator_move_finished``.
    * Lane: ``control``; never superseded; bounded by ``daemon.plugin_timeout_s``.  The lane runs
      after the code that recorded the phase, so the move may have gone further meanwhile.
    * Result: ignored.
    """


@hookspec
def orchestrator_move_finished(context: PluginContext, move: Move) -> None:
    """A move ended: ``move.outcome`` is ``ok``, ``failed``, ``timeout`` or ``superseded``;
    ``move.problems`` says what went wrong, ``move.phases["finished"]`` how long it took.

    * Called: once per move, when it ends (a move still open when the daemon stops never does).
    * Lane: ``control``; never superseded; bounded by ``daemon.plugin_timeout_s``.
    * Result: ignored.
    """


@hookspec
def orchestrator_on_error(
    context: PluginContext, plugin: str, hook: str, error: str, move: Move | None
) -> None:
    """A plugin call failed: ``plugin`` is the failing plugin's name, ``hook`` the hook it failed in
    (``"report"`` for a failure it reported itself with ``context.report``, or with ``part.failed``
    after the part's move ended), ``error`` the exception as ``"Type: message"``,
    ``"timeout after N s"`` or ``"cancelled"``, and ``move`` the move concerned (an
    ``orchestrator_uplink_changed`` call's, or the one given to ``context.report``) or None.  A move
    that had already ended keeps its outcome and problems: this call is then the only place the
    failure shows.

    * Called: for every failed call in a lane, every ``context.report`` and every ``part.failed``
      after its move ended, the failing plugin included; not for the hooks called directly
      (configuration, commands, questions).
    * Lane: ``control``; never superseded; bounded by ``daemon.plugin_timeout_s``.  A failure inside
      this hook is logged and counted but not reported to it again.
    * Result: ignored.
    """

