"""Runtime dependencies, honestly: what pyroute2 would cost the daemon, and what it would buy.

pyroute2 is not a runtime dependency (it is the tests' independent encoder).  This prints the
figures behind that choice, side by side:

* import cost: fresh ``python -I`` processes importing nothing, the daemon, pyroute2, and both:
  wall time, in-process import time and peak RSS (VmHWM), medians;
* decode throughput: the same rtnetlink notifications, recorded from real kernel changes in a private
  namespace, turned into the engine's events by the in-house header-first decoder and by pyroute2's
  rtnl marshal (parse, filtered like the engine, reading the fields the engine uses);
* whether pyroute2 0.9.7 speaks NETLINK_XFRM at all (the mipv6 plugin decodes XFRM itself).

Run as root: `make bench` or `.venv/bin/python bench/dependencies.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import summary, table
from orchestrator_testkit.lab import Lab

IMPORT_RUNS = 15
DECODE_ROUNDS = 7
ROUND_MIN_S = 0.2  # a round repeats the batch until it has run this long
OTHER_TABLE_ROUTES = 1000  # added then deleted: 2 messages each, in tables nobody watches
MAIN_TABLE_ROUTES = 200  # added then deleted, in the main table
ADDRESSES = 100  # added then deleted (each also makes local-table routes)
LINK_FLAPS = 20
RCVBUF = 64 << 20
SENTINEL = "203.0.113.254"  # the batch's last change

VARIANTS = {
    "bare interpreter": "pass",
    "orchestrator.daemon": "import orchestrator.daemon",
    "pyroute2": "import pyroute2",
    "pyroute2 marshal only": "import pyroute2.netlink.rtnl.marshal",
    "daemon + pyroute2": "import orchestrator.daemon\nimport pyroute2",
}

CHILD = """\
import time
started = time.perf_counter()
{code}
elapsed = time.perf_counter() - started
import json, sys
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]
print(json.dumps({{"import_s": elapsed, "hwm_kib": int(hwm), "modules": len(sys.modules)}}))
"""


# --- import cost ---------------------------------------------------------------------------------


def one_import(code: str) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHILD.format(code=code)], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - started
    figures: dict[str, float] = json.loads(done.stdout)
    figures["wall_s"] = wall
    return figures


def import_costs() -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {
        name: {"wall_s": [], "import_s": [], "hwm_kib": [], "modules": []} for name in VARIANTS
    }
    names = list(VARIANTS)
    for name in names:  # warm-up: byte-code caches written, page cache filled
        one_import(VARIANTS[name])
    for run in range(IMPORT_RUNS):
        # interleaved, starting at a different variant each run, so noise lands on every column
        for name in names[run % len(names) :] + names[: run % len(names)]:
            for key, value in one_import(VARIANTS[name]).items():
                results[name][key].append(value)
    return results


def import_table(results: dict[str, dict[str, list[float]]]) -> None:
    med = {name: {key: statistics.median(v) for key, v in figs.items()} for name, figs in results.items()}
    daemon, both = med["orchestrator.daemon"], med["daemon + pyroute2"]

    def added(key: str, text: Callable[[float], str]) -> str:
        return f"+{text(both[key] - daemon[key])} ({both[key] / daemon[key]:.2f}x)"

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f} MiB"

    rows: list[tuple[str, ...]] = [("figure (median)", *VARIANTS, "pyroute2 adds to the daemon")]
    rows.append(("process wall time", *(ms(med[n]["wall_s"]) for n in VARIANTS), added("wall_s", ms)))
    rows.append(("import time in the child", *(ms(med[n]["import_s"]) for n in VARIANTS),
                 added("import_s", ms)))
    rows.append(("peak RSS (VmHWM)", *(mib(med[n]["hwm_kib"]) for n in VARIANTS), added("hwm_kib", mib)))
    rows.append(("modules loaded", *(f"{med[n]['modules']:.0f}" for n in VARIANTS),
                 f"+{both['modules'] - daemon['modules']:.0f}"))
    wall_p95 = {n: summary(results[n]["wall_s"])["p95"] for n in VARIANTS}
    rows.append(("process wall time p95", *(ms(wall_p95[n]) for n in VARIANTS), ""))
    table(f"Import cost: fresh `python -I` processes, {IMPORT_RUNS} runs each (interleaved)", rows)


# --- recording real notifications ----------------------------------------------------------------


def change_batch(directory: Path) -> Path:
    """`ip -batch` lines: link flaps, addresses, main-table routes, and a storm in other tables."""
    lines = [
        "link add bd-a type veth peer name bd-b",
        "link set lo up",
        "link set bd-a up",
        "link set bd-b up",
        "address add 192.0.2.1/24 dev bd-a",
    ]
    for i in range(ADDRESSES):
        lines.append(f"address add 192.0.2.{100 + i}/32 dev bd-a")
    for i in range(MAIN_TABLE_ROUTES):
        lines.append(f"route add 198.51.100.{i % 250}/32 via 192.0.2.2 metric {10 + i // 250}")
    for i in range(OTHER_TABLE_ROUTES):
        lines.append(f"route add 203.0.113.{i % 250}/32 via 192.0.2.2 dev bd-a table {100 + i // 250}")
        if i % 50 == 49 and i // 50 < LINK_FLAPS:
            lines.append("link set bd-b down")
            lines.append("link set bd-b up")
    for i in range(OTHER_TABLE_ROUTES):
        lines.append(f"route del 203.0.113.{i % 250}/32 via 192.0.2.2 dev bd-a table {100 + i // 250}")
    for i in range(MAIN_TABLE_ROUTES):
        lines.append(f"route del 198.51.100.{i % 250}/32 via 192.0.2.2 metric {10 + i // 250}")
    for i in range(ADDRESSES):
        lines.append(f"address del 192.0.2.{100 + i}/32 dev bd-a")
    lines.append(f"address add {SENTINEL}/32 dev lo")
    path = directory / "changes.batch"
    path.write_text("\n".join(lines) + "\n")
    return path


def record(batch: Path, out: Path) -> None:
    """In the namespace: bind like the daemon, make the changes, keep every datagram up to the
    batch's last change (``SENTINEL``): once it is read, so is everything before it."""
    from orchestrator.events import AddressEvent
    from orchestrator.netlink import queries, wire
    from orchestrator.netlink.decode import RawDecoder

    decoder = RawDecoder(set())

    def has_sentinel(data: bytes) -> bool:
        view = memoryview(data)
        return any(
            isinstance(event := decoder.decode(view, kind, offset, length), AddressEvent)
            and event.address == SENTINEL
            for kind, offset, length in wire.messages(view, len(data))
        )

    sock = queries.open_socket(wire.WATCHED_GROUPS, RCVBUF)
    try:
        subprocess.run(["ip", "-batch", str(batch)], check=True)
        sock.settimeout(30)
        datagrams = [sock.recv(1 << 16)]
        while not has_sentinel(datagrams[-1]):
            datagrams.append(sock.recv(1 << 16))
    finally:
        sock.close()
    out.write_bytes(b"".join(struct.pack("=I", len(d)) + d for d in datagrams))


