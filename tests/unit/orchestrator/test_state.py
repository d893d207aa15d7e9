"""NetworkState fed with recorded netlink messages: the derived events of each DHCP client's sequence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator_testkit import recorded_netlink as r
from orchestrator_testkit.configs import BOUND_INTERFACES, load, write
from orchestrator_testkit.recorded_netlink import feed

from orchestrator.events import (
    GatewayLearned,
    LinkAliasChanged,
    LinkChanged,
    StandbyUplinksChanged,
    TunnelAddressChanged,
    Uplink,
    UplinkChanged,
)
from orchestrator.netlink import queries
from orchestrator.state import NetworkState
from orchestrator.view import KernelView

ETH, TEREDO = 2, 7


def state(tmp_path: Path, *initial: bytes) -> NetworkState:
    """A primed state with no reference: the uplink comes from the main table's default route."""
    return r.primed_state(load(write(tmp_path)), r.link(ETH, "eth0"), r.link(TEREDO, "teredo"), *initial)


def uplink_changes(events: list[object]) -> list[tuple[Uplink | None, Uplink | None]]:
    return [(e.old, e.new) for e in events if isinstance(e, UplinkChanged)]


LEASE_A = (
    r.address(ETH, "10.1.0.100/24"),
    r.route("10.1.0.0/24", ETH),
    r.route("0.0.0.0/0", ETH, "10.1.0.1"),
)
A = Uplink("eth0", "10.1.0.100/24", "10.1.0.1")
B = Uplink("eth0", "10.2.0.100/24", "10.2.0.1")


def test_start_up_dump_is_silent_and_sets_the_uplink(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A)
    assert s.tracker.current == A


def test_first_lease_then_renewal(tmp_path: Path) -> None:
    s = state(tmp_path)
    assert uplink_changes(feed(s, *LEASE_A)) == [(None, A)]
    assert feed(s, r.address(ETH, "10.1.0.100/24"), now=2.0) == []


def test_dhclient_move_flush_then_add_is_one_move(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A)
    events = feed(
        s,
        r.address(ETH, "10.1.0.100/24", deleted=True),
        r.route("10.1.0.0/24", ETH, deleted=True),
        r.address(ETH, "10.2.0.100/24"),
        r.route("10.2.0.0/24", ETH),
        r.route("0.0.0.0/0", ETH, "10.2.0.1"),
    )
    assert uplink_changes(events) == [(A, B)]


def test_udhcpc_bursts_are_one_move(tmp_path: Path) -> None:
    """udhcpc: add /8, delete, add /24, then the default route in a later burst."""
    s = state(tmp_path)
    assert feed(s, r.address(ETH, "10.2.0.100/8"), r.route("10.0.0.0/8", ETH)) == []
    assert (
        feed(s, r.address(ETH, "10.2.0.100/8", deleted=True), r.route("10.0.0.0/8", ETH, deleted=True)) == []
    )
    events = feed(
        s, r.address(ETH, "10.2.0.100/24"), r.route("10.2.0.0/24", ETH), r.route("0.0.0.0/0", ETH, "10.2.0.1")
    )
    assert uplink_changes(events) == [(None, B)]


def test_release_starts_the_settle_timer_and_rereads_routes(tmp_path: Path) -> None:
    """dhclient's release: DELADDR, subnet route deletion; the default route vanishes silently."""
    s = state(tmp_path, *LEASE_A)
    s._reread = lambda family, table: []
    events = feed(
        s, r.address(ETH, "10.1.0.100/24", deleted=True), r.route("10.1.0.0/24", ETH, deleted=True), now=5.0
    )
    assert [(e.dst, e.deleted) for e in events] == [("0.0.0.0", True)]  # type: ignore[attr-defined]
    assert s.tracker.loss_deadline == 5.0 + 0.3
    assert uplink_changes(s.tracker.expire(5.3)) == [(A, None)]  # type: ignore[arg-type]


def test_routes_in_other_tables_and_lan_interfaces_are_not_uplinks(tmp_path: Path) -> None:
    s = state(tmp_path, r.link(9, "lan0"))
    assert feed(s, r.address(9, "192.0.2.1/24"), r.route("0.0.0.0/0", 9, "192.0.2.254")) == []
    assert s.tracker.current is None


