"""The uplink record a restarted daemon reads: round trip, and never trusted from someone else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator import uplink_record
from orchestrator.events import Uplink

UPLINK = Uplink("eth0", "10.1.0.100/24", "10.1.0.1", "02:00:00:00:0a:01")


def test_a_written_record_reads_back_and_none_is_recorded_too(tmp_path: Path) -> None:
    path = uplink_record.record_path(tmp_path / "control.sock")
    uplink_record.write(path, UPLINK)
    assert uplink_record.read(path) == UPLINK
    assert not path.stat().st_mode & 0o022  # writable by root alone (the unit's umask makes it 0600)
    uplink_record.write(path, None)
    assert uplink_record.read(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uplink.json"]  # no temporary left


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]",
     '{"format": 2, "uplink": {"interface": "eth0", "address": "10.1.0.100/24", "gateway": null,'
     ' "gateway_lladdr": null}}',
     '{"format": 1}',
     '{"format": 1, "uplink": {"interface": 3, "address": "x", "gateway": null, "gateway_lladdr": null}}',
     '{"format": 1, "uplink": {"interface": "eth0"}}',
     '{"format": 1, "uplink": {"interface": "eth0", "address": "x", "gateway": null,'
     ' "gateway_lladdr": null}}',
     '{"format": 1, "uplink": {"interface": "eth0", "address": "10.1.0.100/24", "gateway": "y",'
     ' "gateway_lladdr": null}}'],
)
def test_a_malformed_record_is_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "uplink.json"
    path.write_text(text)
    path.chmod(0o644)
    assert uplink_record.read(path) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_record_someone_else_could_write_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "uplink.json"
    uplink_record.write(path, UPLINK)
    os.chown(path, 65534, 65534)
    assert uplink_record.read(path) is None
    os.chown(path, 0, 0)
    path.chmod(0o666)
    assert uplink_record.read(path) is None
    assert "not a regular file that is root's and writable by no one else" in caplog.text


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    uplink_record.write(target, UPLINK)
    (tmp_path / "uplink.json").symlink_to(target)
    assert uplink_record.read(tmp_path / "uplink.json") is None


def test_what_is_no_regular_file_is_ignored_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo" / "uplink.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    assert uplink_record.read(fifo) is None
    directory = tmp_path / "dir" / "uplink.json"
    directory.mkdir(parents=True)
    assert uplink_record.read(directory) is None


def test_a_record_in_a_directory_others_could_write_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "uplink.json"
    path.parent.mkdir()
    uplink_record.write(path, UPLINK)
    path.parent.chmod(0o1777)  # /tmp-like: anyone could have put it there
    assert uplink_record.read(path) is None

