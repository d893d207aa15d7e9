"""The routing plugin's pure parts: profiles, table names, end states, the shipped client hook."""

from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator_routing.endstate import EndState, Step, end_state
from orchestrator_routing.hook import BadInput, _step
from orchestrator_routing.kernel import Current, plan
from orchestrator_routing.profile import Profile, from_section, resolve_table, rt_tables
from orchestrator_testkit.configs import check_config

USER = Profile("teredo", None, 32765, 1029, 1400, 128, False)
UPSTREAM = Profile("teredo", 100, 32765, 1029, "tunnel", 32, True)
A, LL = "2001:0:c633:6401::1", "fe80::ffff:ffff:ffff"


def test_up_for_the_user_and_the_upstream_variant() -> None:
    step = Step("up", "teredo", A, LL, 1280)
    assert end_state(USER, step) == EndState(
        True, 1400, frozenset({(A, 128), (LL, 64)}), frozenset({("::", 0, 1029)})
    )
    assert end_state(UPSTREAM, step) == EndState(
        True,
        1280,
        frozenset({(A, 32), (LL, 64)}),
        frozenset({("::", 0, 1029)}),
        frozenset({("::", 0, 1024)}),
        frozenset({(A, 128)}),
    )


def test_a_table_without_source_rule_is_only_flushed() -> None:
    profile = Profile("t", 100, 32765, 1029, 1400, 128, False)
    state = end_state(profile, Step("up", "teredo", A, LL, 1280))
    assert state.table_routes == frozenset() and state.rules == frozenset()


def test_down_flushes_and_destroy_leaves_to_the_kernel_what_goes_with_the_link() -> None:
    assert end_state(UPSTREAM, Step("down", "teredo")) == EndState(False, None)
    # No address, route or link state: only the rules (empty: none wanted) outlive the link.
    assert end_state(UPSTREAM, Step("destroy", "teredo")) == EndState(
        None, None, addresses=None, routes=None, table_routes=None
    )


def test_table_names_come_from_the_rt_tables_files(tmp_path: Path) -> None:
    (tmp_path / "rt_tables").write_text("255\tlocal\n254 main # the main one\n# 100 commented\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "teredo.conf").write_text("100 teredo\n")
    (tmp_path / "d" / "ignored.txt").write_text("101 ignored\n")
    names = rt_tables((str(tmp_path / "rt_tables"),), (str(tmp_path / "d"),))
    assert names == {"local": 255, "main": 254, "teredo": 100}
    assert resolve_table("teredo", names) == 100
    assert (
        resolve_table("42", names) == 42
        and resolve_table(7, names) == 7
        and resolve_table(None, names) is None
    )
    with pytest.raises(KeyError):
        resolve_table("nosuch", names)


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ('table = "no-such-table"', "table: 'no-such-table' is neither a number nor a name"),
        ("table = 254", "table: 254 is the kernel's main table, which a profile would flush"),
        ('table = "local"', "table: 'local' is the kernel's local table"),
        ("table = 0", "table: expected a table from 1 to 4294967295, got 0"),
        ("table = 4294967296", "table: expected a table from 1 to 4294967295"),
        ("metric = 0", "metric: expected a value >= 1, got 0"),
        ("rule_priority = 32766", "rule_priority: 32766 is the priority of one of the kernel's own rules"),
        ('gateway = "ff02::2"', "gateway: 'ff02::2' cannot be a next hop"),
        ('gateway = "::"', "gateway: '::' cannot be a next hop"),
        ('gateway = "192.88.99.1"', "gateway: expected an IPv6 address literal"),
    ],
)
def test_dangerous_profile_values_are_config_errors(tmp_path: Path, setting: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'[plugins]\nenable = ["routing"]\n[routing.profiles.t]\n{setting}\n')
    result = check_config(path)
    assert result.returncode == 2
    assert f"routing.profiles.t.{problem}" in result.stderr, result.stderr


SHARED = [("table = 100\nmetric = 1030", "table: 100"), ("", "metric: 1029")]


@pytest.mark.parametrize(("second", "problem"), SHARED)
def test_two_profiles_share_neither_a_table_nor_a_metric(tmp_path: Path, second: str, problem: str) -> None:
    path = tmp_path / "shared.toml"
    first = "[routing.profiles.a]\ntable = 100\n"
    path.write_text(f'[plugins]\nenable = ["routing"]\n{first}[routing.profiles.b]\n{second}\n')
    result = check_config(path)
    assert result.returncode == 2
    assert f"routing.profiles.b.{problem} is already routing.profiles.a's" in result.stderr, result.stderr


