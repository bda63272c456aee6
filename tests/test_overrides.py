"""Hydra's composition mistakes answered in one line (labelbench.overrides): through the CLI
for the cases a user meets (the real console script for two of them, its entry point in this
process for the rest), in-process for the machinery (search path, sweep expansion, flags left
to Hydra)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import CONF_DIR, FAST_CLI, run_cli, run_here
from labelbench.config import ConfigError, check_run_fields
from labelbench.overrides import Composer, check_command_line, check_sweep, plural
from labelbench.run import compose

STRATEGIES = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))


def _refused(tmp_path: Path, *args: str, composes: bool = False, real: bool = False) -> str:
    """The one error line of a refused command line; Hydra's own advice ('To append to your
    config use +...') not passed through; no record, and unless the config `composes` (the
    mistake shows when the data loads), no Hydra output folder either. `real`: through the
    console script in a subprocess, else its entry point in this process."""
    results = tmp_path / "results"
    proc = (run_cli if real else run_here)(
        "labelbench-run", *args, f"paths.results_dir={results}", cwd=tmp_path
    )
    assert proc.returncode == 2, f"rc={proc.returncode}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labelbench-run: error: "), proc.stderr
    assert "To append" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert not list(results.glob("runs/*.json"))
    assert composes or not results.exists()  # no Hydra output folder
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
    return lines[0].removeprefix("labelbench-run: error: ")


# --- through the CLI ---------------------------------------------------------------------------


def test_unknown_option_says_did_you_mean(tmp_path):
    line = _refused(tmp_path, *FAST_CLI, "strategy=fixmach", real=True)
    assert line == (
        "strategy=fixmach is not an option of strategy; did you mean fixmatch? options: "
        + ", ".join(STRATEGIES)
    )


@pytest.mark.parametrize("launcher", ["local", "joblib", "slurm"])
def test_unknown_option_inside_a_sweep_stops_it_before_any_job(tmp_path, launcher):
    line = _refused(
        tmp_path, "-m", f"launcher={launcher}", *FAST_CLI, "strategy=supervised,fixmach"
    )
    assert line.startswith("strategy=fixmach is not an option of strategy; did you mean fixmatch?")


def test_key_of_another_option_names_the_options_that_have_it(tmp_path):
    line = _refused(tmp_path, *FAST_CLI, "regime.rate=0.3", real=True)
    head, _, have = line.partition("; regimes that have it: ")
    assert head == "regime=clean has no key rate"
    assert {"symmetric", "pairflip"} <= set(have.split(", "))
    assert "clean" not in have.split(", ")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["regime=symmetric", "regime.rat=0.3"], "regime.rat is not a key of regime=symmetric;"
         " did you mean rate? keys: rate"),
        (["sed=1"], "sed is not a config key or group; did you mean seed? keys: "),
        (["stratgy.max_steps=5"], "stratgy is not a config key or group; did you mean strategy?"),
        (["strategy/loss=gcee"], "strategy/loss=gcee is not an option of strategy/loss; did you"
         " mean gce? options: bootstrap, ce, gce,"),
        (["strategy=active", "strategy/query=entropi"], "strategy/query=entropi is not an option"
         " of strategy/query; did you mean entropy?"),
        (["strategy/lose=gce"], "strategy/lose is not a config group; did you mean strategy/loss?"),
        (["seed=abc"], "seed=abc must be an integer (seed: int)"),
        (["checkpoint.keep=maybe"], "checkpoint.keep=maybe must be true or false"),
        (["paths.result_dir=x"], "paths.result_dir is not a key of paths; did you mean"
         " results_dir?"),
        (["strategy=supervised,logreg"], "strategy=supervised,logreg gives several values; add -m"),
        (["regime=transition"], "regime.matrix has no value; allowed: K x K, row-stochastic"
         " (every row sums to 1); set it on the command line (regime.matrix=...)"),
    ],
)  # fmt: skip
def test_hydra_mistakes_are_one_line(tmp_path, overrides, expected):
    line = _refused(tmp_path, *FAST_CLI, *overrides)
    assert line.startswith(expected), line


def test_valid_multirun_of_two_tiny_runs_still_works(tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", "-m", *FAST_CLI, "seed=0,1", f"paths.results_dir={results}",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sweep: 2 runs: ok 2, failed 0, skipped 0" in proc.stdout + proc.stderr
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert sorted(r["seed"] for r in records) == [0, 1]


# --- in-process ----------------------------------------------------------------------------


def _refusal(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        check_command_line(list(argv))
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "flags",
    [["--help"], ["-h"], ["--hydra-help"], ["--cfg", "job"], ["-c", "all"], ["--info"],
     ["--cfg", "job", "--resolve"], ["--cfg", "job", "-p", "strategy"], ["--version"],
     ["--shell-completion"], ["-cn", "other"]],
)  # fmt: skip
def test_requests_other_than_a_run_are_left_to_hydra(flags):
    check_command_line([*flags, "strategy=fixmach"])  # no refusal: Hydra answers these


def test_the_precheck_composes_what_labelbench_run_composes():
    overrides = ["strategy=fixmatch", "regime=symmetric", "regime.rate=0.2", "seed=3"]
    with Composer(overrides) as composer:
        ours = composer.compose(overrides)
    cfg, choices = compose(overrides)
    assert ours.cfg == cfg
    assert {k: v for k, v in ours.choices.items() if v is not None} == choices


@pytest.fixture
def user_conf(tmp_path):
    """A user's own config folder with one strategy, `mine` (supervised under another name)."""
    folder = tmp_path / "myconf"
    (folder / "strategy").mkdir(parents=True)
    shutil.copy(CONF_DIR / "strategy" / "supervised.yaml", folder / "strategy" / "mine.yaml")
    return folder


