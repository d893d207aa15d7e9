"""The soak's short version: a fixed seed, two rounds of every fault kind on the hot-standby lab,
no invariant violated (orchestrator_testkit.soak; `make soak` is the long one).

``reload-valid`` found a bug on its first runs (`make soak SEED=1 FAULTS=7`): a valid edit of the
configuration made it newer than the generated client hook, which then handed every call to the
full hook; run by miredo-privproc (uid 0, gid nogroup), the full hook refused the standby's miredo
file as not owned by its own user:group, and no tunnel got its address again.
"""

from __future__ import annotations

import pytest
from orchestrator_testkit.mip6_lab import mip6_requirements_problem
from orchestrator_testkit.soak import soak

pytestmark = pytest.mark.netns

SEED = 20
FAULTS = 40  # two rounds of the 20 kinds


def test_a_short_soak_violates_no_invariant() -> None:
    problem = mip6_requirements_problem()
    if problem:
        pytest.skip(problem)
    report = soak(SEED, FAULTS)
    print(report.text())
    assert len(report.steps) == FAULTS
    assert {s.kind for s in report.steps} >= {"move-eth0", "kill-daemon", "reload-valid", "route-deleted"}
    assert report.violations == [], report.text()