def test_tunnel_address_waits_for_dad_and_follows_the_name(tmp_path: Path) -> None:
    s = state(tmp_path)
    teredo = "2001:0:c633:6401::1"
    assert feed(s, r.address(TEREDO, f"{teredo}/128", tentative=True)) == []
    assert feed(s, r.address(TEREDO, f"{teredo}/128")) == [TunnelAddressChanged("teredo", None, teredo)]
    # miredo restarts: the link goes, a new one with a new index comes with a new address.
    gone = feed(s, r.link(TEREDO, "teredo", deleted=True))
    assert TunnelAddressChanged("teredo", teredo, None) in gone
    assert LinkChanged("teredo", False, False, False) in gone
    new = "2001:0:c633:6401::2"
    back = feed(
        s, r.link(12, "teredo"), r.address(12, "fe80::ffff:ffff:ffff/64"), r.address(12, f"{new}/128")
    )
    assert TunnelAddressChanged("teredo", None, new) in back


TEREDO_ADDRESS = "2001:0:c633:6401::1"
MAC_A, MAC_C = "02:00:00:00:0a:01", "02:00:00:00:0c:01"


def aged(tmp_path: Path, uplink_made: int, teredo_made: int) -> NetworkState:
    """The uplink of lease A and a Teredo address (its prefix declared, as the teredo plugin does),
    created at the given kernel stamps."""
    s = state(
        tmp_path,
        r.address(ETH, "10.1.0.100/24", created=uplink_made),
        *LEASE_A[1:],
        r.address(TEREDO, f"{TEREDO_ADDRESS}/128", created=teredo_made),
    )
    s.config = replace(s.config, address_prefixes={"teredo": "2001::/32"})
    return s


def test_resuming_on_the_recorded_uplink_is_no_move_but_its_gateway_is_remembered(tmp_path: Path) -> None:
    s = aged(tmp_path, uplink_made=500, teredo_made=100)  # a DHCP client restarted: no matter
    assert s.resume(replace(A, gateway_lladdr=MAC_A), 1.0) == []
    assert s.gateway_seen(A, MAC_A)[0] == GatewayLearned("eth0", "10.1.0.1", MAC_A)
    s = aged(tmp_path, uplink_made=500, teredo_made=100)
    s.resume(replace(A, gateway_lladdr=MAC_A), 1.0)
    assert uplink_changes(s.gateway_seen(A, MAC_C)) == [  # type: ignore[arg-type]
        (replace(A, gateway_lladdr=MAC_A), replace(A, gateway_lladdr=MAC_C))
    ]


def test_another_uplink_than_the_recorded_one_is_a_missed_move(tmp_path: Path) -> None:
    s = aged(tmp_path, uplink_made=100, teredo_made=500)
    assert uplink_changes(s.resume(B, 1.0)) == [(B, A)]  # type: ignore[arg-type]


def test_no_uplink_at_start_is_judged_like_a_live_loss(tmp_path: Path) -> None:
    s = state(tmp_path)
    assert s.resume(A, 1.0) == []
    assert s.tracker.loss_deadline == 1.3  # settle_ms: the address or route is missing
    assert uplink_changes(feed(s, *LEASE_A, now=1.2)) == []  # back in time: nothing happened
    s = state(tmp_path)
    s.resume(A, 1.0)
    assert uplink_changes(s.tracker.expire(1.3)) == [(A, None)]  # type: ignore[arg-type]


def test_without_a_record_a_tunnel_address_older_than_the_uplink_is_a_missed_move(tmp_path: Path) -> None:
    s = aged(tmp_path, uplink_made=500, teredo_made=100)
    assert s.tunnels_older_than_uplink() == ["teredo"]
    assert uplink_changes(s.resume(None, 1.0)) == [(None, A)]  # type: ignore[arg-type]
    s = aged(tmp_path, uplink_made=100, teredo_made=500)
    assert s.tunnels_older_than_uplink() == [] and s.resume(None, 1.0) == []
    s = aged(tmp_path, uplink_made=5, teredo_made=0xFFFFFFF0)  # the stamps wrapped in between
    assert s.tunnels_older_than_uplink() == ["teredo"]


