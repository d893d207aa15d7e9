"""UplinkTracker on replayed observation sequences: what is a move and what is not."""

from __future__ import annotations

from orchestrator.events import Uplink, UplinkChanged
from orchestrator.uplink import Observation, UplinkTracker

A = Uplink("eth0", "10.1.0.100/24", "10.1.0.1")
B = Uplink("eth0", "10.2.0.100/24", "10.2.0.1")
GRACE, SETTLE = 2.0, 0.3


def tracker(start: Uplink | None = A) -> UplinkTracker:
    t = UplinkTracker(GRACE, SETTLE)
    assert t.observe(Observation(start, carrier=start is not None), 0.0) == []
    return t


def pairs(events: list[UplinkChanged]) -> list[tuple[Uplink | None, Uplink | None]]:
    return [(e.old, e.new) for e in events]


def test_first_observation_is_silent() -> None:
    t = UplinkTracker(GRACE, SETTLE)
    assert t.observe(Observation(A, True), 0.0) == []
    assert t.current == A


def test_renewal_is_not_a_move() -> None:
    t = tracker()
    assert t.observe(Observation(A, True), 1.0) == []
    assert t.loss_deadline is None


def test_move_is_reported_at_once_with_increasing_ids() -> None:
    t = tracker()
    first = t.observe(Observation(B, True), 1.0)
    second = t.observe(Observation(A, True), 2.0)
    assert pairs(first) == [(A, B)] and pairs(second) == [(B, A)]
    assert second[0].move == first[0].move + 1


def test_delete_then_add_within_settle_is_one_move() -> None:
    t = tracker()
    assert t.observe(Observation(None, False), 1.0) == []
    assert t.loss_deadline == 1.0 + SETTLE
    assert pairs(t.observe(Observation(B, True), 1.1)) == [(A, B)]
    assert t.expire(5.0) == []


def test_release_is_a_loss_after_settle() -> None:
    t = tracker()
    t.observe(Observation(None, False), 1.0)
    assert t.expire(1.0 + SETTLE / 2) == []
    assert pairs(t.expire(1.0 + SETTLE)) == [(A, None)]
    assert pairs(t.observe(Observation(A, True), 9.0)) == [(None, A)]


def test_carrier_blip_under_grace_is_nothing_but_asks_for_a_probe() -> None:
    t = tracker()
    t.probe_wanted = False
    assert t.observe(Observation(A, False), 1.0) == []
    assert t.loss_deadline == 1.0 + GRACE
    assert t.observe(Observation(A, True), 1.5) == []
    assert t.loss_deadline is None and t.probe_wanted


def test_carrier_gone_longer_than_grace_is_a_loss_then_a_return() -> None:
    t = tracker()
    t.observe(Observation(A, False), 1.0)
    assert pairs(t.expire(1.0 + GRACE)) == [(A, None)]
    assert pairs(t.observe(Observation(A, True), 4.0)) == [(None, A)]


def test_release_during_a_carrier_blip_keeps_the_earlier_deadline() -> None:
    t = tracker()
    t.observe(Observation(A, False), 1.0)
    t.observe(Observation(None, False), 1.1)
    assert t.loss_deadline == 1.1 + SETTLE


def test_same_address_behind_another_router_is_a_move() -> None:
    t = tracker()
    learned = t.gateway_seen(A, "02:00:00:00:00:0a")
    assert [e.kind for e in learned] == ["gateway"]
    t.observe(Observation(A, False), 1.0)
    t.observe(Observation(A, True), 1.2)
    moved = t.gateway_seen(A, "02:00:00:00:00:0c")
    assert len(moved) == 1 and isinstance(moved[0], UplinkChanged)
    assert moved[0].old is not None and moved[0].old.gateway_lladdr == "02:00:00:00:00:0a"
    assert moved[0].new is not None and moved[0].new.gateway_lladdr == "02:00:00:00:00:0c"


def test_same_router_after_a_blip_is_only_a_confirmation() -> None:
    t = tracker()
    t.gateway_seen(A, "02:00:00:00:00:0a")
    assert [e.kind for e in t.gateway_seen(A, "02:00:00:00:00:0a")] == ["gateway"]


def test_probe_answer_for_an_uplink_that_moved_on_is_ignored() -> None:
    t = tracker()
    t.observe(Observation(B, True), 1.0)
    assert t.gateway_seen(A, "02:00:00:00:00:0a") == []


def test_point_to_point_uplink_without_gateway_never_probes() -> None:
    ppp = Uplink("ppp0", "100.64.0.5/32", None)
    t = tracker(ppp)
    assert not t.probe_wanted
