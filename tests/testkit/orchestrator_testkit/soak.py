"""A fault-injection soak of the hot standby: a seeded random sequence of real faults applied to the
two-uplink lab, the invariants checked after each one.

Why: each behaviour has its own test, once and in isolation; in the field faults come one after the
other onto whatever the last one left.  A long seeded run that checks invariants after every fault
finds what single scenarios miss (a leak that grows, a kick that should not be, a state one fault
leaves for the next), and its seed and step replay it.

The lab is :func:`standby_rig.hot_standby`, as tests/kernel/test_standby.py builds it: a
``StandbyLab`` (eth0 behind na / nb / nc, wlan0 behind nw, each behind its NAT; DHCP servers with a
short T1 so renewals happen), the daemon with plugins routing, teredo and mipv6 on the hot-standby
configuration, two real miredo clients (``teredo`` bound to eth0, ``teredo2`` a standby bound to
wlan0) with the project's client hook, the relay, the mobile-node and home-agent stand-ins bound
through teredo.

The sequence: rounds, each a random permutation of every fault kind (:mod:`soak_faults`), so any 20
consecutive faults exercise every kind and a short run covers them all.  The kinds come from
``random.Random(seed)``, the faults' own choices (which router, which breakage) from a second
generator seeded from it, so step N is the same fault with the same seed whatever the timing.
After each fault the run polls every invariant (:mod:`soak_checks`) until they all hold (the heal
time) or the kind's deadline passes; each invariant still false then is a violation (seed, step,
fault, invariant, what it saw).  The run goes on after a violation.

Not yet: the 40 k-message netlink storm with a small buffer and misbehaving plugins (see
:mod:`soak_faults` for the rest).

API
---
``run_soak(rig, seed, faults, grace_ms, progress=None, skip=frozenset()) -> SoakReport``
``soak(seed, faults, grace_ms=GRACE_MS, progress=None, skip=frozenset()) -> SoakReport`` builds the
rig, runs, stops it
``schedule(seed, faults, kinds) -> list[FaultKind]``
``SoakReport``: ``.seed``, ``.steps: list[Step]``, ``.violations``, ``.rss_start_mib``,
``.rss_end_mib``, ``.text() -> str`` (the printed report)
``Violation``: ``.seed``, ``.step``, ``.fault``, ``.invariant``, ``.details``, ``.replay``
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .netns import wait_for
from .soak_checks import RSS_GROWTH_LIMIT_MIB, RSS_LIMIT_MIB, Baseline, baseline, daemon_rss_mib, failing
from .soak_faults import HANDOVER_TIMEOUTS, PLUGIN_TIMEOUT_S, FaultKind, fault_kinds
from .soak_plugin import ENTRY_POINT
from .standby_rig import StandbyRig, hot_standby

GRACE_MS = 1000
#: dnsmasq's T1 in the soak's lab: eth0 and wlan0 renew every few seconds (a renewal fault waits
#: for the next one), and renewals go on under every other fault
RENEW_AFTER_S = 3
#: The soak's daemon reads netlink through the smallest buffer it accepts (64 KiB, doubled by the
#: kernel), so that a burst (the storm fault, and any fault's own) overruns it: the overrun and the
#: re-dump that heals it are part of what is soaked.  A plugin call is bounded at 2 s (the
#: misbehaving plugin's hang holds the uplink lane that long).
SOAK_DAEMON = f"netlink_rcvbuf_mib = 0.0625\nplugin_timeout_s = {PLUGIN_TIMEOUT_S}\n"


@dataclass(frozen=True)
class Violation:
    seed: int
    step: int
    fault: str
    invariant: str
    details: str

    @property
    def replay(self) -> str:
        return f"make soak SEED={self.seed} FAULTS={self.step + 1}"

    def with_skip(self, skip: frozenset[str]) -> str:
        """The replay command of a run that left kinds out (scripts/soak.py --skip)."""
        if not skip:
            return self.replay
        return (f".venv/bin/python scripts/soak.py --seed {self.seed} --faults {self.step + 1} "
                + " ".join(f"--skip {s}" for s in sorted(skip)))


@dataclass
class Step:
    index: int
    kind: str
    details: str
    heal_s: float | None  # None: not healed by the deadline
    violations: list[Violation] = field(default_factory=list)


@dataclass
class SoakReport:
    seed: int
    rss_start_mib: float
    rss_end_mib: float = 0.0
    steps: list[Step] = field(default_factory=list)
    duration_s: float = 0.0
    skipped: frozenset[str] = frozenset()

    @property
    def violations(self) -> list[Violation]:
        return [v for step in self.steps for v in step.violations]

    def text(self) -> str:
        """The report: seed, faults and heal times by kind, RSS, every violation with its replay."""
        skipped = f" (not drawn: {', '.join(sorted(self.skipped))})" if self.skipped else ""
        lines = [f"soak: seed {self.seed}, {len(self.steps)} faults in {self.duration_s:.1f} s{skipped}",
                 f"{'fault':<24}{'count':>6}{'healed':>8}{'median':>10}{'worst':>10}"]
        for kind in sorted({s.kind for s in self.steps}):
            steps = [s for s in self.steps if s.kind == kind]
            heals = [s.heal_s for s in steps if s.heal_s is not None]
            median = f"{statistics.median(heals) * 1000:.0f} ms" if heals else "-"
            worst = f"{max(heals) * 1000:.0f} ms" if heals else "-"
            lines.append(f"{kind:<24}{len(steps):>6}{len(heals):>8}{median:>10}{worst:>10}")
        lines.append(f"daemon RSS: {self.rss_start_mib:.1f} MiB at start, {self.rss_end_mib:.1f} MiB at end "
                     f"(limits {RSS_LIMIT_MIB:g} MiB, +{RSS_GROWTH_LIMIT_MIB:g} MiB over the run)")
        lines.append(f"violations: {len(self.violations)}")
        for v in self.violations:
            lines.append(f"  step {v.step} {v.fault}: {v.invariant}: {v.details}")
            lines.append(f"    replay: {v.with_skip(self.skipped)}")
        return "\n".join(lines)


def schedule(seed: int, faults: int, kinds: tuple[FaultKind, ...]) -> list[FaultKind]:
    """``faults`` kinds: rounds of random permutations of ``kinds`` drawn from ``seed``."""
    rng = random.Random(seed)
    order: list[FaultKind] = []
    while len(order) < faults:
        order += rng.sample(kinds, len(kinds))
    return order[:faults]


def heal(rig: StandbyRig, kind: FaultKind, base: Baseline,
         deadline_s: float) -> tuple[float | None, dict[str, str]]:
    """Poll the invariants until all hold: (seconds it took, {}) or, at the deadline, (None, what is
    still false)."""
    start = time.monotonic()
    last: dict[str, str] = {}

    def healed() -> bool:
        last.clear()
        last.update(failing(rig, base))
        return not last

    try:
        wait_for(healed, deadline_s, f"{kind.name} to heal", interval=0.05)
    except AssertionError:
        return None, dict(last)
    return time.monotonic() - start, {}


def run_step(rig: StandbyRig, seed: int, index: int, kind: FaultKind, rng: random.Random) -> Step:
    """One fault: baseline, inject, heal; every failure recorded, none raised."""
    base = baseline(rig, kind.quiet, kind.kicks)
    violations: list[Violation] = []
    try:
        details = kind.inject(rig, rng)
    except Exception as e:  # the fault could not be done, or was answered wrongly: recorded, go on
        details = "injection failed"
        violations.append(Violation(seed, index, kind.name, "fault-injected", f"{type(e).__name__}: {e}"))
    heal_s, still = heal(rig, kind, base, kind.deadline_s)
    violations += [Violation(seed, index, kind.name, name, problem) for name, problem in still.items()]
    return Step(index, kind.name, details, heal_s, violations)


def run_soak(rig: StandbyRig, seed: int, faults: int, grace_ms: int = GRACE_MS,
             progress: Callable[[Step], None] | None = None,
             skip: frozenset[str] = frozenset()) -> SoakReport:
    """``faults`` faults on a running ``rig`` (configured with ``grace_ms`` and the first of
    HANDOVER_TIMEOUTS), none of the kinds named in ``skip`` (a kind known to break the lab for every
    later step); returns the report."""
    started = time.monotonic()
    every = fault_kinds(grace_ms)
    kinds = tuple(k for k in every if k.name not in skip)
    unknown = skip - {k.name for k in every}
    if unknown:
        raise ValueError(f"no fault kind {sorted(unknown)}")
    rng = random.Random(f"{seed}-choices")
    report = SoakReport(seed, daemon_rss_mib(rig), skipped=skip)
    for index, kind in enumerate(schedule(seed, faults, kinds)):
        step = run_step(rig, seed, index, kind, rng)
        report.steps.append(step)
        if progress is not None:
            progress(step)
    try:
        report.rss_end_mib = daemon_rss_mib(rig)
    except (OSError, ValueError):
        report.rss_end_mib = float("nan")
    growth = report.rss_end_mib - report.rss_start_mib
    if report.steps and not growth <= RSS_GROWTH_LIMIT_MIB:  # NaN (no daemon to measure) fails too
        last = report.steps[-1]
        details = f"{report.rss_start_mib:.1f} -> {report.rss_end_mib:.1f} MiB over the run"
        last.violations.append(Violation(seed, last.index, last.kind, "rss-growth-bounded", details))
    report.duration_s = time.monotonic() - started
    return report


def soak(seed: int, faults: int, grace_ms: int = GRACE_MS,
         progress: Callable[[Step], None] | None = None, skip: frozenset[str] = frozenset()) -> SoakReport:
    """The whole soak: the rig built, ``faults`` faults, the rig taken down (everything the lab
    started is stopped and its namespaces deleted, also on failure)."""
    first = HANDOVER_TIMEOUTS[0]
    with hot_standby(grace=grace_ms, handover_timeout_s=first, renew_after=RENEW_AFTER_S,
                     daemon_settings=SOAK_DAEMON, plugins={"misbehave": ENTRY_POINT}) as rig:
        return run_soak(rig, seed, faults, grace_ms, progress, skip)


def progress_line(step: Step) -> str:
    """One line per step, for a run that is watched."""
    heal = f"healed in {step.heal_s * 1000:.0f} ms" if step.heal_s is not None else "NOT HEALED"
    broken = f"; violated: {', '.join(v.invariant for v in step.violations)}" if step.violations else ""
    return f"[{step.index:>4}] {step.kind:<24} {heal}: {step.details}{broken}"


__all__ = [
    "GRACE_MS",
    "RENEW_AFTER_S",
    "SoakReport",
    "Step",
    "Violation",
    "progress_line",
    "run_soak",
    "schedule",
    "soak",
]