def test_a_tunnel_without_a_declared_prefix_is_not_judged_by_its_age(tmp_path: Path) -> None:
    s = aged(tmp_path, uplink_made=500, teredo_made=100)
    s.config = replace(s.config, address_prefixes={})  # a static tunnel, configured before DHCP
    assert s.tunnels_older_than_uplink() == [] and s.resume(None, 1.0) == []


def dump(uplink_made: int) -> KernelView:
    """A fresh dump after an overrun: lease A (its address made at ``uplink_made``) and Teredo's."""
    view = KernelView()
    for event in r.decode(r.link(ETH, "eth0"), r.link(TEREDO, "teredo"),
                          r.address(ETH, "10.1.0.100/24", created=uplink_made), *LEASE_A[1:],
                          r.address(TEREDO, f"{TEREDO_ADDRESS}/128", created=100)):
        view.apply(event)
    return view


def test_an_overrun_hides_a_move_only_when_the_uplink_address_was_made_anew(tmp_path: Path) -> None:
    s = aged(tmp_path, uplink_made=500, teredo_made=100)  # older, but nothing happened in the overrun
    assert uplink_changes(s.resync(dump(uplink_made=500), 2.0)[1]) == []
    assert uplink_changes(s.resync(dump(uplink_made=900), 3.0)[1]) == [(None, A)]


def test_link_changed_only_for_configured_interfaces(tmp_path: Path) -> None:
    s = state(tmp_path, r.link(20, "veth-other"))
    assert feed(s, r.link(20, "veth-other", carrier=False)) == []
    assert feed(s, r.link(ETH, "eth0", carrier=False)) == [LinkChanged("eth0", True, False, True)]


def test_resync_replays_the_net_difference(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A)
    fresh = KernelView()
    for event in r.decode(
        r.link(ETH, "eth0"),
        r.link(TEREDO, "teredo"),
        r.address(ETH, "10.2.0.100/24"),
        r.route("10.2.0.0/24", ETH),
        r.route("0.0.0.0/0", ETH, "10.2.0.1"),
    ):
        fresh.apply(event)
    changes, derived = s.resync(fresh, 3.0)
    kinds = sorted((type(c).__name__, c.deleted) for c in changes)
    # The default route keeps its key (same metric and interface): one replacement, not two events.
    assert kinds == [
        ("AddressEvent", False),
        ("AddressEvent", True),
        ("RouteEvent", False),
        ("RouteEvent", False),
        ("RouteEvent", True),
    ]
    assert uplink_changes(derived) == [(A, B)]
    assert s.view.snapshot() == fresh.snapshot()


def test_resync_with_a_changed_carrier_counter_probes_the_gateway(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A)
    s.tracker.probe_wanted = False
    fresh = KernelView()
    for event in r.decode(r.link(ETH, "eth0", carrier_changes=2), r.link(TEREDO, "teredo"), *LEASE_A):
        fresh.apply(event)
    _, derived = s.resync(fresh, 3.0)
    assert uplink_changes(derived) == []
    assert s.tracker.probe_wanted


def test_reference_route_from_the_kernel_decides(tmp_path: Path) -> None:
    """With a reference, the kernel's own route towards it picks the uplink among several."""
    path = write(tmp_path, uplinks='reference = "198.51.100.1"')
    s = r.primed_state(
        load(path),
        r.link(ETH, "eth0"),
        r.link(3, "eth1"),
        *LEASE_A,
        r.address(3, "10.3.0.7/24"),
        r.route("0.0.0.0/0", 3, "10.3.0.1", metric=600),
        reference="198.51.100.1",
        lookup=lambda _dst: queries.RouteLookup(3, "10.3.0.1", "10.3.0.7"),
    )
    assert s.tracker.current == Uplink("eth1", "10.3.0.7/24", "10.3.0.1")


def test_a_gateway_left_over_from_the_previous_network_is_no_uplink(tmp_path: Path) -> None:
    """Add-new-then-delete-old leaves the old default route in the kernel, its gateway no longer on
    any subnet: not an uplink (no half-move), until the new default route comes."""
    s = state(tmp_path, *LEASE_A)
    assert (
        feed(
            s,
            r.address(ETH, "10.2.0.100/24"),
            r.route("10.2.0.0/24", ETH),
            r.address(ETH, "10.1.0.100/24", deleted=True),
            r.route("10.1.0.0/24", ETH, deleted=True),
        )
        == []
    )
    events = feed(
        s, r.route("0.0.0.0/0", ETH, "10.1.0.1", deleted=True), r.route("0.0.0.0/0", ETH, "10.2.0.1")
    )
    assert uplink_changes(events) == [(A, B)]


