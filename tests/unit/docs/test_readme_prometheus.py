"""The README's Prometheus configuration and alert rules: what ``promtool`` (Debian's prometheus
package, which scripts/install-deps installs) accepts, and the alerts firing when they should."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from orchestrator_testkit import REPO
from orchestrator_testkit.promtool import find_promtool

RULES_TEST = """
rule_files: [orchestrator-rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'orchestrator_uplink_up{instance="n1"}'
        values: '1 0 0 0 0 0 0 0 0'
      - series: 'orchestrator_moves_total{instance="n1", outcome="ok"}'
        values: '0 1 2 3 4 5 6 7 8'
      - series: 'orchestrator_moves_total{instance="n1", outcome="timeout"}'
        values: '0 0 0 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 3m
        alertname: OrchestratorNoUplink
        exp_alerts: []
      - eval_time: 7m
        alertname: OrchestratorNoUplink
        exp_alerts:
          - exp_labels: {severity: warning, instance: n1}
            exp_annotations: {summary: "n1 has had no IPv4 uplink for 5 minutes"}
      - eval_time: 2m
        alertname: OrchestratorHandoverFailing
        exp_alerts: []
      - eval_time: 4m
        alertname: OrchestratorHandoverFailing
        exp_alerts:
          - exp_labels: {severity: warning, instance: n1}
            exp_annotations: {summary: "n1: a handover failed in the last 15 minutes"}
"""


def readme_files(directory: Path) -> list[Path]:
    """The README's metrics section's YAML blocks, each written under the name its first line gives."""
    section = (REPO / "README.md").read_text().split("## Metrics (Prometheus)", 1)[1].split("\n## ", 1)[0]
    written = []
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        path = directory / Path(block.splitlines()[0].lstrip("# ").strip()).name
        path.write_text(block)
        written.append(path)
    return written


def promtool(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_promtool(), *map(str, argv)], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_promtool_accepts_the_scrape_configuration_and_the_rules(tmp_path: Path) -> None:
    assert [path.name for path in readme_files(tmp_path)] == ["prometheus.yml", "orchestrator-rules.yml"]
    for command in (("check", "config", "prometheus.yml"), ("check", "rules", "orchestrator-rules.yml")):
        result = promtool(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    readme_files(tmp_path)
    (tmp_path / "rules-test.yml").write_text(RULES_TEST)
    result = promtool("test", "rules", "rules-test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
