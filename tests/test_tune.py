"""`labelbench tune`: studies of seeded trials scored on validation labels only, resumed from
their records, then the best settings over the evaluation seeds (labelbench/tune.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, run_cli, run_here
from labelbench.config import ConfigError
from labelbench.tune import check_objective, load_space, override_value

FAST = [
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy.max_steps=20",
    "strategy.eval_every=10",
    "logger=none",
    "budget.total=40",
]
SPACE = """\
strategy.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
strategy.batch_size: {type: categorical, choices: [16, 32, 64]}
"""


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def trials_of(results: Path) -> list[dict]:
    """The trial records, by study then trial number."""
    found = [r for r in records(results) if r["config"]["tune"]["trial"] is not None]
    return sorted(found, key=lambda r: (r["config"]["tune"]["study"], r["config"]["tune"]["trial"]))


def params(record: dict) -> tuple:
    strategy = record["config"]["strategy"]
    return strategy["optimizer"]["lr"], strategy["batch_size"]


def sampled(record: dict) -> tuple:
    """A trial's settings and its score."""
    return (*params(record), record["metrics"]["val/acc"])


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def tune_here(tmp_path: Path, results: Path, *args: str):
    return run_here(
        "labelbench", "tune", *FAST, f"paths.results_dir={results}", *args, cwd=tmp_path
    )


# --- bad input: one line, exit 2, nothing written ----------------------------------------

BAD_SPACES = {
    "": "is empty",
    "[1, 2]": "must map config keys to distributions",
    "strategy.optimizer.lr: 0.1": "must be a mapping",
    "strategy.optimizer.lr: {type: beta, low: 0, high: 1}": "type='beta' is not one of",
    "strategy.optimizer.lr: {type: float, low: 0.1, high: 0.01}": "low=0.1 is greater than high=0.01",
    "strategy.optimizer.lr: {type: float, low: 0.0, high: 0.1, log: true}": "log=true needs low > 0",
    "strategy.optimizer.lr: {type: float, low: x, high: 0.1}": "low='x' must be a finite float",
    "strategy.batch_size: {type: int, low: 8, high: 64.5}": "high=64.5 must be a finite int",
    "strategy.batch_size: {type: categorical, choices: []}": "must be a non-empty list",
    "strategy.batch_size: {type: categorical, choices: [8, 8]}": "lists a value twice",
    "strategy.lr: {type: float, low: 0.1, high: 0.2, mode: x}": "mode is not a field",
    "seed: {type: int, low: 0, high: 3}": "'seed' cannot be searched",
    "budget.total: {type: int, low: 10, high: 30}": "'budget.total' cannot be searched",
    "strategy.optimizer.lr: {type: float, low: [1, high: 2}": "is not valid YAML",
}


@pytest.mark.parametrize("text", list(BAD_SPACES), ids=list(BAD_SPACES.values()))
def test_a_malformed_space_is_refused_naming_the_problem(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=BAD_SPACES[text].replace("[", r"\[").replace("(", r"\(")):
        load_space(path)


def test_a_test_metric_is_no_objective():
    assert check_objective("val/acc") == "max" and check_objective("val/nll") == "min"
    with pytest.raises(ConfigError, match="never reads the test split"):
        check_objective("test/acc")
    with pytest.raises(ConfigError, match="val/acc, val/balanced_acc"):
        check_objective("val/speed")


def test_override_values_read_back_as_hydra_parses_them():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for value in (0.00123456789, 1e-05, 3, True, None, "adam's", [1, 2.5]):
        (parsed,) = parser.parse_overrides([f"k={override_value(value)}"])
        assert parsed.value() == value


