"""The Teredo lab itself works: real miredo behind real NAT qualifies against a real miredo-server,
and a move plus SIGHUP gives a new Teredo address; the hook's environment is pinned down.

Timings are printed (``pytest -s``) and attached as ``record_property`` (junit XML); the asserted
bounds are deliberately loose (a loaded CI box), the measured values are in the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from orchestrator_testkit.netns import wait_for
from orchestrator_testkit.teredo_lab import (
    NATS,
    SERVER_ADDRESS,
    TeredoLab,
    is_teredo,
    leaving_nothing_behind,
    read_hook_calls,
    stock_hook_path,
    teredo_client_ipv4,
    teredo_requirements_problem,
    teredo_server_ipv4,
    write_env_dump_hook,
)
from orchestrator_testkit.timings import report

# What miredo 1.2.6 passes to its client hook (besides nothing: no PATH, no HOME, cwd "/").
UP_VARS = {"STATE", "OLD_STATE", "IFACE", "IFINDEX", "ADDRESS", "LLADDRESS", "MTU"}
OLD_VARS = {"OLD_ADDRESS", "OLD_LLADDRESS", "OLD_MTU"}
DOWN_VARS = {"STATE", "OLD_STATE", "IFACE", "IFINDEX"} | OLD_VARS


def hook_vars(call: dict[str, str]) -> set[str]:
    """Names of the variables miredo passed (the wrapper's own @-entries left out)."""
    return {k for k in call if not k.startswith("@")}


def need_lab() -> None:
    reason = teredo_requirements_problem()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def teredo_lab() -> Iterator[TeredoLab]:
    """A TeredoLab; after it closes, none of its namespaces or processes (miredo's worker and
    privproc included) may remain, and the host's hook must be untouched."""
    need_lab()
    with leaving_nothing_behind(TeredoLab()) as lab:
        yield lab


# --------------------------------------------------------------------------------------------------
# the lab
# --------------------------------------------------------------------------------------------------
@pytest.mark.netns
def test_stock_hook_qualifies_behind_nat_and_requalifies_after_move(
        teredo_lab: TeredoLab, record_property: Callable[[str, Any], None]) -> None:
    lab = teredo_lab
    assert lab.node.default_route() == NATS["na"].gateway
    assert lab.teredo_ifindex() is None, "no teredo link before miredo starts"

    t0 = time.monotonic()
    proc = lab.start_miredo(stock_hook_path())
    first = lab.wait_teredo_address(timeout=10)
    report(record_property, "miredo_start_to_teredo_address_s", time.monotonic() - t0)
    assert lab.miredo_pid() == proc.pid
    assert is_teredo(first)
    assert teredo_server_ipv4(first) == SERVER_ADDRESS
    assert teredo_client_ipv4(first) == NATS["na"].wan, "the server saw the NAT's outside address"
    # the stock hook: address /32, default route metric 1029 through the tunnel
    assert f"{first}/32" in [f"{a['local']}/{a['prefixlen']}" for link in lab._teredo_link()
                             for a in link["addr_info"]]
    routes = lab.node.ip_json("-6", "route", "show", "default")
    assert any(r.get("dev") == "teredo" and r.get("metric") == 1029 for r in routes), routes
    index_before = lab.teredo_ifindex()

    new_v4 = lab.move_to("nb")
    assert new_v4.startswith("10.2.0.") and lab.node.default_route() == NATS["nb"].gateway
    # miredo does not watch netlink: right after the move the old address is still there
    assert lab.teredo_addresses() == [first]

    t_hup = lab.sighup_miredo()
    second = lab.wait_teredo_address(timeout=10, exclude={first})
    report(record_property, "sighup_after_move_to_new_teredo_address_s", time.monotonic() - t_hup)
    assert second != first and is_teredo(second)
    assert teredo_client_ipv4(second) == NATS["nb"].wan
    assert lab.teredo_addresses() == [second], "the old address must be gone with the old link"
    assert lab.teredo_ifindex() != index_before, "SIGHUP re-creates the teredo link"
    assert lab.miredo_pid() == proc.pid, "the supervisor survives SIGHUP"
    assert not proc.exited()


@pytest.mark.netns
def test_same_address_and_gateway_behind_another_nat(teredo_lab: TeredoLab) -> None:
    """``nc`` serves na's subnet with na's gateway address: the node keeps its lease there (also
    when dhclient asks again), only the gateway's MAC differs, and a re-qualification maps the
    node to nc's outside address."""
    lab = teredo_lab
    lab.start_miredo(stock_hook_path())
    first = lab.wait_teredo_address()
    address = lab.dhcp.address()
    assert address is not None and address.startswith("10.1.0.")
    assert lab.move_behind("nc") == address
    assert lab.attached == "nc" and lab.node.default_route() == NATS["nc"].gateway == NATS["na"].gateway
    assert lab.router_mac("nc") != lab.router_mac("na")
    assert lab.dhcp.restart() == address, "nc's dnsmasq ACKs the address na gave"
    assert lab.teredo_addresses() == [first], "miredo does not notice by itself"
    lab.sighup_miredo()
    second = lab.wait_teredo_address(exclude={first})
    assert teredo_client_ipv4(second) == NATS["nc"].wan != teredo_client_ipv4(first)
    with pytest.raises(ValueError, match="move_to"):
        lab.move_behind("nb")


@pytest.mark.netns
def test_hook_environment(teredo_lab: TeredoLab) -> None:
    """The exact environment miredo gives its hook, for start and for SIGHUP (stock hook behind a
    recording wrapper)."""
    lab = teredo_lab
    dump = lab.tmp / "hook-env.bin"
    hook = write_env_dump_hook(lab.tmp / "env-dump-hook", dump, lab.stock_hook_copy())
    lab.start_miredo(hook)
    first = lab.wait_teredo_address()
    start = read_hook_calls(dump)
    assert [c["STATE"] for c in start] == ["up"]
    up = start[0]
    assert hook_vars(up) == UP_VARS, "first up: no OLD_ADDRESS, no PATH"
    assert up["OLD_STATE"] == "down" and up["IFACE"] == "teredo" and up["ADDRESS"] == first
    assert up["IFINDEX"] == str(lab.teredo_ifindex())
    assert up["LLADDRESS"] in ("fe80::ffff:ffff:ffff", "fe80::8000:5445:5245:444f")
    assert int(up["MTU"]) >= 1280
    assert (up["@cwd"], up["@uid"], up["@argv"]) == ("/", "0", "")

    lab.move_to("nb")
    lab.sighup_miredo()
    second = lab.wait_teredo_address(exclude={first})
    calls = wait_for(lambda: c if len(c := read_hook_calls(dump)) >= 4 else None, 5, "4 hook calls")
    hup = calls[1:]
    print("\nhook calls:")
    for c in calls:
        print("  ", {k: v for k, v in c.items() if not k.startswith("@")})
    assert [c["STATE"] for c in hup] == ["down", "destroy", "up"]
    down, destroy, up2 = hup
    for c in (down, destroy):
        assert hook_vars(c) == DOWN_VARS
        # destroy reports OLD_STATE=up although down ran just before it
        assert c["OLD_STATE"] == "up" and c["OLD_ADDRESS"] == first and c["IFINDEX"] == up["IFINDEX"]
    assert hook_vars(up2) == UP_VARS, "the first up after SIGHUP has no OLD_*"
    assert up2["ADDRESS"] == second and up2["OLD_STATE"] == "down"
    assert up2["IFINDEX"] == str(lab.teredo_ifindex()) != up["IFINDEX"]
    assert float(down["@time"]) <= float(destroy["@time"]) <= float(up2["@time"])


@pytest.mark.netns
def test_private_server_address_is_refused(teredo_lab: TeredoLab) -> None:
    """miredo refuses a private server address at run time (checkconf accepts it) and keeps
    running without a Teredo address: the reason is only in its log."""
    lab = teredo_lab
    proc = lab.start_miredo(stock_hook_path(), "ServerAddress 10.1.0.1")
    wait_for(lambda: "non global IPv4 address" in lab.miredo_log.read_text(), 5,
             "miredo to refuse the private server address")
    assert not proc.exited() and lab.teredo_addresses() == []