PPP_INTERFACES = '[[interfaces]]\nmatch = "ppp0"\nrole = "uplink"\n'
PPP, PPP_REDIALLED = 9, 10


def ppp_state(tmp_path: Path, gateway: str | None) -> NetworkState:
    """pppd's unit dialled: ``198.51.100.7 peer 203.0.113.1/32`` (IFA_LOCAL ours, IFA_ADDRESS the
    peer) and a default route into it, with no gateway or via the peer (which no subnet holds: the
    kernel reaches it through the peer's host route)."""
    return r.primed_state(
        load(write(tmp_path, interfaces=PPP_INTERFACES)),
        r.link(PPP, "ppp0"),
        r.address(PPP, "198.51.100.7/32", peer="203.0.113.1"),
        r.route("0.0.0.0/0", PPP, gateway),
    )


def test_point_to_point_uplink_is_our_address_never_the_peer(tmp_path: Path) -> None:
    for gateway in (None, "203.0.113.1"):
        s = ppp_state(tmp_path, gateway)
        assert s.tracker.current == Uplink("ppp0", "198.51.100.7/32", gateway)


def test_point_to_point_redial_with_a_new_address_is_one_move(tmp_path: Path) -> None:
    s = ppp_state(tmp_path, None)
    assert uplink_changes(feed(s, r.link(PPP, "ppp0", deleted=True), now=1.0)) == []
    assert s.tracker.loss_deadline == 1.0 + 0.3  # settle_ms: the address and route went with the unit
    events = feed(
        s,
        r.link(PPP_REDIALLED, "ppp0"),
        r.address(PPP_REDIALLED, "198.51.100.9/32", peer="203.0.113.2"),
        r.route("0.0.0.0/0", PPP_REDIALLED),
        now=1.1,
    )
    old, new = Uplink("ppp0", "198.51.100.7/32", None), Uplink("ppp0", "198.51.100.9/32", None)
    assert uplink_changes(events) == [(old, new)]
    assert s.tracker.loss_deadline is None and not s.tracker.probe_wanted


def test_an_alias_is_a_change_after_the_first_dump_only(tmp_path: Path) -> None:
    """miredo's client hook marks its runs in the tunnel's alias: the first dump's is no change."""
    s = state(tmp_path, r.link(TEREDO, "teredo", alias="orchestrator hook: down"))
    assert feed(s, r.link(TEREDO, "teredo", alias="orchestrator hook: down")) == []
    assert feed(s, r.link(TEREDO, "teredo", alias="orchestrator hook: applying up")) == [
        LinkAliasChanged("teredo", "orchestrator hook: applying up")
    ]


ETH1 = 3
SECOND_UPLINK = (
    r.link(ETH1, "eth1"),
    r.address(ETH1, "10.2.0.100/24"),
    r.route("10.2.0.0/24", ETH1),
    r.route("0.0.0.0/0", ETH1, "10.2.0.1", metric=200),
)
STANDBY = Uplink("eth1", "10.2.0.100/24", "10.2.0.1")


def test_every_complete_uplink_is_tracked_the_best_default_route_active(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A, *SECOND_UPLINK)
    assert s.tracker.current == A
    assert s.complete_uplinks(s._ipv4_defaults()) == [A, STANDBY] and s.standby == (STANDBY,)


def test_a_standby_uplink_leaves_and_comes_back_at_once(tmp_path: Path) -> None:
    """No grace for a standby: nothing is lost by it, and the active uplink is not touched."""
    s = state(tmp_path, *LEASE_A, *SECOND_UPLINK)
    assert feed(s, r.link(ETH1, "eth1", carrier=False)) == [
        LinkChanged("eth1", True, False, True),
        StandbyUplinksChanged(()),
    ]
    back = feed(s, r.link(ETH1, "eth1"), now=2.0)
    assert back == [LinkChanged("eth1", True, True, True), StandbyUplinksChanged((STANDBY,))]
    assert feed(s, r.route("0.0.0.0/0", ETH1, "10.2.0.1", metric=200, deleted=True), now=3.0) == [
        StandbyUplinksChanged(())
    ]
    assert s.tracker.current == A


