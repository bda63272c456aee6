"""What a new user meets first, replayed through the CLI entry points (in this process; the
own-package test through the real console scripts): their own CSVs told apart in
one results folder, one training length for a sweep that mixes network and scikit-learn
strategies, strategies without a network tabled with the model `–`, standardised tables,
and their own strategy in their own package (examples/my_method) run against the built-in
baselines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli, run_here
from labelbench.config import ConfigError, check_targets, choices_from, run_key
from labelbench.run import compose

EXAMPLE = ROOT / "examples" / "my_method"
PLUGIN = [f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]", "allow_targets=[my_method]"]
PLUGIN_ENV = {"PYTHONPATH": str(EXAMPLE)}
QUICK = ["logger=none", "train.max_steps=40", "budget=total", "budget.total=40"]


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def write_sklearn_csv(path: Path, loader: str) -> Path:
    """One of scikit-learn's bundled tables (wine, iris) as a user's CSV, label column `y`."""
    import pandas as pd
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    df = pd.DataFrame(bunch.data, columns=[f"f{i}" for i in range(bunch.data.shape[1])])
    df["y"] = bunch.target
    df.to_csv(path, index=False)
    return path


def test_two_csvs_in_one_results_folder_are_two_datasets(tmp_path):
    results = tmp_path / "results"
    for name in ("load_wine", "load_iris"):
        csv = write_sklearn_csv(tmp_path / f"{name.removeprefix('load_')}.csv", name)
        proc = run_here(
            "labelbench-run", "-m", "strategy=logreg,knn", "dataset=files",
            f"dataset.path={csv}", "dataset.label_column=y", "budget=total", "budget.total=30",
            "logger=none", f"paths.results_dir={results}", cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    names = {r["choices"]["dataset"] for r in records(results)}
    assert names == {"files[wine]", "files[iris]"}

    board = run_here("labelbench", "leaderboard", str(results), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    titles = [ln for ln in board.stdout.splitlines() if ln.startswith("### ")]
    assert len(titles) == 2, board.stdout
    assert any("dataset=files[wine]" in t for t in titles)
    assert any("dataset=files[iris]" in t for t in titles)
    assert "‡" not in board.stdout  # nothing merged into one cell


def test_hub_dataset_named_by_its_id_and_a_local_folder_by_its_name():
    cfg, choices = compose(
        [
            "dataset=hub",
            "dataset.name=fancyzhx/ag_news",
            "dataset.input_column=text",
            "dataset/encoder=minilm",
        ]
    )
    assert choices_from(cfg, choices)["dataset"] == "hub[fancyzhx/ag_news,encoder=minilm]"
    cfg, choices = compose(
        ["dataset=hub", "dataset.name=./data/my_images", "dataset.input_column=img"]
    )
    assert choices_from(cfg, choices)["dataset"] == "hub[my_images]"
    cfg, choices = compose(["dataset=cifar10"])  # an option that names its own data
    assert choices_from(cfg, choices)["dataset"] == "cifar10"


def test_train_max_steps_reaches_every_network_strategy_and_a_strategy_key_overrides_it():
    for strategy in ("supervised", "fixmatch", "coteaching", "cl_filter", "distill"):
        cfg, _ = compose([f"strategy={strategy}", "train.max_steps=200"])
        assert cfg.strategy.max_steps == 200, strategy
    cfg, _ = compose(["strategy=active", "train.max_steps=200"])
    assert cfg.strategy.inner.max_steps == 200
    cfg, _ = compose(["train.max_steps=200", "strategy.max_steps=300"])
    assert cfg.strategy.max_steps == 300
    # `train` acts only through the strategy's keys: the run key is what they resolve to
    cfg, _ = compose([])
    assert cfg.strategy.max_steps == 1500
    assert run_key(cfg) == run_key(compose(["train.max_steps=1500"])[0])
    assert run_key(compose(["train.max_steps=200"])[0]) == run_key(
        compose(["strategy.max_steps=200"])[0]
    )


def test_strategies_without_a_network_ignore_the_model():
    keys, names = set(), set()
    for model in ("mlp", "cnn_small"):
        cfg, choices = compose(["strategy=logreg", f"model={model}"])
        keys.add(run_key(cfg))
        names.add(choices_from(cfg, choices)["model"])
    assert len(keys) == 1 and names == {"–"}  # one run, whatever model the sweep names
    cfg, choices = compose(["strategy=active", "strategy@strategy.inner=knn"])
    assert choices_from(cfg, choices)["model"] == "–"
    cfg, choices = compose(["strategy=active"])  # a supervised network inside
    assert choices_from(cfg, choices)["model"] == "mlp"


def test_standardize_uses_pool_statistics_only(tmp_path):
    from hydra.utils import instantiate

    csv = write_sklearn_csv(tmp_path / "wine.csv", "load_wine")
    cfg, _ = compose(["dataset=files", f"dataset.path={csv}", "dataset.label_column=y"])
    assert cfg.dataset.standardize is True  # a table's columns come in any units
    task = instantiate(cfg.dataset).load(3)
    raw = instantiate(cfg.dataset, standardize=False).load(3)
    pool = task.split.pool
    np.testing.assert_allclose(task.x[pool].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(task.x[pool].std(axis=0), 1, atol=1e-4)
    # validation and test items are scaled with the pool's statistics, not their own
    mean, std = raw.x[pool].astype(np.float64).mean(0), raw.x[pool].astype(np.float64).std(0)
    rest = np.concatenate([task.split.val, task.split.test])
    np.testing.assert_allclose(task.x[rest], (raw.x[rest] - mean) / std, rtol=1e-4, atol=1e-4)
    assert not np.allclose(task.x[task.split.test].mean(axis=0), 0, atol=1e-3)


def test_standardize_refuses_image_data(tmp_path):
    from conftest import refusal_lines

    lines = refusal_lines(tmp_path, "strategy=logreg", "+dataset.standardize=true")
    assert lines == [
        "labelbench-run: error: dataset.standardize=true is for tabular (vector) data;"
        " digits is image data"
    ]


def test_own_strategy_in_own_package_against_the_builtin_baselines(tmp_path):
    """examples/my_method, by the one command its README gives (shorter training)."""
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run", "-m", *PLUGIN, "strategy=mixup,supervised,logreg", *QUICK,
        f"paths.results_dir={results}", cwd=tmp_path, env=PLUGIN_ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {r["choices"]["strategy"]: r for r in records(results)}
    assert set(got) == {"mixup", "supervised", "logreg"}
    assert all(r["status"] == "ok" for r in got.values())
    # one training length for the mixed sweep: the networks read it, logreg ignores it
    assert got["mixup"]["config"]["strategy"]["max_steps"] == 40
    assert got["supervised"]["config"]["strategy"]["max_steps"] == 40
    assert got["mixup"]["metrics"]["fit/steps"] <= 40
    assert got["logreg"]["choices"]["model"] == "–"
    # the same labels for all three (paired)
    assert len({tuple(r["labels"]["indices"]) for r in got.values()}) == 1

    board = run_cli("labelbench", "leaderboard", str(results), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    for name in ("mixup", "supervised (baseline)", "logreg"):
        assert re.search(rf"^\| {re.escape(name)}", board.stdout, re.M), board.stdout


def test_own_package_is_refused_until_allowed(tmp_path, monkeypatch):
    from conftest import refusal_lines

    lines = refusal_lines(tmp_path, PLUGIN[0], "strategy=mixup", *QUICK)  # no allow_targets
    assert len(lines) == 1
    assert "strategy._target_=my_method.mixup.Mixup is not allowed" in lines[0]
    assert "allow_targets=[mypkg]" in lines[0]

    target = {"strategy": {"_target_": "my_method.mixup.Mixup"}}
    with pytest.raises(ConfigError, match="not allowed"):
        check_targets(target)
    monkeypatch.setenv("LABELBENCH_ALLOW_TARGETS", "other, my_method")
    check_targets(target)  # allowed through the environment
    with pytest.raises(ConfigError, match=r"allow_targets entry 'my method' must be a dotted"):
        check_targets({**target, "allow_targets": ["my method"]})


def test_readme_adding_a_strategy_is_the_tested_example():
    """The docs' example (docs/extending.md, moved there from the README) is the plugin's
    code and YAML, verbatim, so it cannot drift."""
    page = (ROOT / "docs" / "extending.md").read_text()
    section = page.split("\n## Adding a strategy\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S)
    assert (EXAMPLE / "my_method" / "mixup.py").read_text() in blocks
    assert (EXAMPLE / "conf" / "strategy" / "mixup.yaml").read_text() in blocks


def test_runs_that_differ_beyond_the_fields_are_named_and_filtered_apart(tmp_path):
    """Two training lengths of the same strategy land in one cell; the table says which
    config key tells them apart, and that key filters and splits them."""
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", "-m", "dataset=synthetic", "dataset.n_samples=400",
        "strategy=supervised", "train.max_steps=20,40", "logger=none", "budget.total=40",
        f"paths.results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    merged = run_here("labelbench", "leaderboard", str(results), cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert "‡1" in merged.stdout and "strategy.max_steps" in merged.stdout

    only = run_here(
        "labelbench", "leaderboard", str(results), "--filter", "strategy.max_steps=20",
        cwd=tmp_path,
    )  # fmt: skip
    assert only.returncode == 0, only.stderr
    assert "‡" not in only.stdout and "(1)" in only.stdout

    split = run_here(
        "labelbench", "leaderboard", str(results), "--rows", "strategy,strategy.max_steps",
        cwd=tmp_path,
    )  # fmt: skip
    assert split.returncode == 0, split.stderr
    assert "‡" not in split.stdout
    assert re.search(r"^\| supervised/20 ", split.stdout, re.M), split.stdout
    assert re.search(r"^\| supervised/40 ", split.stdout, re.M), split.stdout

    typo = run_here(
        "labelbench", "leaderboard", str(results), "--filter", "strategy.max_stepz=20",
        cwd=tmp_path,
    )  # fmt: skip
    assert typo.returncode == 2 and typo.stdout == ""
    (line,) = typo.stderr.strip().splitlines()
    assert "strategy.max_stepz" in line and "strategy.max_steps" in line
