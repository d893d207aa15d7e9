"""The metrics of a daemon that watched real DHCP moves: scraped over HTTP from inside the node's
namespace and read back from the textfile, both parsed by prometheus-client's own parser; a port in
use is survived and retried; a real Prometheus scrapes it; ``status --watch`` redraws."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from orchestrator_testkit.configs import metrics_section, write
from orchestrator_testkit.netns import TrackedProcess, wait_for
from orchestrator_testkit.orchestrator_processes import ORCHESTRATOR, DaemonProcess
from orchestrator_testkit.teredo_lab import TeredoLab, teredo_requirements_problem
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.cli import CLEAR_SCREEN

pytestmark = pytest.mark.netns

PORT = 9477
OK_MOVES = ("orchestrator_moves_total", (("outcome", "ok"),))
HOLD_PORT = f"""
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", {PORT}))
s.listen()
time.sleep(3600)
"""


@dataclass
class Node:
    lab: TeredoLab
    daemon: DaemonProcess
    config: Path
    textfile: Path
    holder: TrackedProcess | None  # what held PORT when the daemon started, if anything

    def scrape(self) -> str:
        """GET /metrics from inside the node's namespace (the listener is on its loopback)."""
        code = (f"import urllib.request,sys; r=urllib.request.urlopen('http://127.0.0.1:{PORT}/metrics', "
                "timeout=5); sys.stdout.write(r.read().decode())")
        return str(self.lab.node.run("python3", "-c", code).stdout)

    def free_port(self) -> None:
        """Stop the process that held PORT when the daemon started."""
        assert self.holder is not None, "metrics_node(port_taken=True) starts one"
        self.lab.stop_process(self.holder)

    def move_twice(self) -> None:
        """To nb and back to na; returns once the daemon has both moves ok."""
        for target in ("nb", "na"):
            self.lab.move_to(target)
        wait_for(lambda: ok_moves(self.daemon) == 2, 15, "two moves ok")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metrics_config(directory: Path) -> tuple[Path, Path]:
    textfile = directory / "textfile" / "orchestrator.prom"
    textfile.parent.mkdir()
    return write(directory, extra="\n" + metrics_section(f"127.0.0.1:{PORT}", textfile)), textfile


@contextlib.contextmanager
def metrics_node(port_taken: bool = False) -> Iterator[Node]:
    """A TeredoLab whose node runs the daemon with the metrics listener and textfile; the daemon
    must stop cleanly at the end.  ``port_taken``: another process listens on PORT first."""
    problem = teredo_requirements_problem()
    if problem:
        pytest.skip(problem)
    with TeredoLab() as lab:
        config, textfile = metrics_config(lab.tmp)
        holder = None
        if port_taken:
            holder = lab.node.spawn(["python3", "-c", HOLD_PORT], log=lab.tmp / "holder.log")
            wait_for(lambda: f":{PORT}" in lab.node.run("ss", "-H", "-tln").stdout, 10, "the port taken")
        daemon = DaemonProcess(lab.node, config, config.parent / "control.sock")
        yield Node(lab, daemon, config, textfile, holder)
        assert daemon.stop() == 0


@pytest.fixture
def node() -> Iterator[Node]:
    with metrics_node() as node:
        yield node


def ok_moves(daemon: DaemonProcess) -> int:
    return sum(move["outcome"] == "ok" for move in daemon.status()["moves"])


def test_two_moves_are_counted_and_timed_in_both_expositions(node: Node) -> None:
    torn: list[str] = []
    reading = threading.Event()
    reader = threading.Thread(target=read_while, args=(node.textfile, reading, torn))
    reading.set()
    reader.start()
    try:
        node.move_twice()
        wait_for(lambda: samples(node.textfile.read_text()).get(OK_MOVES) == 2, 5, "the textfile: both")
    finally:
        reading.clear()
        reader.join()
    assert torn == [], "the textfile was seen half-written"
    scraped = samples(node.scrape())
    assert scraped[OK_MOVES] == 2
    assert scraped[("orchestrator_move_phase_seconds_count", (("phase", "detected"),))] == 2
    assert scraped[("orchestrator_move_phase_seconds_count", (("phase", "finished"),))] == 2
    active = (("address", node.lab.dhcp.address()), ("interface", "eth0"), ("role", "active"))
    assert scraped[("orchestrator_uplink_info", active)] == 1
    assert scraped[("orchestrator_netlink_events_total", ())] > 0
    assert node.textfile.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in node.textfile.parent.iterdir()] == ["orchestrator.prom"], "no temporary left"


