"""The Hydra app: one run and a sweep through the real console script; the relaunch that
skips, a second sweep into the same folder and a sweep with a bad job through its entry
point in this process (conftest.run_here)."""

from __future__ import annotations

import json

from conftest import run_cli, run_here

FAST = ["dataset=synthetic", "dataset.n_samples=300", "logger=none"]


def records(results):
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def test_sweep_then_relaunch_skips(tmp_path):
    results = tmp_path / "results"
    args = [
        "labelbench-run",
        "-m",
        *FAST,
        "strategy=logreg",
        "seed=0,1",
        "budget=total",
        "budget.total=20,40",
        f"paths.results_dir={results}",
    ]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "sweep: 4 runs: ok 4, failed 0, skipped 0" in first.stdout + first.stderr
    got = records(results)
    assert len(got) == 4 and {r["status"] for r in got} == {"ok"}
    assert {(r["seed"], r["labels"]["count"]) for r in got} == {(0, 20), (0, 40), (1, 20), (1, 40)}
    # Hydra's folders derive from the results dir and the choices, not the clock.
    assert (results / "hydra" / "sweep" / "synthetic" / "logreg").is_dir()

    again = run_here(*args, cwd=tmp_path)
    out = again.stdout + again.stderr
    assert again.returncode == 0, again.stderr
    assert out.count("ok record exists") == 4
    assert "sweep: 4 runs: ok 0, failed 0, skipped 4" in out
    assert records(results) == got  # nothing rewritten

    # Another sweep into the same folder counts its own jobs only.
    other = run_here(
        *[a for a in args if not a.startswith("budget.total")], "budget.total=30", cwd=tmp_path
    )
    assert other.returncode == 0, other.stderr
    assert "sweep: 2 runs: ok 2, failed 0, skipped 0" in other.stdout + other.stderr


def test_one_bad_job_does_not_lose_the_others(tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "-m",
        *FAST,
        "strategy=logreg",
        "budget=total",
        "budget.total=20,99999",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "labelbench-run: error: budget.total=99999 is larger than the pool" in proc.stderr
    assert "ok 1" in proc.stdout + proc.stderr and "invalid 1" in proc.stdout + proc.stderr
    assert [r["labels"]["count"] for r in records(results)] == [20]


def test_single_run_with_readme_command(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run",
        "strategy=supervised",
        "budget=per_class",
        "budget.per_class=4",
        "seed=1",
        "strategy.max_steps=200",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = records(results)
    assert record["status"] == "ok" and record["seed"] == 1 and record["labels"]["count"] == 40
    assert record["choices"]["dataset"] == "digits" and record["metrics"]["test/acc"] > 0.6
    # the csv logger mirrors training curves next to the records
    assert (results / "logs" / "csv" / record["run_key"] / "metrics.csv").is_file()
    board = run_here("labelbench", "leaderboard", str(results), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    assert "supervised (baseline)" in board.stdout and "clean 4/class" in board.stdout


def test_job_count_and_progress_line():
    from collections import Counter

    from omegaconf import OmegaConf

    from labelbench.overrides import BASIC_SWEEPER, TUNE_SWEEPER
    from labelbench.sweep import SweepSummary, count_jobs

    config = OmegaConf.create(
        {"hydra": {"overrides": {"task": ["seed=0,1,2", "budget.total=20,50", "logger=none"]},
                   "sweeper": {"_target_": BASIC_SWEEPER,
                               "params": {"strategy": "supervised,logreg", "seed": "0,1"}}}}
    )  # fmt: skip
    assert count_jobs(config) == 3 * 2 * 2  # the command line's seed list wins over params
    config.hydra.sweeper._target_ = TUNE_SWEEPER  # its trials are decided as it goes
    assert count_jobs(config) is None
    summary = SweepSummary()
    summary.total, summary.started = 12, __import__("time").time() - 30
    line = summary.progress_line(Counter(ok=2, skipped=1))
    assert line.startswith("sweep: 3/12 done (ok 2, failed 0, skipped 1, invalid 0), ETA 1m")
