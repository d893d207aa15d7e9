"""The mipv6 plugin's rules without a network: UMIP's choice of care-of address, what a Binding
Update and Acknowledgement look like, and how a pending handover ends.

Packets are built by scapy and kernel state by pyroute2 (encoders independent of the daemon's
decoders).  The real-kernel behaviour with the UMIP stand-ins is in ``test_mipv6.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from orchestrator_mipv6 import coa, kernel_signals, xfrm
from orchestrator_mipv6.handover import Handovers, Pending
from orchestrator_mipv6.mobility import Signal, parse
from orchestrator_testkit.configs import load, write
from orchestrator_testkit.recorded_netlink import address, decode, link, route
from scapy.layers.inet6 import (  # type: ignore[import-untyped]
    HAO,
    MIP6MH_BA,
    MIP6MH_BU,
    UDP,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
)

from orchestrator.events import Uplink, UplinkChanged
from orchestrator.moves import Move
from orchestrator.state import NetworkState

COA, HA, HOA = "2001:0:c633:6401::1", "2001:db8:1::1", "2001:db8:1::10"
NATIVE = "2001:db8:2::10"

POLICY = """
[[interfaces]]
match = "usb6"
role = "uplink"
mip6_preference = 5
"""


def state_of(tmp_path: Path, *datagrams: bytes) -> tuple[Any, NetworkState]:
    config = load(write(tmp_path, extra=POLICY))
    state = NetworkState(config, lookup=lambda _d: None, reread=lambda _f, _t: [])
    for event in decode(*datagrams):
        state.view.apply(event)
    return config, state


# -- UMIP's choice ------------------------------------------------------------------------------------

SEED = (link(1, "eth0"), link(2, "teredo"), link(3, "usb6"), link(4, "lan0"))


def test_the_lowest_preference_with_a_usable_address_wins(tmp_path: Path) -> None:
    config, state = state_of(tmp_path, *SEED, address(2, f"{COA}/128"), address(3, f"{NATIVE}/64"),
                             route("::/0", 3, gateway="fe80::1"), address(4, "2001:db8:9::1/64"),
                             route("::/0", 4, gateway="fe80::9"))
    best = coa.expected(config, state)
    assert best is not None and (best.address, best.interface, best.tunnel) == (COA, "teredo", True)
    assert [c.interface for c in coa.candidates(config, state)] == ["teredo", "usb6"], "lan0 is never a CoA"


def test_purged_tentative_and_routerless_addresses_do_not_count(tmp_path: Path) -> None:
    config, state = state_of(tmp_path, *SEED, address(2, f"{COA}/128"), address(3, f"{NATIVE}/64"),
                             route("::/0", 3, gateway="fe80::1"))
    fallback = coa.expected(config, state, exclude=frozenset({COA}))
    assert fallback is not None and fallback.address == NATIVE
    _, tentative = state_of(tmp_path, *SEED, address(2, f"{COA}/128", tentative=True))
    assert coa.expected(config, tentative) is None
    _, routerless = state_of(tmp_path, *SEED, address(3, f"{NATIVE}/64"))
    assert coa.expected(config, routerless) is None, "a non-tunnel interface needs a router"


def test_link_local_is_never_a_coa(tmp_path: Path) -> None:
    config, state = state_of(tmp_path, *SEED, address(2, "fe80::ffff:ffff:ffff/64"))
    assert coa.expected(config, state) is None


# -- the signals on the wire --------------------------------------------------------------------------


def bu(source: str = COA, sequence: int = 7) -> bytes:
    packet = IPv6(src=source, dst=HA) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / MIP6MH_BU(seq=sequence)
    return bytes(packet)


def ba(status: int = 0, sequence: int = 7, destination: str = COA) -> bytes:
    routing = IPv6ExtHdrRouting(type=2, addresses=[HOA], segleft=1)
    return bytes(IPv6(src=HA, dst=destination) / routing / MIP6MH_BA(status=status, seq=sequence))


def test_a_binding_update_and_acknowledgement_are_read_as_rfc_6275_writes_them() -> None:
    assert parse(bu()) == Signal("bu", COA, HA, 7, None, HOA)
    assert parse(ba(129)) == Signal("ba", HA, COA, 7, 129, HOA)


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x60" + bytes(10), bytes(IPv6(src=COA, dst=HA) / UDP()), bu()[:50], b"\x45" + bytes(60)],
)
def test_anything_else_is_not_a_signal(packet: bytes) -> None:
    assert parse(packet) is None


# -- a pending handover -------------------------------------------------------------------------------


@dataclass
class Timer:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Results:
    seen: list[tuple[str | None, bool]] = field(default_factory=list)

    def __call__(self, pending: Pending, problem: str | None, requalify: bool) -> None:
        self.seen.append((problem, requalify))


def pending_handover(awaited: str | None = COA) -> tuple[Handovers, Results, Move, Pending]:
    results = Results()
    handovers = Handovers(HA, results)
    event = UplinkChanged(None, Uplink("eth0", "10.2.0.100/24", "10.2.0.1"), 1)
    move = Move(1, event, 0.0, 0.0)
    pending = Pending("2001:0:c633:6401::dead", None, None, move, move.hold(), Timer())
    handovers.begin(pending)
    if awaited:
        handovers.expect(awaited, "teredo")
    return handovers, results, move, pending


def test_bu_then_ba_confirms() -> None:
    handovers, results, move, pending = pending_handover()
    handovers.heard(parse(bu()))  # type: ignore[arg-type]
    assert "bu-sent" in move.phases and results.seen == []
    handovers.heard(parse(ba()))  # type: ignore[arg-type]
    assert results.seen == [(None, False)] and pending.timer.cancelled and handovers.pending is None


def test_signals_heard_before_the_coa_was_known_count() -> None:
    handovers, results, _, _ = pending_handover(awaited=None)
    handovers.heard(parse(bu()))  # type: ignore[arg-type]
    handovers.heard(parse(ba()))  # type: ignore[arg-type]
    assert results.seen == []
    handovers.expect(COA, "teredo")
    assert results.seen == [(None, False)]


def test_signals_of_the_old_coa_or_an_old_bu_do_not_confirm() -> None:
    handovers, results, _, _ = pending_handover()
    handovers.heard(parse(bu(source="2001:0:c633:6401::dead")))  # type: ignore[arg-type]
    handovers.heard(parse(ba(destination="2001:0:c633:6401::dead")))  # type: ignore[arg-type]
    handovers.heard(parse(bu(sequence=8)))  # type: ignore[arg-type]
    handovers.heard(parse(ba(sequence=7)))  # type: ignore[arg-type]
    assert results.seen == []


def test_a_refusal_fails_without_requalifying() -> None:
    handovers, results, _, _ = pending_handover()
    handovers.heard(parse(bu()))  # type: ignore[arg-type]
    handovers.heard(parse(ba(status=129)))  # type: ignore[arg-type]
    assert results.seen == [(f"the home agent refused the binding from {COA} (status 129)", False)]


@pytest.mark.parametrize(
    ("signals", "problem", "requalify"),
    [
        ([], f"no Binding Update from {COA} to {HA} within 5 s", True),
        ([bu()], f"no Binding Acknowledgement for {COA} within 5 s", True),
    ],
)
def test_silence_fails_and_asks_for_a_requalification(
    signals: list[bytes], problem: str, requalify: bool
) -> None:
    handovers, results, _, _ = pending_handover()
    for signal in signals:
        handovers.heard(parse(signal))  # type: ignore[arg-type]
    handovers.expired(5.0)
    assert results.seen == [(problem, requalify)]


def test_no_new_coa_at_all_fails_without_requalifying() -> None:
    handovers, results, _, _ = pending_handover(awaited=None)
    handovers.expired(5.0)
    assert results.seen == [("no new care-of address within 5 s", False)]


def test_an_abandoned_handover_releases_its_move_quietly() -> None:
    handovers, results, move, pending = pending_handover()
    handovers.abandon()
    assert results.seen == [] and not move.parts_open and move.problems == [] and pending.timer.cancelled


# -- IPsec-protected signalling: mip6d's kernel changes (synthesized: this kernel has no MIPv6) ---------


def test_kernel_changes_confirm_when_the_wire_cannot() -> None:
    handovers, results, move, _ = pending_handover()
    migrate = xfrm.XfrmSignal(
        "migrate", xfrm.XFRM_MSG_MIGRATE, HOA, HA, 0,
        migrations=(xfrm.Migration("2001:0:c633:6401::dead", HA, COA, HA, 50),),
    )
    home_path = xfrm.XfrmSignal(
        "policy", xfrm.XFRM_MSG_UPDPOLICY, HOA, HA, 0, priority=xfrm.MIP6_PRIO_HOME_DATA
    )
    for signal in kernel_signals.from_xfrm(home_path, HA):
        handovers.heard(signal)
    assert results.seen == [], "the home path alone proves nothing: it must follow the move to the CoA"
    for change in (migrate, home_path):
        for signal in kernel_signals.from_xfrm(change, HA):
            handovers.heard(signal)
    assert "bu-sent" in move.phases and results.seen == [(None, False)]


def test_the_tunnel_endpoint_and_the_hao_state_name_the_coa() -> None:
    tunnel = xfrm.TunnelEndpoint(7, "ip6tnl1", COA, HA)
    state = xfrm.XfrmSignal("state", xfrm.XFRM_MSG_UPDSA, HOA, HA, 60, coaddr=COA)
    unrelated = xfrm.XfrmSignal("policy", xfrm.XFRM_MSG_NEWPOLICY, HOA, HA, 0, priority=2)
    assert [s.source for s in kernel_signals.from_tunnel(tunnel, HA)] == [COA]
    assert [s.kind for s in kernel_signals.from_xfrm(state, HA)] == ["kernel-bu"]
    assert kernel_signals.from_xfrm(unrelated, HA) == []
    assert kernel_signals.from_tunnel(xfrm.TunnelEndpoint(8, "ip6tnl2", COA, "2001:db8:7::1"), HA) == []