def test_search_path_options_compose_and_are_suggested(user_conf):
    searchpath = f"hydra.searchpath=[file://{user_conf}]"
    _, choices = compose([searchpath, "strategy=mine"])  # run.compose honours it
    assert choices["strategy"] == "mine"
    check_command_line([searchpath, "strategy=mine"])
    check_command_line(["--config-dir", str(user_conf), "strategy=mine"])
    check_command_line(["-m", searchpath, "strategy=glob(mi*)", "seed=0,1"])
    assert "did you mean mine? options: active," in _refusal(searchpath, "strategy=mien")
    assert "did you mean mine?" in _refusal("-cd", str(user_conf), "strategy=mien")
    assert "options: active," in _refusal("strategy=mine")  # not without the search path
    assert _refusal("--config-dir", str(user_conf / "nope"), "seed=1").endswith("is not a folder")


def test_sweep_checks_each_group_combination_once_and_fast():
    argv = ["strategy=supervised,logreg,fixmatch,elr,knn,active", "model=mlp,linear,cnn1d"]
    argv += ["seed=0,1,2", "budget.total=10,20,30", "logger=none"]  # 162 runs
    start = time.perf_counter()
    with Composer(argv) as composer:
        checked = check_sweep(composer, argv)
    assert checked == 18  # 6 strategies x 3 models; keys at their first value
    assert time.perf_counter() - start < 30  # a few seconds on an idle machine


def test_sweep_mistakes_anywhere_are_found():
    # the experiment's own sweep (hydra.sweeper.params) is expanded too: demo sweeps logreg
    line = _refusal("-m", "experiment=demo", "strategy.max_steps=20")
    assert line.startswith("strategy=logreg has no key max_steps; strategies that have it: ")
    line = _refusal("-m", "strategy=glob(fixm*)", "regime.rate=0.1")
    assert line.startswith("regime=clean has no key rate; regimes that have it:")
    assert _refusal("-m", "strategy=glob(zz*)").startswith("strategy=glob(zz*) selects no option")
    assert _refusal("-m", "seed=range(0,3)", "model=linear,mpl").startswith(
        "model=mpl is not an option of model; did you mean mlp?"
    )
    assert _refusal("-m", "dataset=digits,hub", "dataset.name=x").startswith(
        "dataset=digits has no key name; datasets that have it: "
    )


def test_missing_value_message_names_what_is_allowed_outside_hydra():
    cfg, _ = compose(["regime=transition"])  # tests and scripts: no Hydra runtime
    with pytest.raises(ConfigError, match=r"^regime\.matrix has no value; allowed: K x K"):
        check_run_fields(cfg)
    cfg, _ = compose(["dataset=files"])
    with pytest.raises(
        ConfigError, match=r"^dataset\.path has no value; allowed: a CSV or Parquet"
    ):
        check_run_fields(cfg)


def test_plural():
    assert [plural(g) for g in ("regime", "strategy", "strategy/loss", "strategy/query")] == [
        "regimes",
        "strategies",
        "losses",
        "queries",
    ]
