"""Shared fixtures: compose configs exactly as `labelbench-run` does, with fast defaults."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from labelbench.launchers import controller_problem
from labelbench.run import compose

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
BIN = Path(sys.executable).parent


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process, and per process a test starts, unless the caller
    set OMP_NUM_THREADS: `make test` runs 2 xdist workers on 2 cores, and each worker's
    default of one OpenMP thread per core oversubscribes them (fits measured 3x slower, two
    whole test files 7x, on a machine under load). What tests assert does not change: the
    suite is written and run with OMP_NUM_THREADS=1 (the house rule), and every bit-for-bit
    comparison is between runs of one process or of one setting."""
    threads = os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:  # already imported (a plugin): its thread pool is sized
        sys.modules["torch"].set_num_threads(int(threads))


# Small and quick: synthetic data, short training. Keyed by the group option they assume;
# tests add their own overrides after these.
FAST = {
    ("dataset", "synthetic"): ["dataset=synthetic", "dataset.n_samples=400"],
    ("strategy", "supervised"): ["strategy.max_steps=60", "strategy.eval_every=20"],
    ("logger", "none"): ["logger=none"],
}


# The same fast settings as command-line arguments, for tests that run `labelbench-run`.
FAST_CLI = [
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy.max_steps=20",
    "strategy.eval_every=10",
    "logger=none",
]


def fast_for(overrides: tuple[str, ...] | list[str]) -> list[str]:
    """FAST, less the settings for groups the overrides switch to another option
    (`strategy=logreg` has no max_steps)."""
    chosen = dict(o.split("=", 1) for o in overrides if "=" in o and "." not in o.split("=", 1)[0])
    return [
        s
        for (group, option), settings in FAST.items()
        if chosen.get(group, option) == option
        for s in settings
    ]


def compose_run(overrides: list[str], results_dir: Path | str) -> tuple[DictConfig, dict[str, str]]:
    """Compose the run config and Hydra's group choices, as the app would."""
    return compose([*overrides, f"paths.results_dir={results_dir}"])


@pytest.fixture
def compose_fast(tmp_path):
    """compose_fast(*overrides) -> (cfg, choices) with FAST defaults and records under tmp_path."""

    def _compose(*overrides: str, fast: bool = True):
        return compose_run(
            [*(fast_for(overrides) if fast else []), *overrides], tmp_path / "results"
        )

    return _compose


HEAVY = ("torch", "lightning", "pytorch_lightning", "pandas", "scipy", "plotly", "matplotlib")


def heavy_imports(code: str) -> list[str]:
    """The heavy modules (HEAVY) a fresh interpreter has imported after running `code`."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps(sorted(set({HEAVY!r}) & set(sys.modules))))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(
    *args: str,
    cwd: Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    limits: dict[int, int] | None = None,
) -> subprocess.CompletedProcess:
    """Run `labelbench-run` (or `labelbench`) for real, in a subprocess, no stdin; `env`
    adds to the environment; `limits` sets resource limits in the child
    ({resource.RLIMIT_FSIZE: bytes, ...}: a disk that fills, memory that runs out)."""

    def limit() -> None:
        import resource

        for which, value in (limits or {}).items():
            resource.setrlimit(which, (value, resource.getrlimit(which)[1]))

    exe, *rest = args
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [str(BIN / exe), *rest],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=limit if limits else None,
    )


def _logging_state() -> list[tuple]:
    """Every logger's handlers, level, propagate and disabled flag, to put back later."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]


def _restore_logging(state: list[tuple]) -> None:
    """Undo Hydra's logging set-up (the root logger's handlers write to one call's captured
    streams and its output folder): the loggers there were as they were, the handlers added
    to them closed. Loggers made during the call (a first import of Lightning) stay as made."""
    kept = {id(h) for _, handlers, *_ in state for h in handlers}
    for lg, handlers, level, propagate, disabled in state:
        for h in lg.handlers:
            if id(h) not in kept:
                h.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


