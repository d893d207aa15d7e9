"""The soak's sequence: replayable from its seed, every kind in every round."""

from __future__ import annotations

from orchestrator_testkit.soak import Violation, schedule
from orchestrator_testkit.soak_faults import fault_kinds

KINDS = fault_kinds(1000)


def test_a_seed_gives_the_same_sequence_and_a_prefix_replays_a_step() -> None:
    assert schedule(7, 40, KINDS) == schedule(7, 40, KINDS)
    assert schedule(7, 40, KINDS)[:12] == schedule(7, 12, KINDS)
    assert schedule(7, 40, KINDS) != schedule(8, 40, KINDS)


def test_every_round_has_every_kind_once() -> None:
    assert KINDS
    order = schedule(3, 3 * len(KINDS), KINDS)
    for start in range(0, len(order), len(KINDS)):
        assert sorted(k.name for k in order[start:start + len(KINDS)]) == sorted(k.name for k in KINDS)


def test_a_violation_names_the_command_that_replays_it() -> None:
    violation = Violation(7, 11, "move-eth0", "binding-acknowledged", "no care-of address")
    assert violation.replay == "make soak SEED=7 FAULTS=12"
    assert violation.with_skip(frozenset({"reload-valid"})) == (
        ".venv/bin/python scripts/soak.py --seed 7 --faults 12 --skip reload-valid")