def test_when_the_active_uplink_is_lost_the_other_is_the_kernels_choice(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A, *SECOND_UPLINK)
    derived = feed(s, r.route("0.0.0.0/0", ETH, "10.1.0.1", deleted=True), now=2.0)
    assert UplinkChanged(A, STANDBY, 1) in derived and StandbyUplinksChanged(()) in derived


def test_the_active_uplink_losing_carrier_hands_over_to_a_complete_one_at_once(tmp_path: Path) -> None:
    """The kernel keeps its route through a link without carrier; the uplink is the complete one."""
    s = state(tmp_path, *LEASE_A, *SECOND_UPLINK)
    lost = feed(s, r.link(ETH, "eth0", carrier=False), now=2.0)
    assert uplink_changes(lost) == [(A, STANDBY)] and StandbyUplinksChanged(()) in lost
    assert s.tracker.loss_deadline is None  # no grace: nothing is lost by leaving it
    back = feed(s, r.link(ETH, "eth0"), now=2.1)
    assert uplink_changes(back) == [(STANDBY, A)] and StandbyUplinksChanged((STANDBY,)) in back


def test_alone_the_active_uplink_losing_carrier_still_waits_for_its_grace(tmp_path: Path) -> None:
    s = state(tmp_path, *LEASE_A)
    assert uplink_changes(feed(s, r.link(ETH, "eth0", carrier=False), now=2.0)) == []
    assert s.tracker.loss_deadline == 4.0


TEREDO2 = 8


def bound_state(tmp_path: Path, *initial: bytes) -> NetworkState:
    links = (r.link(ETH, "eth0"), r.link(TEREDO, "teredo"), r.link(TEREDO2, "teredo2"))
    s = r.primed_state(load(write(tmp_path, interfaces=BOUND_INTERFACES)), *links, *initial)
    s.config = replace(s.config, address_prefixes={"teredo": "2001::/32", "teredo2": "2001::/32"})
    return s


def test_a_bound_tunnel_leaves_by_its_own_uplink_an_unbound_one_by_the_active(tmp_path: Path) -> None:
    s = bound_state(tmp_path, *LEASE_A, *SECOND_UPLINK)
    assert [s.tunnel_uplink(name) for name in ("teredo", "teredo2", "teredo3")] == [A, STANDBY, A]
    assert [s.follows_active(name) for name in ("teredo", "teredo2", "teredo3")] == [True, False, True]
    feed(s, r.link(ETH1, "eth1", carrier=False))
    assert s.tunnel_uplink("teredo2") is None and s.uplink_of("eth1") is None and s.uplink_of("eth0") == A


def test_start_up_staleness_is_judged_against_each_tunnels_own_uplink(tmp_path: Path) -> None:
    """The standby qualified (stamp 300) before the primary's lease (500), after its own (200):
    healthy; only the primary's tunnel predates its uplink, and only that is a missed move."""
    eth1_lease = (r.address(ETH1, "10.2.0.100/24", created=200), *SECOND_UPLINK[2:])
    s = bound_state(
        tmp_path,
        r.address(ETH, "10.1.0.100/24", created=500),
        *LEASE_A[1:],
        SECOND_UPLINK[0],
        *eth1_lease,
        r.address(TEREDO, f"{TEREDO_ADDRESS}/128", created=100),
        r.address(TEREDO2, "2001:0:c633:6401::2/128", created=300),
    )
    assert s.tunnels_older_than_uplink() == ["teredo"]
    assert uplink_changes(s.resume(None, 1.0)) == [(None, A)]  # type: ignore[arg-type]
    s = bound_state(
        tmp_path,
        r.address(ETH, "10.1.0.100/24", created=100),
        *LEASE_A[1:],
        SECOND_UPLINK[0],
        r.address(ETH1, "10.2.0.100/24", created=500),
        *SECOND_UPLINK[2:],
        r.address(TEREDO, f"{TEREDO_ADDRESS}/128", created=300),
        r.address(TEREDO2, "2001:0:c633:6401::2/128", created=300),
    )
    assert s.tunnels_older_than_uplink() == ["teredo2"]
    assert s.resume(None, 1.0) == []  # the standby's staleness is its plugin's, not a move