def run_here(
    *args: str, cwd: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`labelbench-run` (or `labelbench`) as `run_cli` runs it, but in this process: the entry
    point (labelbench.run.main with that argv, or labelbench.cli.main) with the same precheck,
    Hydra app, callbacks, output and exit code, without the seconds a fresh interpreter spends
    importing torch and Lightning. `env` adds to the environment for the call; `timeout` is
    accepted for run_cli's signature and not enforced. The console scripts themselves stay
    covered by `run_cli` tests (one per behaviour family)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    exe, *rest = args
    env = {"HYDRA_FULL_ERROR": "0", **(env or {})}
    saved_env = {k: os.environ.get(k) for k in env}
    saved_argv, saved_cwd, saved_logging = sys.argv, os.getcwd(), _logging_state()
    saved_job = HydraConfig.instance().cfg  # None outside a Hydra app
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    try:
        os.environ.update(env)
        sys.argv = [str(BIN / exe), *rest]
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if exe == "labelbench-run":
                    from labelbench.run import main

                    main()
                else:
                    assert exe == "labelbench", exe
                    from labelbench.cli import main

                    code = main(rest)
            except SystemExit as e:
                if isinstance(e.code, str):  # sys.exit("message"): printed, status 1
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _restore_logging(saved_logging)
        GlobalHydra.instance().clear()
        # The job's Hydra config would outlive the call: later run(cfg) calls in this
        # process would read its choices and config folders as their own.
        HydraConfig.instance().cfg = saved_job
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def run_script_here(script: Path, *args: str) -> subprocess.CompletedProcess:
    """`python script *args` from the project root, in this process: the script run as
    __main__ (runpy) with its folder first on sys.path, as Python puts it; its exit code,
    stdout and stderr. For scripts that only parse their arguments or measure briefly: no
    fresh interpreter spending seconds importing torch. torch's thread count is put back."""
    import runpy

    import torch

    saved_argv, saved_path, saved_cwd = sys.argv, sys.path[:], os.getcwd()
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    try:
        sys.argv = [str(script), *args]
        sys.path.insert(0, str(script.parent))
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([str(script), *args], code, out.getvalue(), err.getvalue())


def assert_hidden_labels_unused(cfg: DictConfig) -> None:
    """Fit `cfg`'s strategy twice: on its task, and on one whose unrevealed pool items all
    have wrong true labels (shuffled, then shifted by one class). The revealed items and
    what the regime observed stay the same, so the predictions must be bit-identical (CPU):
    the strategy never reads a hidden label. Use a random reveal order
    (`budget.balanced=false`): the class-balanced one reads pool labels by design."""
    import dataclasses

    import numpy as np

    from labelbench.config import run_key
    from labelbench.labels import reveal
    from labelbench.run import build

    parts = build(cfg, run_key(cfg))
    task = parts.source.load(cfg.split_seed)
    pool, _ = reveal(task, parts.regime, parts.budget, seed=0, split_seed=0)
    y = task.y.copy()
    y[pool.unlabeled] = np.random.default_rng(7).permutation(y[pool.unlabeled])
    y[pool.unlabeled] = (y[pool.unlabeled] + 1) % task.num_classes  # every hidden label wrong
    scrambled = dataclasses.replace(task, y=y)
    pool2, _ = reveal(scrambled, parts.regime, parts.budget, seed=0, split_seed=0)
    assert np.array_equal(pool.indices, pool2.indices)
    assert np.array_equal(pool.labels, pool2.labels)
    test_x = task.x[task.split.test]
    probs = [
        parts.strategy.fit(p, t.view(), parts.model, parts.trainer, seed=0).predict_proba(test_x)
        for p, t in ((pool, task), (pool2, scrambled))
    ]
    assert np.array_equal(probs[0], probs[1])


def assert_resumes_exactly(
    cfg, choices, whole, monkeypatch, tmp_path, crashes, at: int = 40
) -> None:
    """Run `cfg` into a fresh results folder with LabelModule.training_step raising whenever
    `crashes(module)` holds (after `at` optimizer steps, say), check that it failed, then run
    it again: the relaunch must resume from step `at` (a checkpoint) and end with `whole`'s
    metrics, bit for bit (on CPU)."""
    from labelbench.run import run
    from labelbench.strategies.lightning import LabelModule

    cfg.paths.results_dir = str(tmp_path / "interrupted")
    original = LabelModule.training_step

    def crash(self, chunk, idx):
        if crashes(self):
            raise RuntimeError("simulated crash")
        return original(self, chunk, idx)

    monkeypatch.setattr(LabelModule, "training_step", crash)
    crashed = run(cfg, choices)
    assert crashed.status == "failed" and crashed.error["message"] == "simulated crash"
    monkeypatch.setattr(LabelModule, "training_step", original)
    resumed = run(cfg, choices)
    assert resumed.status == "ok", resumed.error
    assert resumed.metrics.pop("fit/resumed_from_step") == at
    expected = {k: v for k, v in whole.metrics.items() if k != "fit/resumed_from_step"}
    assert resumed.metrics == expected


def revealed(cfg: DictConfig):
    """(parts, task, pool): a config's built components, its task and the LabelPool its
    budget reveals (seed 0, split_seed 0), for tests that call a strategy directly."""
    from labelbench.config import run_key
    from labelbench.labels import reveal
    from labelbench.run import build

    parts = build(cfg, run_key(cfg))
    task = parts.source.load(0)
    pool, _ = reveal(task, parts.regime, parts.budget, seed=0, split_seed=0)
    return parts, task, pool


def refusal_lines(tmp_path: Path, *args: str) -> list[str]:
    """Run `labelbench-run *args` (in this process, `run_here`) with records under
    tmp_path/results and check that it refused the way bad input must: exit 2, no traceback,
    no record. Its error lines. (The real console script's refusals: test_bad_input.py,
    test_overrides.py.)"""
    results = tmp_path / "results"
    proc = run_here("labelbench-run", *args, f"paths.results_dir={results}", cwd=tmp_path)
    assert proc.returncode == 2, f"rc={proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not list(results.glob("runs/*.json"))
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("labelbench-run: error:")]


def write_records(results: Path, records) -> Path:
    """Write run records into the store at `results` (atomically, as runs do); `results`."""
    from labelbench.results.store import RecordStore

    store = RecordStore(results)
    for r in records:
        store.write(r)
    return results


# --- a SLURM cluster to talk to (tests/test_slurm*.py) ---------------------------------------

UP_SH_CONF = Path(os.environ.get("LABELBENCH_SLURM_DIR", "/tmp/labelbench-slurm")) / "slurm.conf"
START = 'start one with: eval "$(scripts/slurm/up.sh)"'


@pytest.fixture
def slurm(monkeypatch) -> str:
    """The SLURM_CONF of a cluster that answers and has a usable node; else skip, saying why."""
    if shutil.which("sbatch") is None:
        pytest.skip(f"SLURM is not available: no sbatch on PATH (install slurm-client; {START})")
    if not os.environ.get("SLURM_CONF") and UP_SH_CONF.is_file():
        monkeypatch.setenv("SLURM_CONF", str(UP_SH_CONF))
    conf = os.environ.get("SLURM_CONF", "unset")
    problem = controller_problem(timeout=30)
    if problem:
        pytest.skip(f"SLURM is not up: {problem} (SLURM_CONF={conf}; {START})")
    sinfo = subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=60, check=False
    )
    states = set(sinfo.stdout.split())
    if sinfo.returncode != 0 or not states & {"idle", "mix", "alloc", "comp"}:
        why = (sinfo.stderr.strip().splitlines() or ["no node that can run jobs"])[-1]
        pytest.skip(f"SLURM is not up: sinfo: {why} (node states: {sorted(states)}; {START})")
    return conf