def recorded() -> list[bytes]:
    """What the daemon's socket receives for the batch, recorded in a private namespace of a lab."""
    with Lab() as lab:
        batch, out = change_batch(lab.tmp), lab.tmp / "datagrams.bin"
        lab.namespace("deps").run(sys.executable, __file__, "--record", str(batch), str(out), timeout=120)
        raw = out.read_bytes()
    datagrams, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("=I", raw, offset)
        datagrams.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return datagrams

def ours(datagrams: list[bytes], tables: set[int]) -> int:
    """What NetlinkSource._readable does with each datagram, minus the socket."""
    from orchestrator.netlink import decode as decoding
    from orchestrator.netlink import wire

    decode, messages = decoding.RawDecoder(tables).decode, wire.messages
    events = []
    for data in datagrams:
        view = memoryview(data)
        for kind, offset, length in messages(view, len(data)):
            event = decode(view, kind, offset, length)
            if event is not None:
                events.append(event)
    return len(events)


def make_pyroute2(tables: set[int]) -> Callable[[list[bytes]], int]:
    """pyroute2's rtnl marshal (what IPRoute parses with), filtered like the engine, reading the
    fields the engine's events carry."""
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl

    from orchestrator import wire

    parse = MarshalRtnl().parse
    routes, addresses = (wire.RTM_NEWROUTE, wire.RTM_DELROUTE), (wire.RTM_NEWADDR, wire.RTM_DELADDR)
    links, rules = (wire.RTM_NEWLINK, wire.RTM_DELLINK), (wire.RTM_NEWRULE, wire.RTM_DELRULE)

    def run(datagrams: list[bytes]) -> int:
        events: list[tuple[object, ...]] = []
        for data in datagrams:
            for msg in parse(data):
                kind = msg["header"]["type"]
                if kind in routes:
                    if msg["type"] != wire.RTN_UNICAST or msg["flags"] & wire.RTM_F_CLONED:
                        continue
                    if msg.get("RTA_TABLE", msg["table"]) not in tables:
                        continue
                    fields: tuple[object, ...] = (msg["family"], msg["dst_len"], msg.get("RTA_DST"),
                                                  msg.get("RTA_GATEWAY"), msg.get("RTA_OIF"),
                                                  msg.get("RTA_PRIORITY"))
                elif kind in addresses:
                    if msg["family"] not in (socket.AF_INET, socket.AF_INET6):
                        continue
                    fields = (msg["index"], msg["prefixlen"], msg["scope"], msg.get("IFA_LOCAL"),
                              msg.get("IFA_ADDRESS"), msg.get("IFA_FLAGS"), msg.get("IFA_CACHEINFO"))
                elif kind in links:
                    if msg["family"] != socket.AF_UNSPEC or msg.get("IFLA_IFNAME") is None:
                        continue
                    fields = (msg["index"], msg["flags"], msg.get("IFLA_ADDRESS"),
                              msg.get("IFLA_CARRIER_CHANGES"))
                elif kind in rules:
                    fields = (msg.get("FRA_PRIORITY"), msg.get("FRA_TABLE"), msg.get("FRA_SRC"))
                else:
                    continue
                events.append(fields)
        return len(events)

    return run


