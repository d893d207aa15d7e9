"""The soak's short version: a fixed seed, a few rounds of every fault kind on the hot-standby lab,
no invariant violated (orchestrator_testkit.soak; `make soak` is the long one).

Known failing, left out here: ``reload-valid``.  A valid edit of the configuration makes it newer
than the generated client hook, which then hands every call to the full hook; run by
miredo-privproc (uid 0, gid nogroup) the full hook validates the whole configuration, the teredo
plugin's check that the standby's miredo file belongs to the running user:group fails, and no
tunnel gets its address at its next re-qualification, so every later step fails too
(`make soak SEED=1 FAULTS=7` shows it).  Drop it from ``KNOWN_FAILING`` once that is fixed.
"""

from __future__ import annotations

import pytest
from orchestrator_testkit.mip6_lab import mip6_requirements_problem
from orchestrator_testkit.soak import soak

pytestmark = pytest.mark.netns

SEED = 20
FAULTS = 24
KNOWN_FAILING = frozenset({"reload-valid"})


def test_a_short_soak_violates_no_invariant() -> None:
    problem = mip6_requirements_problem()
    if problem:
        pytest.skip(problem)
    report = soak(SEED, FAULTS, skip=KNOWN_FAILING)
    print(report.text())
    assert len(report.steps) == FAULTS
    assert {s.kind for s in report.steps} >= {"move-eth0", "kill-daemon", "reload-broken", "route-deleted"}
    assert report.violations == [], report.text()
