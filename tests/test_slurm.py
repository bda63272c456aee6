"""A real SLURM sweep: `labelbench-run -m launcher=slurm` submits a job array through submitit
to a running cluster (the one-node cluster of scripts/slurm/up.sh here; .ci/run starts it).

Skipped, with the reason, only where there is no SLURM to talk to: no `sbatch` on PATH, or
no controller answering. SLURM_CONF comes from the environment, else from up.sh's default
folder ($LABELBENCH_SLURM_DIR, default /tmp/labelbench-slurm) when that holds a slurm.conf.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter

import pytest

from conftest import run_cli
from labelbench.results.table import load_rows

pytestmark = pytest.mark.slurm


def test_sweep_through_submitit_lands_four_ok_records(slurm, tmp_path):
    results = tmp_path / "results"  # the same machine: slurmd's jobs write here directly
    proc = run_cli(
        "labelbench-run",
        "-m",
        "launcher=slurm",
        "dataset=synthetic",
        "dataset.n_samples=300",
        "strategy=logreg",
        "seed=0,1",
        "budget.total=20,40",
        "logger=none",
        f"paths.results_dir={results}",
        cwd=tmp_path,
        timeout=300,  # without sacct (local cluster) a job that dies unseen is waited for
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Submitit 'slurm' sweep output dir" in out
    assert "sweep: 4 runs: ok 4, failed 0, skipped 0" in out  # counted from the jobs' outcomes

    rows = load_rows(results, use_cache=False)
    assert not rows.problems
    assert sorted((r["status"], r["seed"], r["labels"]) for r in rows.rows) == [
        ("ok", 0, 20),
        ("ok", 0, 40),
        ("ok", 1, 20),
        ("ok", 1, 40),
    ]
    board = run_cli("labelbench", "leaderboard", str(results), "--format", "json", cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    (table,) = json.loads(board.stdout)
    assert {name: cell["n"] for name, cell in table["rows"][0]["cells"].items()} == {
        "clean 20": 2,
        "clean 40": 2,
    }

    # Each record says which SLURM job ran it: one array of four tasks.
    hosts = [json.loads(p.read_text())["host"] for p in (results / "runs").glob("*.json")]
    assert all(h.get("slurm_job_id") for h in hosts), hosts
    assert len({h["slurm_job_id"] for h in hosts}) == 4
    assert len({h["slurm_array_job_id"] for h in hosts}) == 1
    assert sorted(h["slurm_array_task_id"] for h in hosts) == ["0", "1", "2", "3"]

    # submitit's folder lives under the results dir; the sbatch script carries the setup lines
    # and the time limit; each task's pickle carries the timeout requeue budget.
    array_id = hosts[0]["slurm_array_job_id"]
    submitit = results / "hydra" / "sweep" / ".submitit"
    script = next((submitit / array_id).glob("*.sh")).read_text()
    assert "export OMP_NUM_THREADS=1" in script and "#SBATCH --array=0-3%4" in script
    assert "#SBATCH --time=60" in script and "#SBATCH --signal=USR2@120" in script
    with (submitit / f"{array_id}_0" / f"{array_id}_0_submitted.pkl").open("rb") as f:
        submitted = pickle.load(f)
    assert submitted._timeout_countdown == 3  # hydra.launcher.max_num_timeout
    assert submitted._timeout_min == 60


def test_a_tuning_study_runs_its_trials_as_job_arrays(slurm, tmp_path):
    """`labelbench tune launcher=slurm`: each batch of `parallel` trials is one job array,
    the best settings' runs another; every trial and run is a record written by a SLURM job."""
    results = tmp_path / "results"
    space = tmp_path / "space.yaml"
    space.write_text("strategy.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n")
    proc = run_cli(
        "labelbench", "tune", "launcher=slurm", "dataset=synthetic", "dataset.n_samples=300",
        "strategy.max_steps=20", "strategy.eval_every=10", "budget.total=40", "logger=none",
        f"hydra.sweeper.space={space}", "hydra.sweeper.trials=4", "hydra.sweeper.parallel=2",
        "hydra.sweeper.seeds=[0]", "hydra.sweeper.untuned=false",
        f"paths.results_dir={results}", cwd=tmp_path, timeout=400,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    trials = sorted(r["config"]["tune"]["trial"] for r in records if r["config"]["tune"]["trial"] is not None)  # fmt: skip
    assert trials == [0, 1, 2, 3]
    assert [r["choices"]["strategy"] for r in records if r["config"]["tune"]["trials"]] == ["supervised[tuned]"]  # fmt: skip
    assert all(r["host"].get("slurm_job_id") for r in records)
    # two batches of two trials: two arrays of two tasks; the tuned run, a job of its own
    batches = Counter(r["host"].get("slurm_array_job_id") for r in records if r["config"]["tune"]["trial"] is not None)  # fmt: skip
    assert sorted(batches.values()) == [2, 2] and None not in batches
