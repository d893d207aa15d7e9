"""The metrics without a kernel: the exposition as Prometheus's own promtool reads it (no family twice,
even when a plugin names a counter like one of ours), the listener's answers over loopback, and the
textfile written only when its text changed."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from orchestrator_testkit.promtool import find_promtool

from orchestrator.events import Uplink
from orchestrator.metrics.listener import Listener
from orchestrator.metrics.registry import Metrics
from orchestrator.metrics.snapshot import Snapshot
from orchestrator.metrics.textfile import Textfile

COUNTERS = Counter({"events": 40, "moves": 3, "moves_ok": 2, "moves_failed": 1, "plugin_failures": 1,
                    "teredo_kicks": 2, "moves_retried": 1, "tunnel_up": 5, "odd-name.x": 1})


def snapshot() -> Snapshot:
    uplinks = [("active", Uplink("eth0", "10.1.0.100/24", "10.1.0.1")),
               ("standby", Uplink("wlan0", "10.3.0.100/24", "10.3.0.1"))]
    return Snapshot(COUNTERS, {"mipv6": 1}, uplinks, {"teredo": "2001:0:c633:6401::1", "teredo2": None})


def exposition() -> str:
    metrics = Metrics(snapshot)
    metrics.phase("detected", 0.0002)
    metrics.phase("finished", 0.088)
    return metrics.text().decode()


def test_promtool_accepts_the_exposition_with_no_family_twice(tmp_path: Path) -> None:
    text = exposition()
    result = subprocess.run([find_promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr + text
    assert 'orchestrator_plugin_failures_total{plugin="mipv6"} 1.0' in text
    assert "orchestrator_moves_retried_total 1.0" in text and "orchestrator_odd_name_x_total 1.0" in text
    assert 'orchestrator_tunnel_up{interface="teredo2"} 0.0' in text and "tunnel_up_total" not in text
    assert 'orchestrator_uplink_info{address="10.3.0.100/24",interface="wlan0",role="standby"} 1.0' in text
    assert 'orchestrator_move_phase_seconds_bucket{le="0.001",phase="detected"} 1.0' in text
    assert "_created" not in text


def test_only_a_plugins_counter_named_like_a_family_of_ours_is_said_not_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``tunnel_up`` (a plugin's) collides with ``orchestrator_tunnel_up``; the core's
    ``plugin_failures`` is the labelled family itself, nothing to warn about at every start."""
    exposition()
    refused = [r.getMessage() for r in caplog.records if "is not exported" in r.getMessage()]
    assert refused == ["metrics: counter 'tunnel_up' is not exported: orchestrator_tunnel_up_total is taken"]


async def ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    return answer


def test_the_listener_answers_get_and_head_refuses_the_rest_and_survives_a_failing_collector() -> None:
    texts = [b"metric 1\n", b"metric 1\n"]  # HEAD and GET build it; then the collector fails

    def text() -> bytes:
        if not texts:
            raise RuntimeError("a collector's bug")
        return texts.pop()

    async def scenario() -> list[bytes]:
        listener = Listener("127.0.0.1", 0, text)
        await listener.start()
        assert listener._server is not None
        port = listener._server.sockets[0].getsockname()[1]
        answers = [await ask(port, request) for request in (
            b"HEAD /metrics HTTP/1.1\r\n\r\n", b"GET /metrics?x=1 HTTP/1.1\r\nHost: n\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n", b"POST /metrics HTTP/1.1\r\n\r\n", b"GET /metrics HTTP/1.1\r\n\r\n",
        )]
        await listener.close()
        return answers

    head, get, other, post, failing = asyncio.run(scenario())
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 9" in head
    assert get.startswith(b"HTTP/1.1 200 OK\r\n") and get.endswith(b"\r\n\r\nmetric 1\n")
    assert other.startswith(b"HTTP/1.1 404 ")
    assert post.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in post
    assert failing.startswith(b"HTTP/1.1 500 ")


def test_the_textfile_is_written_when_its_text_changed_and_removed_at_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.prom"
    text = [b"a 1\n"]

    async def scenario() -> tuple[int, int, int, bytes, bool]:
        fired = asyncio.Event()

        def current() -> bytes:
            fired.set()
            return text[0]

        textfile = Textfile(path, current)
        textfile.write()
        first = path.stat().st_ino
        textfile.write()  # the same text: nothing written
        same = path.stat().st_ino
        fired.clear()
        text[0] = b"a 2\n"
        textfile.changed()
        pending = textfile._timer
        textfile.changed()  # a burst: one write
        assert textfile._timer is pending is not None
        await asyncio.wait_for(fired.wait(), 5)  # the write, when the interval allows
        changed, content = path.stat().st_ino, path.read_bytes()
        textfile.close()
        return first, same, changed, content, path.exists()

    first, same, changed, content, left = asyncio.run(scenario())
    assert first == same and changed != first and content == b"a 2\n"
    assert not left and [p.name for p in tmp_path.iterdir()] == []
