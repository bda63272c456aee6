"""The launcher group without a cluster: what each option composes to, site settings (env
vars, conf/local/slurm.yaml, the committed examples), bad input, and a real joblib sweep.
The real SLURM sweep is tests/test_slurm.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import BIN, CONF_DIR, run_cli, run_here
from labelbench.config import register_configs

SLURM_TARGET = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
FAST = ["dataset=synthetic", "dataset.n_samples=300", "strategy=logreg", "logger=none"]
ERROR_PREFIX = "labelbench-run: error:"


def launcher_config(*overrides: str, conf_dir: Path = CONF_DIR) -> dict:
    """hydra.launcher as the app would compose and resolve it."""
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[*overrides, "paths.results_dir=/sweeps"],
            return_hydra_config=True,
        )
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.fixture
def conf_copy(tmp_path) -> Path:
    """A copy of conf/ without any site files, to add some to."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf, ignore=shutil.ignore_patterns("local"))
    return conf


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def only_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_each_launcher_composes_to_its_plugin(monkeypatch, conf_copy):
    for var in ("PARTITION", "ACCOUNT", "QOS", "CPUS_PER_TASK", "MEM_GB", "GPUS_PER_NODE"):
        monkeypatch.delenv(f"LABELBENCH_SLURM_{var}", raising=False)
    monkeypatch.delenv("LABELBENCH_SLURM_TIMEOUT_MIN", raising=False)
    local = launcher_config("launcher=local", conf_dir=conf_copy)
    assert local["_target_"].endswith("BasicLauncher")
    joblib = launcher_config("launcher=joblib", "hydra.launcher.n_jobs=3", conf_dir=conf_copy)
    assert joblib["_target_"].endswith("JoblibLauncher") and joblib["n_jobs"] == 3

    slurm = launcher_config("launcher=slurm", conf_dir=conf_copy)
    assert slurm["_target_"] == SLURM_TARGET
    assert slurm["partition"] is None and slurm["account"] is None  # no site values shipped
    assert slurm["max_num_timeout"] == 3  # a timed-out job is requeued, at most 3 times
    assert slurm["cpus_per_task"] == 1 and slurm["mem_gb"] == 4 and slurm["timeout_min"] == 60
    assert "export OMP_NUM_THREADS=1" in slurm["setup"]
    assert slurm["submitit_folder"] == "/sweeps/hydra/sweep/.submitit/%j"


def test_slurm_site_settings_env_then_file_then_command_line(monkeypatch, conf_copy):
    monkeypatch.setenv("LABELBENCH_SLURM_PARTITION", "from-env")
    monkeypatch.setenv("LABELBENCH_SLURM_CPUS_PER_TASK", "6")
    got = launcher_config("launcher=slurm", conf_dir=conf_copy)
    assert got["partition"] == "from-env" and got["cpus_per_task"] == 6
    assert "export OMP_NUM_THREADS=6" in got["setup"]

    (conf_copy / "local").mkdir()
    (conf_copy / "local" / "slurm.yaml").write_text("partition: from-file\naccount: lab\n")
    got = launcher_config("launcher=slurm", conf_dir=conf_copy)
    assert (got["partition"], got["account"], got["cpus_per_task"]) == ("from-file", "lab", 6)
    got = launcher_config("launcher=slurm", "hydra.launcher.partition=cli", conf_dir=conf_copy)
    assert got["partition"] == "cli"
    # The SLURM site file is not read for other launchers (their schemas lack its keys).
    assert launcher_config("launcher=local", conf_dir=conf_copy)["_target_"].endswith(
        "BasicLauncher"
    )


def test_committed_site_examples_compose(conf_copy):
    (conf_copy / "local").mkdir()
    shutil.copy(CONF_DIR / "local-slurm.example.yaml", conf_copy / "local" / "slurm.yaml")
    shutil.copy(CONF_DIR / "local.example.yaml", conf_copy / "local" / "default.yaml")
    got = launcher_config("launcher=slurm", conf_dir=conf_copy)
    assert got["partition"] == "gpu" and got["cpus_per_task"] == 4
    assert "export OMP_NUM_THREADS=4" in got["setup"]
    assert launcher_config("launcher=local", conf_dir=conf_copy)["_target_"].endswith(
        "BasicLauncher"
    )