def rates(
    decode: Callable[[list[bytes]], int], datagrams: list[bytes], count: int
) -> tuple[list[float], int]:
    """Messages per second of each round (a round repeats the batch for at least ROUND_MIN_S)."""
    per_round, events = [], 0
    for _ in range(DECODE_ROUNDS):
        passes, started = 0, time.perf_counter()
        while True:
            events = decode(datagrams)
            passes += 1
            elapsed = time.perf_counter() - started
            if elapsed >= ROUND_MIN_S:
                break
        per_round.append(count * passes / elapsed)
    return per_round, events


def message_count(datagrams: list[bytes]) -> int:
    from orchestrator import wire

    return sum(1 for data in datagrams for _ in wire.messages(data, len(data)))


def decode_table(datagrams: list[bytes]) -> None:
    from orchestrator.netlink import decode, wire

    tables = {wire.RT_TABLE_MAIN}
    decoder = decode.RawDecoder(tables)
    relevant = []
    for data in datagrams:
        view = memoryview(data)
        if any(decoder.decode(view, k, o, n) is not None for k, o, n in wire.messages(view, len(data))):
            relevant.append(data)
    pyroute2 = make_pyroute2(tables)
    for title, batch in (
        ("everything the daemon's socket received (most routes in tables nobody watches)", datagrams),
        ("only the messages that become events (every one decoded in full by both)", relevant),
    ):
        count = message_count(batch)
        ours_rates, ours_events, base_rates, base_events = [], 0, [], 0
        for _ in range(2):  # alternate halves so drift on a noisy machine hits both
            r, ours_events = rates(lambda d: ours(d, tables), batch, count)
            ours_rates += r
            r, base_events = rates(pyroute2, batch, count)
            base_rates += r
        ours_med, base_med = statistics.median(ours_rates), statistics.median(base_rates)
        table(
            f"Decode: {count} recorded rtnetlink messages in {len(batch)} datagrams, {title}; "
            f"median of {len(ours_rates)} rounds",
            [
                ("figure", "in-house (header-first RawDecoder)", "pyroute2 MarshalRtnl.parse + fields"),
                ("events produced per pass", str(ours_events), str(base_events)),
                ("messages/s (median)", f"{ours_med:,.0f}", f"{base_med:,.0f}"),
                ("messages/s (slowest round)", f"{min(ours_rates):,.0f}", f"{min(base_rates):,.0f}"),
                ("us per message (median)", f"{1e6 / ours_med:.2f}", f"{1e6 / base_med:.2f}"),
                ("ratio", f"{ours_med / base_med:.1f}x", "1.0x"),
            ],
        )


# --- XFRM -----------------------------------------------------------------------------------------


def xfrm_finding() -> str:
    spec = importlib.util.find_spec("pyroute2")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    from importlib.metadata import version

    uses, messages, interface_attrs = [], [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(errors="replace")
        rel = str(path.relative_to(root.parent))
        if re.search(r"NETLINK_XFRM(?!\s*=)", text):
            uses.append(rel)
        if re.search(r"XFRM_MSG_|xfrm_usersa|xfrm_userpolicy|XFRMA_", text):
            messages.append(rel)
        if "IFLA_XFRM_" in text:
            interface_attrs.append(rel)
    if uses or messages:
        return (f"pyroute2 {version('pyroute2')} has XFRM support: NETLINK_XFRM used in {uses or '-'}, "
                f"XFRM messages in {messages or '-'}")
    return (f"pyroute2 {version('pyroute2')}: no XFRM messages — NETLINK_XFRM is only a constant (no socket, "
            f"no XFRM_MSG_*/xfrm_usersa_info/xfrm_userpolicy_info/XFRMA_* classes); its only xfrm code is "
            f"the IFLA_XFRM_* attributes of xfrm interfaces ({', '.join(interface_attrs) or 'none'}), so "
            f"plugins/mipv6/xfrm.py would stay in-house anyway")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--record":
        record(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    if os.geteuid() != 0:
        print("run as root (a private network namespace records real notifications)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    import_table(import_costs())
    decode_table(recorded())
    print(f"\nXFRM: {xfrm_finding()}")
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
