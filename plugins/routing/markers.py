"""How a client hook run shows itself to the daemon: the tunnel's alias (IFLA_IFALIAS).

Every hook path (the generated shell hook and the full Python hook) writes one alias before its
first change and one after its last, in the same stream of netlink writes: the daemon reads them
in order with the changes themselves, so it knows a removal it sees belongs to a run of the hook
(and is not to be undone) without any message outside netlink, and a shell hook needs no process
to tell it.  A run with nothing to change writes nothing, markers included.

    orchestrator hook: applying STATE          a run has begun (its changes follow)
    orchestrator hook: up ADDRESS LLADDRESS MTU   the run brought the tunnel to this step ("-": no MTU)
    orchestrator hook: down | destroy          the run flushed the tunnel

Light imports only: the full hook imports this in a bare interpreter.
"""

from __future__ import annotations

from .endstate import STATES, Step

PREFIX = "orchestrator hook:"
APPLYING = "applying"


def applying(state: str) -> str:
    return f"{PREFIX} {APPLYING} {state}"


def done(step: Step) -> str:
    if step.state != "up":
        return f"{PREFIX} {step.state}"
    return f"{PREFIX} up {step.address} {step.lladdress} {step.mtu or '-'}"


class Marker:
    """A parsed alias: ``running`` (a run has begun) or the step a run ended with."""

    __slots__ = ("running", "state", "step")

    def __init__(self, running: bool, state: str, step: Step | None) -> None:
        self.running = running
        self.state = state
        self.step = step  # the "up" step a run ended with; None while running or after down/destroy


def parse(interface: str, alias: str | None) -> Marker | None:
    """The marker in ``alias``, or None when it is none of the hook's (anything malformed included:
    only root sets an alias, but the daemon trusts it no further than it parses)."""
    if not alias or not alias.startswith(PREFIX):
        return None
    words = alias[len(PREFIX) :].split()
    if len(words) == 2 and words[0] == APPLYING and words[1] in STATES:
        return Marker(True, words[1], None)
    if len(words) == 1 and words[0] in STATES and words[0] != "up":
        return Marker(False, words[0], None)
    if len(words) == 4 and words[0] == "up":
        step = _up_step(interface, words[1:])
        return None if step is None else Marker(False, "up", step)
    return None


def _up_step(interface: str, words: list[str]) -> Step | None:
    from .profile import canonical_ipv6

    try:
        address, lladdress = canonical_ipv6(words[0]), canonical_ipv6(words[1])
    except OSError:
        return None
    mtu_text = words[2]
    if mtu_text != "-" and not (mtu_text.isascii() and mtu_text.isdigit()):
        return None
    mtu = None if mtu_text == "-" else int(mtu_text)
    return Step("up", interface, address, lladdress, mtu)
