"""Stop signals during a run (labelbench.interrupt): SIGTERM or SIGINT in the middle of a
network fit saves its checkpoint at the next chunk's end, writes no record, exits non-zero
with one line; the same command again resumes and ends with the record an uninterrupted
run writes (CPU, bit for bit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, run_cli, run_here

ARGS = [
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy=supervised",
    "strategy.max_steps=2000",
    "strategy.eval_every=100",
    "strategy.patience=0",
    "checkpoint.every_steps=100",
    "logger=none",
]


def start(results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "labelbench-run"), *ARGS, f"paths.results_dir={results}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )  # fmt: skip


def signal_mid_fit(results: Path, signum: int) -> subprocess.CompletedProcess:
    """Start the run, wait for its first checkpoint (the fit is under way), send `signum`."""
    proc = start(results)
    deadline = time.monotonic() + 120
    while not list(results.glob("checkpoints/*/last.ckpt")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    assert list(results.glob("running/*.json"))  # its heartbeat, while it runs
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def record(results: Path) -> dict:
    (path,) = results.glob("runs/*.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_fit_checkpoints_and_the_relaunch_resumes_exactly(tmp_path, signum):
    results = tmp_path / "results"
    stopped = signal_mid_fit(results, signum)
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]
    lines = [ln for ln in stopped.stderr.splitlines() if ln.startswith("labelbench-run:")]
    assert len(lines) == 1 and f"stopped by {signal.Signals(signum).name}" in lines[0], lines
    assert "run the same command again to resume" in lines[0]
    assert "Traceback" not in stopped.stderr
    assert not list(results.glob("runs/*.json"))  # not over: no record, not even a failed one
    assert not list(results.glob("running/*.json"))  # its heartbeat is gone
    (note,) = results.glob("checkpoints/*/stopped.json")  # status: stopped, not running
    assert json.loads(note.read_text())["signal"] == signal.Signals(signum).name
    status = run_here("labelbench", "status", str(results), "--format", "json", cwd=tmp_path)
    assert json.loads(status.stdout)["running"] == 0
    assert not list(results.rglob("*.tmp"))  # the checkpoint was written whole

    again = run_cli("labelbench-run", *ARGS, f"paths.results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = record(results)
    assert resumed["status"] == "ok"
    step = resumed["metrics"].pop("fit/resumed_from_step")
    assert 100 <= step < 2000 and step % 100 == 0
    if signum == signal.SIGTERM:  # the uninterrupted run, for the bit-for-bit comparison
        whole = tmp_path / "whole"
        proc = run_here("labelbench-run", *ARGS, f"paths.results_dir={whole}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        expected = record(whole)["metrics"]
        assert expected.pop("fit/resumed_from_step") == 0
        assert resumed["metrics"] == expected


def test_a_signal_before_the_fit_stops_at_once_without_a_checkpoint(tmp_path):
    """While the data loads nothing polls: the run stops where it is, says so, and a
    relaunch starts it over."""
    results = tmp_path / "results"
    proc = start(results)
    deadline = time.monotonic() + 120
    while not list(results.glob("running/*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if list(results.glob("checkpoints/*/last.ckpt")):
        pytest.skip("the fit had made its first checkpoint before the signal landed")
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "no checkpoint was made; run the same command again to start it over" in err
    assert not list(results.glob("runs/*.json")) and not list(results.glob("running/*.json"))
