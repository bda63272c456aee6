"""Run records: schema round-trip and atomic writes that survive crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from labelbench.results import SCHEMA_VERSION, RecordError, RecordStore, RunRecord


def make_record(key: str = "abc123", status: str = "ok", n_indices: int = 10) -> RunRecord:
    return RunRecord(
        run_key=key,
        status=status,
        choices={
            "dataset": "digits",
            "regime": "clean",
            "budget": "total",
            "strategy": "supervised",
            "model": "mlp",
        },
        seed=0,
        split_seed=0,
        labels={
            "budget": "20",
            "budget_size": 20,
            "count": 20,
            "val_count": 5,
            "val_paid": False,
            "cost": 20.0,
            "noise_rate": 0.0,
            "indices": list(range(n_indices)),
        },
        metrics={"test/acc": 0.9, "test/nll": 0.3} if status == "ok" else {},
        directions={"test/acc": "max", "test/nll": "min"} if status == "ok" else {},
        curve=[],
        timings={"fit_s": 1.0, "total_s": 2.0},
        versions={"python": "3.11"},
        git={"sha": None, "dirty": None},
        host={"hostname": "h"},
        config={"seed": 0},
        error=None if status == "ok" else {"type": "FloatingPointError", "message": "nan"},
    )


def test_round_trip(tmp_path):
    store = RecordStore(tmp_path)
    record = make_record()
    path = store.write(record)
    assert path == tmp_path / "runs" / "abc123.json"
    assert store.read("abc123") == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert store.is_ok("abc123")
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # readable by others, like any output


def test_failed_record_round_trip(tmp_path):
    store = RecordStore(tmp_path)
    store.write(make_record(status="failed"))
    got = store.read("abc123")
    assert got.status == "failed" and got.error["type"] == "FloatingPointError"
    assert not store.is_ok("abc123")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"schema_version": 99}', "schema_version=99"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_records_are_refused(text, message):
    with pytest.raises(RecordError, match=message):
        RunRecord.from_json(text)


def test_missing_field_is_refused():
    data = make_record().to_dict()
    del data["metrics"]
    with pytest.raises(RecordError, match="lacks metrics"):
        RunRecord.from_dict(data)


def test_nan_metric_is_never_written(tmp_path):
    record = make_record()
    record.metrics["test/acc"] = float("nan")
    with pytest.raises(ValueError):
        RecordStore(tmp_path).write(record)
    assert not (tmp_path / "runs" / "abc123.json").exists()


def test_crash_during_write_leaves_old_record(tmp_path, monkeypatch):
    store = RecordStore(tmp_path)
    store.write(make_record())
    before = store.path("abc123").read_text()

    def crash(fd):
        raise KeyboardInterrupt  # as if the process were interrupted mid-write

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write(make_record(status="failed"))
    assert store.path("abc123").read_text() == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["abc123.json"]  # no temp left


WRITER = """
import sys
from test_records import make_record
from labelbench.results import RecordStore
store = RecordStore(sys.argv[1])
i = 0
while True:
    store.write(make_record(key=f"k{i % 5}", n_indices=200_000))
    i += 1
"""


def test_kill_9_mid_write_leaves_no_partial_record(tmp_path):
    """A real SIGKILL while records are being written: every *.json left parses."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], cwd=os.path.dirname(__file__)
    )
    deadline = time.time() + 30
    while time.time() < deadline and len(list((tmp_path / "runs").glob("*.json"))) < 3:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    found = list(RecordStore(tmp_path).scan())
    assert len(found) >= 3
    assert all(isinstance(item, RunRecord) for _, item in found), found


def write_records(results: str, worker: int) -> None:
    """One of several concurrent writers (test_resume): its own keys, plus 5 keys that
    every writer rewrites at the same time."""
    store = RecordStore(results)
    for i in range(40):
        store.write(make_record(key=f"w{worker}-{i}", n_indices=2000))
        store.write(make_record(key=f"shared-{i % 5}", n_indices=2000))