@pytest.mark.parametrize("address", ["::", "::1", "ff02::1", "fe80::1", "::ffff:192.0.2.1"])
def test_an_address_a_tunnel_cannot_own_is_bad_input(address: str) -> None:
    compiled = {"interfaces": [("lo", "tunnel", "p")], "profiles": {"p": USER.to_plain()}, "prefixes": {}}
    environ = {"STATE": "up", "IFACE": "lo", "ADDRESS": address, "LLADDRESS": LL, "MTU": "1400"}
    with pytest.raises(BadInput, match=r"ADDRESS: .* is not a global unicast address"):
        _step(environ, compiled)


@pytest.mark.parametrize(
    ("prefix", "address", "inside"),
    [
        ("2001::/32", "2001:0:c633:6401::1", True),
        ("2001::/32", "2001:db8::1", False),
        ("2001:db8:8000::/33", "2001:db8:8000::1", True),  # the prefix ends inside a byte
        ("2001:db8:8000::/33", "2001:db8:7fff::1", False),
        ("::/0", "2001:db8::1", True),
    ],
)
def test_an_address_outside_its_tunnels_declared_prefix_is_bad_input(
    prefix: str, address: str, inside: bool
) -> None:
    compiled = {"interfaces": [("lo", "tunnel", "p")], "profiles": {"p": USER.to_plain()},
                "prefixes": {"lo": prefix}}
    environ = {"STATE": "up", "IFACE": "lo", "ADDRESS": address, "LLADDRESS": LL, "MTU": "1400"}
    if inside:
        assert _step(environ, compiled)[0].address == address
    else:
        with pytest.raises(BadInput, match=rf"ADDRESS: '{address}' is not in {prefix}, lo's address prefix"):
            _step(environ, compiled)


RELAY = "::192.88.99.1"


def test_a_gateway_is_kept_as_the_kernel_spells_it_and_carried_to_the_end_state() -> None:
    section = {"rule_priority": 32765, "metric": 1029, "mtu": 1400, "address_prefixlen": 16,
               "source_rule": False, "gateway": "::c058:6301"}
    profile = from_section("6to4", section)
    assert profile.gateway == RELAY
    assert Profile.from_plain(profile.to_plain()).gateway == RELAY  # through the hook's cache
    assert end_state(profile, Step("up", "tun6to4", "2002:c633:6401::1", LL, None)).gateway == RELAY
    assert end_state(USER, Step("up", "teredo", A, LL, 1280)).gateway is None


def current_with(*routes: tuple[str, int, int, str]) -> Current:
    current = Current(index=7, link_up=True, mtu=1400)
    current.addresses = {(A, 128), (LL, 64)}
    current.routes = set(routes)
    return current


def test_a_route_through_another_next_hop_is_replaced_by_the_gateways() -> None:
    profile = Profile("t", None, 32765, 1029, 1400, 128, False, gateway=RELAY)
    end = end_state(profile, Step("up", "teredo", A, LL, 1280))
    direct = current_with(("::", 0, 1029, ""))
    assert [repr(op) for op in plan(direct, end, profile, "teredo")] == [
        "route del default dev teredo table 254 metric 1029",
        f"route add default via {RELAY} onlink dev teredo table 254 metric 1029",
    ]
    assert plan(current_with(("::", 0, 1029, RELAY)), end, profile, "teredo") == []
    assert [repr(op) for op in plan(current_with(("::", 0, 1029, RELAY)), end_state(USER, Step(
        "up", "teredo", A, LL, 1280)), USER, "teredo")] == [
        f"route del default via {RELAY} onlink dev teredo table 254 metric 1029",
        "route add default dev teredo table 254 metric 1029",
    ]



def test_a_followed_profile_leaves_the_addresses_and_the_link_alone() -> None:
    profile = Profile("6to4", None, 32765, 1029, 1480, 128, False, gateway=RELAY, follow_address=True)
    up = end_state(profile, Step("up", "tun6to4", "2002:c633:6401::1"))  # no link-local needed
    assert up == EndState(None, 1480, None, frozenset({("::", 0, 1029)}), gateway=RELAY)
    gone = end_state(profile, Step("destroy", "tun6to4"))
    assert (gone.addresses, gone.link_up, gone.routes) == (None, None, frozenset())
    current = current_with(("::", 0, 1029, RELAY))
    current.link_up, current.mtu = False, 1480  # down by the tunnel's plugin: not the profile's business
    assert plan(current, up, profile, "tun6to4") == []
    assert [repr(op) for op in plan(current, gone, profile, "tun6to4")] == [
        f"route del default via {RELAY} onlink dev tun6to4 table 254 metric 1029"
    ]