def bad_tune(tmp_path: Path, *args: str) -> str:
    """`labelbench tune ...` refused: exit 2, one line, no record and no Hydra folder."""
    results = tmp_path / "results"
    proc = tune_here(tmp_path, results, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("labelbench-run: error:")]
    assert len(lines) == 1, proc.stderr
    assert not results.exists(), sorted(results.rglob("*"))
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra.sweeper.objective=test/acc"], "tuning never reads the test split"),
        (["hydra.sweeper.tie_break=test/nll"], "tie_break=test/nll: tuning never reads the test"),
        (["hydra.sweeper.trials=0"], "hydra.sweeper.trials=0 must be a positive integer"),
        (["hydra.sweeper.sampler=grid"], "sampler='grid' is not one of tpe, random"),
        (["hydra.sweeper.seeds=[0,0]"], "lists a seed twice"),
        (["strategy.batch_size=32"], "strategy.batch_size is both set on the command line"),
        (["tune.trial=3"], "tune.trial is set by labelbench tune itself"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(tmp_path, space, args, message):
    assert message in bad_tune(tmp_path, f"hydra.sweeper.space={space}", *args)


def test_a_key_the_strategy_lacks_is_refused(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("strategy.threshold: {type: float, low: 0.5, high: 0.9}\n")
    line = bad_tune(tmp_path, f"hydra.sweeper.space={path}")
    assert "strategy.threshold is not a key of strategy=supervised's config" in line


def test_an_empty_space_file_is_refused(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("# nothing yet\n")
    assert "is empty" in bad_tune(tmp_path, f"hydra.sweeper.space={path}")


def test_a_strategy_without_a_search_space_is_refused(tmp_path):
    line = bad_tune(tmp_path, "strategy=supervised,self_training")
    assert "strategy=self_training has no search space (conf/search/self_training.yaml" in line


# --- what a study does -------------------------------------------------------------------


def test_trials_score_validation_labels_only_and_the_best_reruns_over_the_seeds(tmp_path, space):
    results = tmp_path / "results"
    proc = tune_here(
        tmp_path, results, f"hydra.sweeper.space={space}", "hydra.sweeper.trials=4",
        "hydra.sweeper.seeds=[0,1]",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    trials = trials_of(results)
    assert [t["config"]["tune"]["trial"] for t in trials] == [0, 1, 2, 3]
    (study,) = {t["config"]["tune"]["study"] for t in trials}
    assert study.startswith("supervised-")
    for t in trials:  # no test metric is computed for a trial, and its labels were paid for
        assert not [k for k in t["metrics"] if k.startswith("test")], t["metrics"]
        assert "val/acc" in t["metrics"] and t["labels"]["val_paid"] is True
        assert t["labels"]["count"] + t["labels"]["val_count"] == 40
    best = min(  # the best val/acc; of equals the lowest val/nll (the tie-break); the earliest
        trials, key=lambda t: (-t["metrics"]["val/acc"], t["metrics"]["val/nll"], t["config"]["tune"]["trial"])
    )  # fmt: skip
    tuned = [r for r in records(results) if r["choices"]["strategy"] == "supervised[tuned]"]
    assert sorted(r["seed"] for r in tuned) == [0, 1]
    for r in tuned:
        assert r["config"]["tune"] == {"study": study, "trial": None, "trials": 4}
        assert params(r) == params(best)
        assert "test/acc" in r["metrics"] and r["labels"]["val_paid"] is True
    untuned = [r for r in records(results) if r["choices"]["strategy"] == "supervised"]
    assert sorted(r["seed"] for r in untuned if r["config"]["tune"]["study"] is None) == [0, 1]
    assert f"tune {study}: 4 trials (0 failed)" in proc.stdout and "best val/acc=" in proc.stdout
    board = run_here("labelbench", "leaderboard", str(results), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    table = next(b for b in board.stdout.split("\n\n") if b.startswith("| strategy"))
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == ["supervised (baseline)", "supervised[tuned]"]  # no row of trials
    assert f"supervised[tuned] @ clean 40: study {study}, 4 trials" in board.stdout


def test_tuning_never_reads_the_test_labels(tmp_path, space):
    """The same study on data whose every test label is wrong chooses the same settings,
    from the same validation scores."""
    chosen = []
    for name, data in (("plain", []), ("scrambled", ["dataset._target_=tune_sources.ScrambledTest", "allow_targets=[tune_sources]"])):  # fmt: skip
        results = tmp_path / name
        proc = tune_here(
            tmp_path, results, *data, f"hydra.sweeper.space={space}", "hydra.sweeper.trials=5",
            "hydra.sweeper.seeds=[]", "hydra.sweeper.untuned=false",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        chosen.append([sampled(t) for t in trials_of(results)])
    assert len(chosen[0]) == 5 and chosen[0] == chosen[1]


def test_every_method_gets_the_same_number_of_trials(tmp_path):
    results = tmp_path / "results"
    proc = tune_here(
        tmp_path, results, "strategy=supervised,elr", "strategy.max_steps=20",
        "hydra.sweeper.trials=3", "hydra.sweeper.seeds=[0]", "hydra.sweeper.untuned=false",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    per_study: dict[str, int] = {}
    for t in trials_of(results):
        per_study[t["config"]["tune"]["study"]] = per_study.get(t["config"]["tune"]["study"], 0) + 1
    assert sorted(per_study.values()) == [3, 3] and len(per_study) == 2
    tuned = {r["choices"]["strategy"]: r["config"]["tune"]["trials"] for r in records(results) if r["config"]["tune"]["trials"]}  # fmt: skip
    assert tuned == {"supervised[tuned]": 3, "elr[tuned]": 3}


def test_a_killed_tune_resumes_without_repeating_a_trial(tmp_path, space):
    """Kill `labelbench tune` (SIGKILL, the real console script) once 3 of its 6 trials have
    records; the same command again runs only the other 3, and the study ends as an
    uninterrupted one does: the same settings, the same scores."""
    results = tmp_path / "killed"
    args = [*FAST, f"paths.results_dir={results}", f"hydra.sweeper.space={space}",
            "hydra.sweeper.trials=6", "hydra.sweeper.seeds=[]", "hydra.sweeper.untuned=false"]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.Popen(
        [str(BIN / "labelbench"), "tune", *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list((results / "runs").glob("*.json"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "the tune ended before it was killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    assert 3 <= len(before) < 6, before
    again = run_cli("labelbench", "tune", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    assert len(after) == 6
    assert {k: after[k] for k in before} == before  # finished trials were not run again
    whole = tmp_path / "whole"
    proc = tune_here(tmp_path, whole, *args[len(FAST) + 1 :])
    assert proc.returncode == 0, proc.stderr
    assert [sampled(t) for t in trials_of(results)] == [sampled(t) for t in trials_of(whole)]


def test_the_preset_tunes_three_methods_with_equal_trials(tmp_path):
    proc = run_here("labelbench", "reproduce", "tune_digits", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# tune_digits: tunes 3 cells, each 20 trials, then 6 runs")
    cells = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("cell ")]
    assert cells == ["supervised", "fixmatch", "elr"]


def test_a_space_that_makes_a_config_that_cannot_run_stops_the_tune(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("strategy.batch_size: {type: int, low: 0, high: 0}\n")
    results = tmp_path / "results"
    proc = tune_here(tmp_path, results, f"hydra.sweeper.space={path}", "hydra.sweeper.trials=3")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("labelbench-run: error:")]
    assert "batch_size=0" in lines[0]  # the trial's own line, then the tune's
    assert (
        "trial 0 " in lines[-1] and "its search space makes a config that does not run" in lines[-1]
    )
    assert not list(results.glob("runs/*.json"))
