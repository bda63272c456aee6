"""Faults: in-run checkpoints resume exactly, killed runs and sweeps relaunch cleanly,
concurrent writers lose nothing, DDP records once."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, run_cli, run_here
from labelbench.results import RecordStore
from labelbench.run import run
from labelbench.strategies.lightning import LabelModule
from test_records import write_records

RESUMABLE = ["strategy.max_steps=100", "strategy.eval_every=20", "strategy.patience=0",
             "checkpoint.every_steps=20"]  # fmt: skip


def comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "fit/resumed_from_step"}


def test_crashed_fit_resumes_exactly_from_its_checkpoint(compose_fast, tmp_path, monkeypatch):
    whole = run(*compose_fast(*RESUMABLE))
    assert whole.status == "ok" and whole.metrics["fit/resumed_from_step"] == 0

    cfg, choices = compose_fast(*RESUMABLE)
    cfg.paths.results_dir = str(tmp_path / "interrupted")
    original = LabelModule.training_step

    def crash_after_60_steps(self, chunk, idx):
        if self.steps_done >= 60:
            raise RuntimeError("simulated crash")
        return original(self, chunk, idx)

    monkeypatch.setattr(LabelModule, "training_step", crash_after_60_steps)
    crashed = run(cfg, choices)
    assert crashed.status == "failed" and crashed.error["message"] == "simulated crash"
    ckpt = tmp_path / "interrupted" / "checkpoints" / crashed.run_key / "last.ckpt"
    assert ckpt.is_file()

    monkeypatch.setattr(LabelModule, "training_step", original)
    resumed = run(cfg, choices)
    assert resumed.status == "ok"
    assert resumed.metrics["fit/resumed_from_step"] == 60
    assert comparable(resumed.metrics) == comparable(whole.metrics)  # bit for bit, on CPU
    assert not ckpt.parent.exists()  # a finished run cleans up after itself


def test_truncated_checkpoint_is_discarded(compose_fast, tmp_path):
    cfg, choices = compose_fast(*RESUMABLE)
    from labelbench.config import run_key

    ckpt = Path(cfg.paths.results_dir) / "checkpoints" / run_key(cfg) / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 half a zip file")
    record = run(cfg, choices)
    assert record.status == "ok" and record.metrics["fit/resumed_from_step"] == 0


# Killed once its first checkpoint (step 100) exists: the 700 steps after it (about 2 s of
# CPU) leave the test ample time to kill it before it could finish.
SLOW_RUN = ["dataset=synthetic", "dataset.n_samples=1000", "strategy.max_steps=800", "strategy.eval_every=100",
            "strategy.patience=0", "checkpoint.every_steps=100", "logger=none"]  # fmt: skip


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def test_kill_9_mid_run_then_relaunch_resumes(tmp_path):
    results = tmp_path / "results"
    args = [str(BIN / "labelbench-run"), *SLOW_RUN, f"paths.results_dir={results}"]
    proc = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: list((results / "checkpoints").glob("*/last.ckpt")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list((results / "runs").glob("*.json")) if (results / "runs").exists() else True

    # The relaunch through the entry point in this process (run_here): what is under test is
    # what the killed process left behind, and the real console script was the one killed.
    again = run_here("labelbench-run", *SLOW_RUN, f"paths.results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["metrics"]["fit/steps"] == 800
    assert record["metrics"]["fit/resumed_from_step"] >= 100


def test_kill_9_of_the_sweep_then_relaunch_runs_only_what_is_missing(tmp_path):
    results = tmp_path / "results"
    sweep = [str(BIN / "labelbench-run"), "-m", "dataset=synthetic", "dataset.n_samples=400", "logger=none",
             "strategy.max_steps=200", "strategy.eval_every=100", "seed=0,1,2,3", f"paths.results_dir={results}"]  # fmt: skip
    proc = subprocess.Popen(sweep, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    wait_for(lambda: len(list((results / "runs").glob("*.json"))) >= 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in (results / "runs").glob("*.json")}
    assert 1 <= len(before) < 4

    # The relaunch through the entry point in this process (the killed sweep was the real
    # console script; so in test_kill_9_mid_run_then_relaunch_resumes).
    again = run_here("labelbench-run", *sweep[1:], cwd=tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert f"skipped {len(before)}" in out and f"ok {4 - len(before)}" in out
    after = {p.name: p.read_bytes() for p in (results / "runs").glob("*.json")}
    assert len(after) == 4 and all(after[k] == v for k, v in before.items())  # untouched
    assert {json.loads(v)["seed"] for v in after.values()} == {0, 1, 2, 3}
    assert all(json.loads(v)["status"] == "ok" for v in after.values())


def test_eight_jobs_writing_at_once_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    # The writer lives in test_records, which imports no torch: 8 fresh processes start fast.
    procs = [ctx.Process(target=write_records, args=(str(tmp_path), w)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    found = list(RecordStore(tmp_path).scan())
    names = {path.stem for path, _ in found}
    assert names == {f"w{w}-{i}" for w in range(8) for i in range(40)} | {
        f"shared-{i}" for i in range(5)
    }
    assert all(not isinstance(item, Exception) for _, item in found)
    assert not list((tmp_path / "runs").glob("*.tmp"))


@pytest.mark.skipif(os.cpu_count() is None, reason="needs to count cores")
def test_ddp_on_cpu_records_once(tmp_path):
    results = tmp_path / "results"
    proc = run_cli("labelbench-run", "trainer=ddp", "dataset=synthetic", "dataset.n_samples=400",
                   "strategy.max_steps=100", "strategy.eval_every=50", "logger=none",
                   f"paths.results_dir={results}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["config"]["trainer"]["devices"] == 2
    assert record["metrics"]["test/acc"] > 0.5 and record["metrics"]["fit/steps"] == 100
    assert (proc.stdout + proc.stderr).count(" ok ") == 1  # one process reports the run