def read_while(path: Path, reading: threading.Event, torn: list[str]) -> None:
    """Parse the textfile over and over while ``reading`` is set; keep any text that does not parse
    or lacks the last family the daemon writes (a half-written file)."""
    while reading.is_set():
        time.sleep(0.001)  # as often as a scraper would, without taking a core from the moves
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        try:
            names = [family.name for family in text_string_to_metric_families(text)]
        except ValueError:
            torn.append(text)
            continue
        if "orchestrator_tunnel_up" not in names:
            torn.append(text)


def test_other_paths_get_no_metrics(node: Node) -> None:
    code = (f"import urllib.request,urllib.error\nfor path in ('/', '/metricsx'):\n"
            f"    try: urllib.request.urlopen('http://127.0.0.1:{PORT}'+path, timeout=5)\n"
            "    except urllib.error.HTTPError as e: print(e.code)")
    assert node.lab.node.run("python3", "-c", code).stdout.split() == ["404", "404"]


def test_a_port_in_use_is_said_retried_and_costs_no_move() -> None:
    with metrics_node(port_taken=True) as node:
        lab, daemon = node.lab, node.daemon
        problem_text = daemon.status()["metrics"]["listen_problem"]
        assert problem_text is not None and "Address already in use" in problem_text
        lab.move_to("nb")
        wait_for(lambda: ok_moves(daemon) == 1, 15, "the move ok")
        node.free_port()
        wait_for(lambda: daemon.status()["metrics"]["listen_problem"] is None, 30, "the listener to bind")
        assert samples(node.scrape())[OK_MOVES] == 1


PROMETHEUS_CONFIG = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: orchestrator
    static_configs:
      - targets: ["127.0.0.1:{PORT}"]
"""


def test_a_real_prometheus_scraping_the_node_sees_both_moves(node: Node) -> None:
    """Debian's prometheus, private to the node's namespace (its own config, storage and port on
    the namespace's loopback), scrapes every second; its HTTP API answers the queries."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus not found: scripts/install-deps installs it (Debian package prometheus)")
    config = node.lab.tmp / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG)
    storage = node.lab.tmp / "tsdb"
    node.lab.node.spawn([prometheus, f"--config.file={config}", f"--storage.tsdb.path={storage}",
                         "--web.listen-address=127.0.0.1:9090"], log=node.lab.tmp / "prometheus.log")
    node.move_twice()
    wait_for(lambda: query(node, 'orchestrator_moves_total{outcome="ok"}') == 2, 30, "prometheus: 2 moves ok")
    assert query(node, 'orchestrator_move_phase_seconds_count{phase="finished"}') == 2
    assert query(node, "orchestrator_uplink_up") == 1


def query(node: Node, expression: str) -> float | None:
    """One instant query of the node's Prometheus; None while it has no sample (or is starting)."""
    code = ("import json,sys,urllib.parse,urllib.request\n"
            "url='http://127.0.0.1:9090/api/v1/query?query='+urllib.parse.quote(sys.argv[1])\n"
            "try: print(json.dumps(json.load(urllib.request.urlopen(url, timeout=5))))\n"
            "except OSError: print('null')")
    answer = json.loads(node.lab.node.run("python3", "-c", code, expression).stdout)
    result = answer["data"]["result"] if answer else []
    return float(result[0]["value"][1]) if result else None


def test_status_watch_redraws_until_interrupted(node: Node) -> None:
    log = node.lab.tmp / "watch.log"
    watch = node.lab.node.spawn([*ORCHESTRATOR, "status", "--watch", "0.2", "--config", str(node.config)],
                                log=log)
    wait_for(lambda: log.read_text().count(CLEAR_SCREEN) >= 3, 15, "three redraws")
    watch.send_signal(signal.SIGINT)  # Ctrl-C
    assert watch.wait(timeout=10) == 0
    assert log.read_text().count("uplink:   eth0") >= 3
