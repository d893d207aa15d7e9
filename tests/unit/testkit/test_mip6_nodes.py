"""The Mobile IPv6 stand-ins' wire format and rules, without a lab: Binding Updates and
Acknowledgements built and parsed both ways (and against scapy, byte for byte), and the mobile
node's choice of care-of address as UMIP makes it.  tests/kernel/testkit/test_mip6_lab.py runs
them over the real Teredo path.
"""

from __future__ import annotations

import pytest
from orchestrator_testkit.mip6_lab import (
    HOME_ADDRESS,
    HOME_AGENT,
)
from orchestrator_testkit.mip6_nodes import (
    BA_ADMINISTRATIVELY_PROHIBITED,
    Candidate,
    InterfaceConf,
    build_ba,
    build_bu,
    choose_coa,
    parse_ba,
    parse_bu,
)

COA = "2001:0:c633:6401:8c0:62e5:39cc:9bf4"


# --------------------------------------------------------------------------------------------------
# no lab needed: the wire format and UMIP's choice
# --------------------------------------------------------------------------------------------------
def test_binding_update_and_ack_round_trip() -> None:
    bu = build_bu(COA, HOME_AGENT, HOME_ADDRESS, seq=0x1234, lifetime=60)
    assert len(bu) == 80 and bu[6] == 60, "IPv6 then Destination Options"
    parsed = parse_bu(bu)
    assert parsed is not None and parse_ba(bu) is None
    assert (parsed.src, parsed.dst, parsed.hoa, parsed.seq, parsed.flags, parsed.lifetime) == \
        (COA, HOME_AGENT, HOME_ADDRESS, 0x1234, "AH", 60)
    assert parsed.checksum_ok, "MH checksum over the home address as source (RFC 6275 6.1.1)"
    corrupt = bytearray(bu)
    corrupt[-6] ^= 0x01  # the lifetime
    again = parse_bu(bytes(corrupt))
    assert again is not None and not again.checksum_ok

    ba = build_ba(HOME_AGENT, COA, HOME_ADDRESS, BA_ADMINISTRATIVELY_PROHIBITED, seq=0x1234, lifetime=0)
    assert len(ba) == 80 and ba[6] == 43, "IPv6 then a routing header"
    got = parse_ba(ba)
    assert got is not None and parse_bu(ba) is None
    assert (got.src, got.dst, got.hoa, got.status, got.seq, got.lifetime) == \
        (HOME_AGENT, COA, HOME_ADDRESS, 129, 0x1234, 0)
    assert got.checksum_ok, "MH checksum over the home address as final destination"
    assert parse_bu(b"\x60" + bytes(39)) is None and parse_ba(b"") is None


def test_wire_format_matches_scapy() -> None:
    """The stand-ins build by hand; scapy 2.8 (test extra) builds the same bytes and reads the
    same fields: two independent encoders agree on RFC 6275's layout and checksums."""
    s = pytest.importorskip("scapy.layers.inet6")
    for seq, lifetime in ((0, 0), (0x1234, 60), (0xFFFF, 240)):
        bu = (s.IPv6(src=COA, dst=HOME_AGENT, hlim=64)
              / s.IPv6ExtHdrDestOpt(options=[s.HAO(hoa=HOME_ADDRESS)])
              / s.MIP6MH_BU(seq=seq, flags="AH", mhtime=lifetime // 4))
        assert build_bu(COA, HOME_AGENT, HOME_ADDRESS, seq, lifetime) == bytes(bu)
        for status in (0, 129):
            ba = (s.IPv6(src=HOME_AGENT, dst=COA, hlim=64)
                  / s.IPv6ExtHdrRouting(type=2, addresses=[HOME_ADDRESS], segleft=1)
                  / s.MIP6MH_BA(status=status, flags=0, seq=seq, mhtime=lifetime // 4))
            assert build_ba(HOME_AGENT, COA, HOME_ADDRESS, status, seq, lifetime) == bytes(ba)
    seen = s.IPv6(build_bu(COA, HOME_AGENT, HOME_ADDRESS, 7, 60))
    assert seen[s.HAO].hoa == HOME_ADDRESS and seen[s.MIP6MH_BU].seq == 7 and seen[s.MIP6MH_BU].mhtime == 15
    assert seen[s.MIP6MH_BU].flags == "AH"
    seen = s.IPv6(build_ba(HOME_AGENT, COA, HOME_ADDRESS, 129, 7, 60))
    assert seen[s.IPv6ExtHdrRouting].type == 2 and seen[s.IPv6ExtHdrRouting].addresses == [HOME_ADDRESS]
    assert (seen[s.MIP6MH_BA].status, seen[s.MIP6MH_BA].seq) == (129, 7)


def test_umip_choice_of_care_of_address() -> None:
    def cand(name: str, pref: int, coas: tuple[str, ...], tunnel: bool = False,
             router: bool = True) -> Candidate:
        return Candidate(name, pref, tunnel, coas, router)

    teredo = cand("teredo", 3, ("2001::b", "2001::a"), tunnel=True, router=False)
    native = cand("eth6", 5, ("2001:db8:2::10",))
    # lowest preference wins; a tunnel needs no router, other interfaces do
    assert choose_coa([native, teredo], None) == ("teredo", "2001::b"), "newest address first"
    assert choose_coa([cand("eth0", 1, ("2001:db8:9::1",), router=False), native], None) == \
        ("eth6", "2001:db8:2::10")
    # the current CoA stays while it is usable: a newer address beside it changes nothing
    assert choose_coa([teredo, native], ("teredo", "2001::a")) == ("teredo", "2001::a")
    # current CoA gone: the newest on the best interface, else the next interface, else nothing
    assert choose_coa([teredo, native], ("teredo", "2001::c")) == ("teredo", "2001::b")
    assert choose_coa([cand("teredo", 3, (), tunnel=True), native], ("teredo", "2001::a")) == \
        ("eth6", "2001:db8:2::10")
    assert choose_coa([cand("teredo", 3, (), tunnel=True)], ("teredo", "2001::a")) is None
    # a more preferred interface with a CoA takes over; a tie keeps the current interface
    assert choose_coa([teredo, cand("wlan0", 2, ("2001:db8:7::1",))], ("teredo", "2001::a")) == \
        ("wlan0", "2001:db8:7::1")
    assert choose_coa([cand("a", 2, ("2001:db8:7::1",)), cand("b", 2, ("2001:db8:8::1",))],
                      ("b", "2001:db8:8::1")) == ("b", "2001:db8:8::1")
    assert InterfaceConf.parse("teredo:3:tunnel") == InterfaceConf("teredo", 3, True)
    assert InterfaceConf.parse("eth0:1") == InterfaceConf("eth0", 1, False)
    with pytest.raises(ValueError):
        InterfaceConf.parse("eth0:1:tunnle")