@pytest.mark.parametrize(
    ("launcher", "schema"),
    [("local", "BasicLauncherConf"), ("joblib", "JobLibLauncherConf"), ("slurm", "SlurmQueueConf")],
)
def test_unknown_launcher_option_is_refused_by_name(launcher, schema, tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "-m",
        f"launcher={launcher}",
        "hydra.launcher.nosuch=1",
        *FAST,
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "Could not override 'hydra.launcher.nosuch'" in proc.stderr
    assert f"Key 'nosuch' not in '{schema}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not results.exists()


def slurm_sweep(tmp_path, results, real: bool = False):
    """A 2-job sweep with launcher=slurm, through the command line (the real console script
    when `real`, else its entry point in this process)."""
    return (run_cli if real else run_here)(
        "labelbench-run",
        "-m",
        "launcher=slurm",
        *FAST,
        "seed=0,1",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )


def test_slurm_without_sbatch_stops_before_submitting(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(BIN))  # the venv's bin: Python, no SLURM
    results = tmp_path / "results"
    proc = slurm_sweep(tmp_path, results, real=True)
    assert proc.returncode == 2
    assert only_error_line(proc) == (
        "labelbench-run: error: launcher=slurm needs SLURM's sbatch on PATH (not found; run on "
        "a SLURM login node, or bring up the local test cluster with scripts/slurm/up.sh, or "
        "use launcher=local or launcher=joblib)"
    )
    assert not results.exists()  # nothing submitted, no sweep folder


def test_slurm_with_no_controller_stops_before_submitting(tmp_path, monkeypatch):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    submitted = tmp_path / "sbatch-was-called"
    (fake / "sbatch").write_text(f"#!/bin/sh\ntouch {submitted}\nexit 1\n")
    (fake / "scontrol").write_text(
        "#!/bin/sh\necho 'Slurmctld(primary) at head1 is DOWN'\n"
        "echo '*****************************************'\n"
        "echo '** RESTORE SLURMCTLD DAEMON TO SERVICE **'\nexit 1\n"
    )
    for exe in fake.iterdir():
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{BIN}")
    monkeypatch.setenv("SLURM_CONF", "/nowhere/slurm.conf")
    results = tmp_path / "results"
    proc = slurm_sweep(tmp_path, results)
    assert proc.returncode == 2
    assert only_error_line(proc) == (
        "labelbench-run: error: launcher=slurm: no SLURM controller answers (Slurmctld(primary) "
        "at head1 is DOWN); SLURM_CONF=/nowhere/slurm.conf (scripts/slurm/up.sh prints the one "
        "for the local test cluster)"
    )
    assert not submitted.exists() and not results.exists()


def test_single_run_with_slurm_launcher_runs_here_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(BIN))  # no sbatch needed: a single run is not launched
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", "launcher=slurm", *FAST, f"paths.results_dir={results}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "launcher=slurm applies to sweeps (-m); this single run runs here" in proc.stdout
    assert [r["status"] for r in records(results)] == ["ok"]


def test_joblib_sweep_runs_two_workers_and_both_records_land(tmp_path):
    """The submitting process in this process (run_here: the real console script's sweeps
    are test_resume's), its jobs in two joblib workers."""
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "-m",
        "launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *FAST,
        "seed=0,1",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in out
    got = records(results)
    assert sorted((r["status"], r["seed"]) for r in got) == [("ok", 0), ("ok", 1)]
    assert "sweep: 2 runs: ok 2, failed 0, skipped 0" in out
    pids = {r["host"]["pid"] for r in got}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, not this one


def test_joblib_sweep_counts_worker_outcomes_and_fails_on_an_invalid_run(tmp_path):
    """The submitting process in this process (run_here), its jobs in joblib's workers."""
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "-m",
        "launcher=joblib",
        *FAST,
        "budget.total=20,99999",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert [r["labels"]["count"] for r in records(results)] == [20]
    assert "sweep: 2 runs: ok 1, failed 0, skipped 0, invalid 1" in out
    assert proc.returncode == 1
