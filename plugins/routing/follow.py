"""Profiles that follow the tunnel's address: applied by the daemon, not by a client hook.

A tunnel made by a plugin of its own (6to4, say) has no program running ``orchestrator hook`` for
it: its profile sets ``follow_address = true`` and the routing plugin brings the tunnel to the
profile when the daemon reports a new usable address (``orchestrator_tunnel_address_changed``),
exactly as its client hook would, minus the addresses and the link state, which stay the tunnel
plugin's.  The step is then kept like a hook's, so removed routes and rules are put back.
"""

from __future__ import annotations

from orchestrator import Move, TunnelAddressChanged, writes

from . import kernel
from .endstate import Step, end_state
from .keeper import Keeper
from .profile import Profile


def apply_present(keeper: Keeper) -> None:
    """At start-up: a followed tunnel that already has its address gets no event for it, so it is
    brought to its profile (and defended) from the state of the first dump."""
    assert keeper.context is not None
    state = keeper.context.state
    for name in sorted({link.name for link in state.view.links.values()}):
        profile = keeper.profile_for(name)
        address = state.tunnel_address(name) if profile is not None and profile.follow_address else None
        if address is not None:
            address_changed(keeper, TunnelAddressChanged(name, None, address), None)


def address_changed(keeper: Keeper, event: TunnelAddressChanged, move: Move | None) -> None:
    """Apply (new address) or withdraw (no address) the routes of a followed tunnel's profile."""
    profile = keeper.profile_for(event.interface)
    if profile is None or not profile.follow_address or keeper.context is None:
        return
    interface, context = event.interface, keeper.context
    step = Step("up", interface, event.new) if event.new else Step("destroy", interface)
    try:
        applied = _apply(profile, step, event)
    except (OSError, kernel.InterfaceMissing, writes.ApplyError) as error:
        keeper.mark_stale([interface])
        context.report(f"{interface}: routing profile {profile.name!r} not applied: {error}", move)
        return
    if event.new is None:
        keeper.mark_stale([interface])
    else:
        keeper.settled(interface, step, move)
    if applied:
        context.log.info("%s: profile %r: %s", interface, profile.name, "; ".join(map(repr, applied)))


def _apply(profile: Profile, step: Step, event: TunnelAddressChanged) -> list[writes.Operation]:
    """Bring the tunnel to ``step``; a tunnel that has vanished with its address (pppd hung up)
    took its routes along, and only its rule, which names no device, is left to withdraw."""
    try:
        return kernel.converge(step.interface, profile, end_state(profile, step))
    except kernel.InterfaceMissing:
        if event.new is not None:
            raise
        return kernel.withdraw_rules(profile, event.old) if event.old else []
