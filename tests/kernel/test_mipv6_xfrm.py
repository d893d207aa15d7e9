"""The real kernel announces an xfrm policy and its migration, and the decoder reads them as mip6d's
watchers would (the messages of tests/unit/plugins/mipv6/test_xfrm.py, sent by the kernel itself).
"""

from __future__ import annotations

import dataclasses
import json
import struct
import sys

import pytest
from orchestrator_mipv6.xfrm import Migration
from orchestrator_testkit.lab import Lab
from orchestrator_testkit.netns import requirements_problem
from orchestrator_testkit.xfrm_messages import (
    DELPOLICY,
    ESP,
    HA,
    HOA,
    LAYOUTS_MATCH,
    MIGRATE,
    MODE_TUNNEL,
    NEW_COA,
    NEWPOLICY,
    OLD_COA,
    OUT,
    XFRMA_MIGRATE,
    nla,
    policy_id,
    selector,
    user_migrate,
)

if not LAYOUTS_MATCH:
    pytest.skip("the synthesized messages have a 64-bit machine's layouts", allow_module_level=True)


# Runs inside the namespace: subscribe, let `ip xfrm` and a raw MIGRATE request change the kernel,
# print what the decoder saw (one JSON object per signal).
CHILD = """
import dataclasses, json, select, socket, subprocess, sys
from orchestrator_mipv6 import xfrm

steps = json.loads(sys.argv[1])
sock = xfrm.open_socket()
requests = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, xfrm.NETLINK_XFRM)
requests.bind((0, 0))
for step in steps:
    if isinstance(step, list):
        subprocess.run(step, check=True)
    else:
        requests.send(bytes.fromhex(step))
        code = int.from_bytes(requests.recv(65536)[16:20], sys.byteorder, signed=True)
        assert code == 0, f"MIGRATE request failed: errno {-code}"
while select.select([sock], [], [], 0.5)[0]:
    for signal in xfrm.decode_xfrm(sock.recv(65536)):
        print(json.dumps(dataclasses.asdict(signal)))
"""


@pytest.mark.netns
def test_the_kernel_announces_a_policy_and_its_migration() -> None:
    """mn_ipsec_tnl_update's MIGRATE of a tunnel-mode policy (the kernel rewrites only tunnel-mode
    templates: a transport-mode one holds no addresses)."""
    problem = requirements_problem()
    if problem:
        pytest.skip(problem)
    policy = ["src", f"{HOA}/128", "dst", f"{HA}/128", "dir", "out"]
    request = struct.pack("=IHHII", 0, MIGRATE, 0x1 | 0x4, 1, 0)  # NLM_F_REQUEST | NLM_F_ACK
    request += policy_id(selector(HOA, HA), OUT) + nla(
        XFRMA_MIGRATE, user_migrate(OLD_COA, HA, NEW_COA, HA, MODE_TUNNEL)
    )
    request = struct.pack("=I", len(request)) + request[4:]
    steps = [
        [
            "ip",
            "xfrm",
            "policy",
            "add",
            *policy,
            "priority",
            "5",
            "tmpl",
            "src",
            OLD_COA,
            "dst",
            HA,
            "proto",
            "esp",
            "mode",
            "tunnel",
            "reqid",
            "1",
        ],
        request.hex(),
        ["ip", "xfrm", "policy", "delete", *policy],
    ]
    with Lab() as lab:
        node = lab.namespace("xfrm")
        out = node.run(sys.executable, "-c", CHILD, json.dumps(steps)).stdout
    seen = [json.loads(line) for line in out.splitlines()]
    template = {"daddr": HA, "proto": ESP}
    assert seen == [
        {
            "kind": "policy",
            "message": NEWPOLICY,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": 5,
            "templates": [{"saddr": OLD_COA, **template}],
            "migrations": [],
            "coaddr": None,
        },
        {
            "kind": "migrate",
            "message": MIGRATE,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": None,
            "templates": [],
            "coaddr": None,
            "migrations": [dataclasses.asdict(Migration(OLD_COA, HA, NEW_COA, HA, ESP))],
        },
        {
            "kind": "policy",
            "message": DELPOLICY,
            "src": HOA,
            "dst": HA,
            "proto": 0,
            "direction": OUT,
            "priority": 5,
            "templates": [{"saddr": NEW_COA, **template}],
            "migrations": [],
            "coaddr": None,
        },
    ]
