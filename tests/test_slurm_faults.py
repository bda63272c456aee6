"""Faults on a real SLURM cluster (the one-node cluster of scripts/slurm/up.sh; .ci/run starts
it): a preempted job (`scontrol requeue`), a job past its time limit, a job killed outright.
Each cuts a real job in the middle of a network fit and checks the records that end up in
the store. Skipped, with the reason, only where no SLURM answers (see test_slurm.py).

Durations here (2 cores): preemption about 1 min (the requeued job waits cred_expire=15 s
before it may start again), time limit about 2 min (SLURM signals within its 30 s timer
tick of the warning time), kill about 1 min."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, run_cli, run_here

pytestmark = pytest.mark.slurm

FIT = [
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy=supervised",
    "strategy.eval_every=100",
    "strategy.patience=0",
    "checkpoint.every_steps=100",
    "logger=none",
]


def sweep(results: Path, *args: str) -> subprocess.Popen:
    """`labelbench-run -m launcher=slurm ...` in the background (it waits for its jobs)."""
    return subprocess.Popen(
        [str(BIN / "labelbench-run"), "-m", "launcher=slurm", *FIT, *args,
         f"paths.results_dir={results}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        # beats every second: a killed job's heartbeat is stale 3 s after the kill
        env={**os.environ, "HYDRA_FULL_ERROR": "0", "LABELBENCH_HEARTBEAT_S": "1"},
    )  # fmt: skip


def wait_for(paths, proc: subprocess.Popen, what: str, timeout: float = 180) -> list[Path]:
    deadline = time.monotonic() + timeout
    while not (found := list(paths())):
        assert proc.poll() is None, (
            f"the sweep ended before {what}:\n{proc.communicate()[0][-3000:]}"
        )
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.1)
    return found


def job_ids(results: Path) -> list[str]:
    """SLURM job ids of the sweep's jobs, from submitit's folders (`<job>` or `<array>_<i>`)."""
    folder = results / "hydra" / "sweep" / ".submitit"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def job_logs(results: Path) -> str:
    folder = results / "hydra" / "sweep" / ".submitit"
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*_log.err"))


def squeue() -> str:
    """The ids of the jobs SLURM still holds (pending or running)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=60)
    return out.stdout


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def uninterrupted(tmp_path: Path, *args: str) -> dict[str, float]:
    """The metrics of the same run, whole, in this process (one thread, as the jobs)."""
    whole = tmp_path / "whole"
    proc = run_here("labelbench-run", *FIT, *args, f"paths.results_dir={whole}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (record,) = records(whole)
    metrics = dict(record["metrics"])
    assert metrics.pop("fit/resumed_from_step") == 0
    return metrics


def test_a_preempted_job_resumes_from_its_checkpoint_and_writes_the_same_record(
    slurm,
    tmp_path,
):
    results = tmp_path / "results"
    proc = sweep(results, "strategy.max_steps=8000")
    wait_for(lambda: results.glob("checkpoints/*/last.ckpt"), proc, "checkpoint")
    (job,) = job_ids(results)
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, timeout=60)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-4000:]
    assert "stopped by SIGTERM: its checkpoint" in job_logs(results)
    (record,) = records(results)
    assert record["status"] == "ok" and record["host"]["slurm_job_id"] == job  # the same job, again
    metrics = dict(record["metrics"])
    assert metrics.pop("fit/resumed_from_step") > 0
    assert metrics == uninterrupted(tmp_path, "strategy.max_steps=8000")


def test_a_job_past_its_time_limit_is_signalled_requeued_and_finishes(slurm, tmp_path):
    """A 1-minute limit with the warning (SIGUSR2) 15 s before it: SLURM sends it within its
    30 s timer tick, so 15-45 s into the job, after the fit has started. The fit is sized to
    about 75 s on this machine (measured first), so it cannot end before the warning. The run
    checkpoints, submitit requeues the job; the test then gives the requeued job a longer
    limit (as an admin would), so that it finishes in one more attempt on any machine."""
    probe = tmp_path / "probe"
    proc = run_here("labelbench-run", *FIT, "strategy.max_steps=2000", f"paths.results_dir={probe}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (measured,) = records(probe)
    steps = max(20000, 100 * round(75 * 2000 / measured["timings"]["fit_s"] / 100))
    results = tmp_path / "results"
    proc = sweep(
        results, f"strategy.max_steps={steps}", "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=15",
    )  # fmt: skip
    wait_for(
        lambda: ["stopped"] if "stopped by SIGUSR2: its checkpoint" in job_logs(results) else [],
        proc, "the time-limit warning", timeout=240,
    )  # fmt: skip
    (job,) = job_ids(results)
    subprocess.run(
        ["scontrol", "update", f"JobId={job}", "TimeLimit=10"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    assert "this job is timed-out" in job_logs(results)  # submitit's requeue
    (record,) = records(results)
    assert record["status"] == "ok" and record["host"]["slurm_job_id"] == job
    assert record["metrics"]["fit/steps"] == steps
    assert record["metrics"]["fit/resumed_from_step"] > 0


@pytest.mark.parametrize("how", ["scancel", "sigkill"])
def test_a_job_killed_outright_leaves_no_record_and_the_relaunch_finishes_it(slurm, tmp_path, how):
    """`scancel --signal=KILL`: SLURM kills the job's srun and cancels its step, whose task
    gets SIGTERM first (KillWait): the run checkpoints and stops. SIGKILL to the run's own
    process (the node's OOM killer, say): nothing can be saved, its heartbeat goes stale.
    Either way no record, ok or failed, and no partial file; the relaunch finishes the run."""
    results = tmp_path / "results"
    proc = sweep(results, "strategy.max_steps=20000")
    wait_for(lambda: results.glob("checkpoints/*/last.ckpt"), proc, "checkpoint")
    (job,) = job_ids(results)
    (beat,) = results.glob("running/*.json")
    if how == "scancel":
        subprocess.run(
            ["scancel", "--signal=KILL", job], check=True, capture_output=True, timeout=60
        )
    else:
        os.kill(json.loads(beat.read_text())["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while job in squeue().split():
        assert time.monotonic() < deadline, f"job {job} still in squeue 120 s after the kill"
        time.sleep(0.5)
    # Without accounting (sacct) submitit cannot see that the job ended without a result and
    # would wait for it forever; a cluster with accounting reports it failed. Stop the wait.
    proc.terminate()
    proc.communicate(timeout=60)
    assert not list(results.glob("runs/*"))  # no record, ok or failed, and no partial file
    time.sleep(4)  # three beats missed
    status = run_here("labelbench", "status", str(results), "--format", "json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    assert found["running"] == 0
    if how == "scancel":  # stopped by SIGTERM, with one line, its heartbeat removed
        assert "stopped by SIGTERM: its checkpoint" in job_logs(results)
        assert not beat.exists() and found["stale"] == 0
    else:  # died without a word
        assert [r["run_key"] for r in found["stale_runs"]] == [beat.stem]

    again = run_cli(
        "labelbench-run", "-m", *FIT, "strategy.max_steps=20000", f"paths.results_dir={results}",
        cwd=tmp_path, timeout=400,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    (record,) = records(results)
    assert record["status"] == "ok" and record["metrics"]["fit/resumed_from_step"] > 0
    assert not list(results.glob("running/*.json"))
