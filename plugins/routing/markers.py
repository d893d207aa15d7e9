"""How a client hook run shows itself to the daemon: the tunnel's alias (IFLA_IFALIAS).

Every hook path (the generated shell hook and the full Python hook) writes one alias before its
first change and one after its last, in the same stream of netlink writes: the daemon reads them
in order with the changes themselves, so it knows a removal it sees belongs to a run of the hook
(and is not to be undone) without any message outside netlink, and a shell hook needs no process
to tell it.  An ``up`` that finds the tunnel as wanted, its end marker included, writes nothing.

    orchestrator hook: applying STATE          a run has begun (its changes follow)
    orchestrator hook: up ADDRESS LLADDRESS MTU   the run brought the tunnel to this step ("-": no MTU)
    orchestrator hook: down | destroy          the run flushed the tunnel
    orchestrator hook: failed STATE            the kernel refused the run part-way

The kernel reports an alias only while the link is up: ``down`` writes its end before the link goes
down, and a run on a link that is down is over for the daemon when the link comes up or goes.
"""

from __future__ import annotations

from .endstate import STATES, Step

PREFIX = "orchestrator hook:"
APPLYING = "applying"
FAILED = "failed"


def applying(state: str) -> str:
    return f"{PREFIX} {APPLYING} {state}"


def failed(state: str) -> str:
    return f"{PREFIX} {FAILED} {state}"


def done(step: Step) -> str:
    if step.state != "up":
        return f"{PREFIX} {step.state}"
    return f"{PREFIX} up {step.address} {step.lladdress} {step.mtu or '-'}"


class Marker:
    """A parsed alias: ``running`` (a run has begun), ``failed``, or the step a run ended with."""

    __slots__ = ("failed", "running", "state", "step")

    def __init__(self, running: bool, state: str, step: Step | None, failed: bool = False) -> None:
        self.running = running
        self.state = state
        self.step = step  # the "up" step a run ended with; None while running, failed or flushed
        self.failed = failed


def parse(interface: str, alias: str | None) -> Marker | None:
    """The marker in ``alias``, or None when it is none of the hook's (anything malformed included:
    only root sets an alias, but the daemon trusts it no further than it parses)."""
    if not alias or not alias.startswith(PREFIX):
        return None
    words = alias[len(PREFIX) :].split()
    if len(words) == 2 and words[0] in (APPLYING, FAILED) and words[1] in STATES:
        return Marker(words[0] == APPLYING, words[1], None, failed=words[0] == FAILED)
    if len(words) == 1 and words[0] in STATES and words[0] != "up":
        return Marker(False, words[0], None)
    if len(words) == 4 and words[0] == "up":
        step = _up_step(interface, words[1:])
        return None if step is None else Marker(False, "up", step)
    return None


def _up_step(interface: str, words: list[str]) -> Step | None:
    from .profile import canonical_ipv6, tunnel_mtu

    try:
        address, lladdress = canonical_ipv6(words[0]), canonical_ipv6(words[1])
    except OSError:
        return None
    mtu = None if words[2] == "-" else tunnel_mtu(words[2])
    if mtu is None and words[2] != "-":
        return None
    return Step("up", interface, address, lladdress, mtu)
