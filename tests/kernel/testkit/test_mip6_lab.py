"""The Mobile IPv6 lab and its stand-ins work: a Binding Update from a Teredo care-of address crosses
the real NAT and the real Teredo relay to the home agent stand-in, and its acknowledgement comes back;
the mobile node stand-in follows UMIP's verdicts (hand over on a new CoA, ignore a new address while
the CoA stays, fall back to a less preferred native interface when the Teredo address goes).

Assertions are on event order and content, never on elapsed time; the timings are printed
(``pytest -s``) and attached as ``record_property``.  Measured here (kernel 6.18, miredo 1.2.6,
2 cores; min / median / max of 6 runs of the same sequence):

* first registration, miredo qualified beforehand: ``bu-sent`` -> home agent's ``bu-received``
  1.02 / 1.24 / 1.63 ms, ``bu-sent`` -> ``ba-received`` 1.42 / 1.67 / 2.11 ms (the client finds the
  relay first: test ping through the server, bubbles);
* move + SIGHUP: new Teredo address (``ip -ts monitor``, stamped when ``ip`` prints it, so it can
  come after the stand-in saw the address) -> ``bu-sent`` 0.20 / 0.78 / 1.87 ms (UMIP: ~1 ms,
  FIELD-NOTES); ``bu-sent`` -> ``bu-received`` 2.43 / 3.74 / 4.60 ms and -> ``ba-received``
  2.87 / 4.30 / 5.15 ms; new address -> BA 3.73 / 4.54 / 7.02 ms.  The home agent gets the BU
  1.2-2.2 ms after the hook's default route appears (5 more runs), about the first registration's
  figure: miredo seems to hold the packet until its hook, which it runs holding the tunnel lock,
  has finished (the route comes 0-3 ms after the address), then finds the relay again;
* a silent home agent: retransmissions after 1.50 s and 3.00 s (+1.5-3.5 ms of scheduling);
* stand-in start to ``ready``: home agent 0.12 / 0.14 / 0.18 s, mobile node (pyroute2 import,
  bind, dump) 0.25 / 0.29 / 0.36 s; the whole file ~14 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from orchestrator_testkit.mip6_lab import (
    HOME_ADDRESS,
    HOME_AGENT,
    NATIVE_ADDRESS,
    NATIVE_IF,
    TEREDO_ONLY,
    WITH_NATIVE,
    MipLab,
    mip6_requirements_problem,
)
from orchestrator_testkit.mip6_nodes import (
    BA_ADMINISTRATIVELY_PROHIBITED,
    INITIAL_BINDACK_TIMEOUT_FIRST_REG,
    MAX_BINDACK_TIMEOUT,
)
from orchestrator_testkit.mip6_standins import DEFAULT_LIFETIME, MobileNodeStandIn
from orchestrator_testkit.netns import descendants
from orchestrator_testkit.teredo_lab import (
    NATS,
    TEREDO_IF,
    is_teredo,
    leaving_nothing_behind,
    stock_hook_path,
    teredo_client_ipv4,
)
from orchestrator_testkit.timings import report


# --------------------------------------------------------------------------------------------------
# the lab
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def mip_lab() -> Iterator[MipLab]:
    """A MipLab; after it closes, none of its namespaces or processes (both miredos' workers and
    the stand-ins included) may remain, and the host's hook must be untouched."""
    reason = mip6_requirements_problem()
    if reason:
        pytest.skip(reason)
    with leaving_nothing_behind(MipLab()) as lab:
        yield lab


def qualify(lab: MipLab) -> str:
    """miredo with the stock hook in the node; its first Teredo address, routed."""
    lab.start_miredo(stock_hook_path())
    return lab.wait_teredo_routed()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    """The events' kinds in order, without ``ignored`` (verdicts that changed nothing: how many
    there are depends on how many messages the kernel sent, e.g. an address re-announced)."""
    return [e["event"] for e in events if e["event"] != "ignored"]


def registered(mn: MobileNodeStandIn, coa: str, since: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait until ``coa`` was selected and its BU acknowledged; (bu-sent, ba-received)."""
    selected = mn.wait_event("coa-selected", since=since, address=coa)
    ba = mn.wait_event("ba-received", since=since, coa=coa, matched=True)
    bu = next(e for e in mn.events("bu-sent", since=since) if e["seq"] == ba["seq"])
    events = mn.events(since=since)
    assert events.index(selected) < events.index(bu) < events.index(ba), kinds(events)
    return bu, ba


@pytest.mark.netns
def test_lab_paths(mip_lab: MipLab) -> None:
    """Node -> home agent through Teredo (test ping via the server, answer via the relay), again
    after a move and SIGHUP, and through the native interface once there is one."""
    lab = mip_lab
    comms = {Path(f"/proc/{p}/comm").read_text().strip() for p in descendants(lab.relay.pid)} \
        if lab.relay is not None else set()
    assert "miredo-privproc" not in comms, "a relay runs no hook"
    first = qualify(lab)
    assert lab.ping6(), "first echo through the server and the relay"
    lab.move_to("nb")
    lab.sighup_miredo()
    second = lab.wait_teredo_routed(exclude={first})
    assert teredo_client_ipv4(second) == NATS["nb"].wan
    assert lab.ping6(), "echo from the new Teredo address"
    lab.add_native()
    assert lab.node.addresses(NATIVE_IF, 6) == [f"{NATIVE_ADDRESS}/64"]
    assert lab.ping6(iface=NATIVE_IF), "echo over native IPv6"
    assert lab.ping6(), "Teredo still works beside native"


@pytest.mark.netns
def test_bu_from_teredo_coa_is_acknowledged(mip_lab: MipLab) -> None:
    lab = mip_lab
    coa = qualify(lab)
    ha = lab.start_home_agent(status=0)
    mn = lab.start_mobile_node(TEREDO_ONLY)
    bu, ba = registered(mn, coa)
    assert bu["interface"] == TEREDO_IF and bu["via"] == "packet" and bu["attempt"] == 0
    assert bu["timeout"] == INITIAL_BINDACK_TIMEOUT_FIRST_REG
    got = ha.wait_event("bu-received", seq=bu["seq"])
    assert got["src"] == coa and is_teredo(got["src"]) and teredo_client_ipv4(got["src"]) == NATS["na"].wan
    assert (got["dst"], got["hoa"], got["flags"], got["lifetime"], got["checksum_ok"]) == \
        (HOME_AGENT, HOME_ADDRESS, "AH", DEFAULT_LIFETIME, True)
    sent = ha.wait_event("ba-sent", seq=bu["seq"])
    assert (sent["dst"], sent["hoa"], sent["status"]) == (coa, HOME_ADDRESS, 0)
    assert (ba["status"], ba["src"], ba["hoa"], ba["lifetime"], ba["checksum_ok"]) == \
        (0, HOME_AGENT, HOME_ADDRESS, DEFAULT_LIFETIME, True)
    assert ba["interface"] == TEREDO_IF
    assert kinds(ha.events()) == ["ready", "bu-received", "ba-sent"]


@pytest.mark.netns
def test_move_and_sighup_give_a_new_bu(mip_lab: MipLab, record_property: Callable[[str, Any], None]) -> None:
    lab = mip_lab
    old = qualify(lab)
    ha = lab.start_home_agent(status=0)
    mn = lab.start_mobile_node(TEREDO_ONLY)
    registered(mn, old)
    monitor = lab.monitor(objects=("address",))
    m, h = mn.mark(), ha.mark()
    lab.move_to("nb")
    lab.sighup_miredo()
    new = lab.wait_teredo_address(exclude={old})
    assert teredo_client_ipv4(new) == NATS["nb"].wan
    bu, ba = registered(mn, new, since=m)
    got = ha.wait_event("bu-received", since=h, src=new)
    assert got["seq"] == bu["seq"] and ha.wait_event("ba-sent", since=h, seq=bu["seq"])["dst"] == new
    events = mn.events(since=m)
    assert kinds(events)[:4] == ["coa-lost", "coa-selected", "bu-sent", "ba-received"], kinds(events)
    assert events[0]["previous"] == old and events[1]["address"] == new
    assert all(e["coa"] == new for e in events if e["event"] == "bu-sent"), "nothing from the dead CoA"
    assert [e["src"] for e in ha.events("bu-received", since=h)] == [new]

    appeared = monitor.wait_for(lambda evs: any(new in e.text and not e.deleted and "tentative" not in e.text
                                                for e in evs), 5, f"{new} in ip monitor")
    t_addr = next(e.time for e in appeared if new in e.text and not e.deleted and "tentative" not in e.text)
    report(record_property, "new_teredo_address_to_bu_sent_s", bu["time"] - t_addr)
    report(record_property, "bu_sent_to_ha_bu_received_s", got["time"] - bu["time"])
    report(record_property, "bu_sent_to_ba_received_s", ba["time"] - bu["time"])
    report(record_property, "new_teredo_address_to_ba_received_s", ba["time"] - t_addr)


@pytest.mark.netns
def test_rejecting_home_agent(mip_lab: MipLab) -> None:
    lab = mip_lab
    coa = qualify(lab)
    ha = lab.start_home_agent(status=BA_ADMINISTRATIVELY_PROHIBITED)
    mn = lab.start_mobile_node(TEREDO_ONLY)
    ba = mn.wait_event("ba-received", matched=True)
    assert (ba["status"], ba["coa"], ba["lifetime"]) == (BA_ADMINISTRATIVELY_PROHIBITED, coa, 0)
    bu = ha.wait_event("bu-received", seq=ba["seq"])
    assert bu["src"] == coa
    assert ha.wait_event("ba-sent", seq=ba["seq"])["status"] == BA_ADMINISTRATIVELY_PROHIBITED
    assert kinds(mn.events())[:4] == ["ready", "coa-selected", "bu-sent", "ba-received"]


@pytest.mark.netns
def test_silent_home_agent_gets_retransmissions(mip_lab: MipLab,
                                                record_property: Callable[[str, Any], None]) -> None:
    """RFC 6275 backoff: 1.5 s, then doubling (to 32 s), each retransmission a new sequence number
    from the same CoA; the home agent sees them all and answers none."""
    lab = mip_lab
    coa = qualify(lab)
    ha = lab.start_home_agent(status=None)
    mn = lab.start_mobile_node(TEREDO_ONLY)
    third = mn.wait_event("bu-sent", attempt=2, timeout=INITIAL_BINDACK_TIMEOUT_FIRST_REG * 3 + 5)
    sent = mn.events("bu-sent")[:3]
    assert [e["attempt"] for e in sent] == [0, 1, 2] and sent[2] == third
    assert [e["timeout"] for e in sent] == [INITIAL_BINDACK_TIMEOUT_FIRST_REG * k for k in (1, 2, 4)]
    assert all(e["timeout"] <= MAX_BINDACK_TIMEOUT for e in sent)
    assert [e["seq"] for e in sent] == [(sent[0]["seq"] + k) & 0xFFFF for k in range(3)]
    assert {e["coa"] for e in sent} == {coa}
    ha.wait_event("bu-received", seq=third["seq"])
    got = ha.events("bu-received")
    assert [e["seq"] for e in got[:3]] == [e["seq"] for e in sent] and {e["src"] for e in got} == {coa}
    assert "ba-sent" not in kinds(ha.events()) and not mn.events("ba-received")
    for k in (1, 2):
        report(record_property, f"retransmission_{k}_after_s", sent[k]["time"] - sent[k - 1]["time"])


@pytest.mark.netns
def test_fall_back_to_native_when_teredo_address_is_deleted(mip_lab: MipLab) -> None:
    """UMIP's "ignore": a less preferred native interface, and a second address on ``teredo``,
    move nothing while the Teredo CoA stays; deleting the CoA by value moves the node to the native
    CoA at once (no ``coa-lost`` in between)."""
    lab = mip_lab
    coa = qualify(lab)
    ha = lab.start_home_agent(status=0)
    mn = lab.start_mobile_node(WITH_NATIVE)
    registered(mn, coa)

    m = mn.mark()
    lab.add_native()
    mn.wait_for(lambda evs: any(e["event"] == "ignored" and e["trigger"] == {
        "kind": "new-address", "interface": NATIVE_IF, "address": NATIVE_ADDRESS, "tentative": False}
        for e in evs[m:]), 5, f"the MN to ignore {NATIVE_ADDRESS}")
    extra = "2001:0:c633:6401::beef"  # a second global address on the tunnel, beside the CoA
    lab.node.ip("-6", "addr", "add", f"{extra}/128", "dev", TEREDO_IF)
    mn.wait_for(lambda evs: any(e["event"] == "ignored" and e["trigger"] == {
        "kind": "new-address", "interface": TEREDO_IF, "address": extra, "tentative": False}
        for e in evs[m:]), 5, f"the MN to ignore {extra}")
    lab.delete_teredo_address(extra)
    mn.wait_for(lambda evs: any(e["event"] == "ignored" and e["trigger"]["kind"] == "del-address"
                                for e in evs[m:]), 5, f"the MN to ignore the deletion of {extra}")
    assert kinds(mn.events(since=m)) == [], "nothing but ignore verdicts while the CoA stays"
    assert {e["coa"] for e in mn.events("ignored", since=m)} == {coa}

    m = mn.mark()
    lab.delete_teredo_address(coa)
    bu, ba = registered(mn, NATIVE_ADDRESS, since=m)
    events = mn.events(since=m)
    assert kinds(events)[0] == "coa-selected" and "coa-lost" not in kinds(events)
    assert events[0]["interface"] == NATIVE_IF and events[0]["previous"] == coa
    assert events[0]["trigger"] == {"kind": "del-address", "interface": TEREDO_IF, "address": coa,
                                    "tentative": False}
    assert (bu["interface"], bu["via"]) == (NATIVE_IF, "raw")
    assert ha.wait_event("bu-received", seq=bu["seq"])["src"] == NATIVE_ADDRESS
    assert (ba["status"], ba["interface"]) == (0, NATIVE_IF)
