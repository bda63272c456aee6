"""Bad input ends with one clear line naming the bad value, a non-zero exit and no record.

The CLI cases run `labelbench-run`'s entry point with their command line, in this process
(conftest.run_here); a refusal when the data loads and two when the command line composes run
the real console script (a subprocess each). Variants of the same checks run in-process
through `run(cfg)`. A good local table (CSV and Parquet) runs end to end.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from conftest import FAST_CLI, run_cli, run_here
from labelbench.config import ConfigError, check_targets
from labelbench.data.sources import Synthetic
from labelbench.run import run

# Fast options for a local-file dataset (dataset.n_samples is not a Files argument).
FILES_CLI = ["strategy.max_steps=20", "strategy.eval_every=10", "logger=none"]
ERROR_PREFIX = "labelbench-run: error:"


def _records(results: Path) -> list[Path]:
    return sorted((results / "runs").glob("*.json"))


def _cli(tmp_path: Path, *overrides: str, real: bool = False) -> tuple[object, Path]:
    """`labelbench-run *overrides` with records under tmp_path/results: through the console
    script in a subprocess when `real`, else its entry point in this process."""
    results = tmp_path / "results"
    proc = (run_cli if real else run_here)(
        "labelbench-run", *overrides, f"paths.results_dir={results}", cwd=tmp_path
    )
    return proc, results


def _assert_refused(proc, results: Path, *fragments: str) -> str:
    """Exit 2 (invalid), exactly one error line containing every fragment, no traceback,
    no record. Returns the error line."""
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 2, detail
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, detail
    line = lines[0]
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "Traceback" not in proc.stderr, detail
    assert _records(results) == [], detail
    return line


@pytest.fixture(scope="module")
def synthetic_pool_counts() -> np.ndarray:
    """Per-class pool sizes of the FAST synthetic data at split_seed=0 (what the CLI sees)."""
    task = Synthetic(n_samples=400).load(0)
    return np.bincount(task.y[task.split.pool], minlength=task.num_classes)


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- the command line ----------------------------------------------------------------------


def test_total_budget_larger_than_pool(tmp_path, synthetic_pool_counts):
    n_pool = int(synthetic_pool_counts.sum())
    assert n_pool < 5000
    proc, results = _cli(tmp_path, *FAST_CLI, "budget=total", "budget.total=5000", real=True)
    line = _assert_refused(proc, results, "budget.total=5000", f"allowed: 1..{n_pool}")
    assert f"pool ({n_pool} items)" in line


def test_per_class_budget_larger_than_smallest_class(tmp_path, synthetic_pool_counts):
    smallest = int(synthetic_pool_counts.min())
    assert smallest < 500
    proc, results = _cli(tmp_path, *FAST_CLI, "budget=per_class", "budget.per_class=500")
    _assert_refused(
        proc,
        results,
        "budget.per_class=500",
        f"class {int(synthetic_pool_counts.argmin())}: {smallest} items",
        f"allowed: 1..{smallest}",
    )


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.1"])
def test_fraction_outside_unit_interval(tmp_path, fraction):
    proc, results = _cli(tmp_path, *FAST_CLI, "budget=fraction", f"budget.fraction={fraction}")
    _assert_refused(proc, results, f"budget.fraction={fraction}", "(0, 1]")


@pytest.mark.parametrize("key", ["seed", "split_seed"])
def test_negative_seed(tmp_path, key):
    proc, results = _cli(tmp_path, *FAST_CLI, f"{key}=-1")
    line = _assert_refused(proc, results, f"{key}=-1", "non-negative integer")
    assert line == f"{ERROR_PREFIX} {key}=-1 must be a non-negative integer"


def test_local_file_missing(tmp_path):
    missing = tmp_path / "nope.csv"
    proc, results = _cli(tmp_path, *FILES_CLI, "dataset=files", f"dataset.path={missing}")
    _assert_refused(proc, results, f"dataset.path={missing}", "does not exist")


def test_local_file_without_label_column(tmp_path):
    path = _write_csv(
        tmp_path / "nolabel.csv",
        ["a", "b", "y"],
        [[i, 2 * i, "xyz"[i % 3]] for i in range(30)],
    )
    proc, results = _cli(
        tmp_path, *FILES_CLI, "dataset=files", f"dataset.path={path}", "dataset.label_column=label"
    )
    _assert_refused(proc, results, "dataset.label_column='label'", "columns: a, b, y")


def test_local_file_with_single_class(tmp_path):
    path = _write_csv(
        tmp_path / "single.csv",
        ["a", "b", "label"],
        [[i, 0.5 * i, "only"] for i in range(60)],
    )
    proc, results = _cli(tmp_path, *FILES_CLI, "dataset=files", f"dataset.path={path}")
    _assert_refused(proc, results, "dataset", str(path), "single class ('only')", "at least 2")


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("strategy._target_=os.system", "strategy._target_=os.system"),
        ("+dataset.x._target_=builtins.eval", "dataset.x._target_=builtins.eval"),
    ],
)
def test_target_outside_allowlist(tmp_path, override, where):
    proc, results = _cli(tmp_path, *FAST_CLI, override)
    _assert_refused(proc, results, where, "is not allowed", "targets must come from: labelbench")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "budget=nonexistent",
            "budget=nonexistent is not an option of budget; options: fraction, full, per_class,"
            " total",
        ),
        ("nosuchkey=1", "nosuchkey is not a config key or group; keys: "),
    ],
)
def test_unknown_option(tmp_path, override, expected):
    proc, results = _cli(tmp_path, *FAST_CLI, override, real=True)
    line = _assert_refused(proc, results, expected)
    assert line.startswith(f"{ERROR_PREFIX} {expected}")
    assert "To append" not in proc.stderr
    assert not results.exists()  # refused before Hydra writes its output folder


def test_local_file_path_not_given(tmp_path):
    proc, results = _cli(tmp_path, *FILES_CLI, "dataset=files")
    line = _assert_refused(proc, results, "dataset.path has no value", "a CSV or Parquet file")
    assert line.endswith("set it on the command line (dataset.path=...)")


# --- in-process variants -------------------------------------------------------------------


@pytest.mark.parametrize("fraction", ["0", "0.0", "1.5", "-0.1", "2", "1.0001", "abc"])
def test_fraction_variants_refused_in_process(compose_fast, tmp_path, fraction):
    cfg, choices = compose_fast("budget=fraction", f"budget.fraction={fraction}")
    with pytest.raises(ConfigError, match=r"^budget\.fraction=\S+ is outside \(0, 1\]$"):
        run(cfg, choices)
    assert _records(tmp_path / "results") == []


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (("budget=total", "budget.total=0"), r"^budget\.total=0 must be a positive integer$"),
        (("budget=total", "budget.total=-3"), r"^budget\.total=-3 must be a positive integer$"),
        (("budget=per_class", "budget.per_class=0"), r"^budget\.per_class=0 must be a positive"),
        (("budget.val_share=1.5",), r"^budget\.val_share=1\.5 is outside \(0, 1\)$"),
        (("dataset.val_fraction=1",), r"^dataset\.val_fraction=1 is outside \[0, 1\)$"),
        (("dataset.n_classes=1",), r"^dataset\.n_classes=1 must be at least 2$"),
    ],
)
def test_other_bad_values_refused_in_process(compose_fast, tmp_path, overrides, pattern):
    cfg, choices = compose_fast(*overrides)
    with pytest.raises(ConfigError, match=pattern):
        run(cfg, choices)
    assert _records(tmp_path / "results") == []


@pytest.mark.parametrize(
    "target",
    [
        "numpy.ctypeslib.load_library",
        "torch.serialization.load",
        "torch.ops.load_library",
        "torch.utils.cpp_extension.load_inline",
        "torch.utils.model_zoo.load_url",
        "pytorch_lightning.LightningModule.load_from_checkpoint",
    ],
)
def test_code_loaders_refused(target):
    with pytest.raises(ConfigError, match="is not allowed"):
        check_targets({"strategy": {"_target_": target}})


# --- a good local table, end to end --------------------------------------------------------

CLASS_NAMES = ("cat", "dog", "emu")


def _table(n: int = 210):
    import pandas as pd

    rng = np.random.default_rng(7)
    y = np.arange(n) % 3
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, -4.0], [0.0, 4.0, 4.0]])
    x = centers[y] + rng.normal(scale=0.5, size=(n, 3))
    return pd.DataFrame(
        {
            "f1": x[:, 0],
            "f2": x[:, 1],
            "f3": x[:, 2],
            "species": np.asarray(CLASS_NAMES)[y],
        }
    )


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_good_files_dataset_runs_end_to_end(compose_fast, tmp_path, ext):
    df = _table()
    path = tmp_path / f"animals.{ext}"
    if ext == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    cfg, choices = compose_fast(
        "dataset=files",
        f"dataset.path={path}",
        "dataset.label_column=species",
        "budget=total",
        "budget.total=30",
        *FILES_CLI,
        fast=False,
    )

    task = instantiate(cfg.dataset).load(cfg.split_seed)
    assert task.classes == CLASS_NAMES
    assert task.input_shape == (3,)
    assert len(task.y) == len(df)
    # class ids follow the sorted label strings, row by row
    np.testing.assert_array_equal(np.asarray(CLASS_NAMES)[task.y], df["species"].to_numpy())

    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.error is None
    assert record.choices["dataset"] == "files[animals]"  # named by its file
    assert record.config["dataset"]["path"] == str(path)
    assert record.labels["count"] == 30
    assert set(record.labels["indices"]) <= set(task.split.pool.tolist())
    # balanced reveal of 30 labels over 3 classes: 10 of each
    revealed = df["species"].to_numpy()[record.labels["indices"]]
    assert sorted(revealed.tolist()) == sorted(list(CLASS_NAMES) * 10)
    # well-separated clusters: even 20 steps learn far above chance (1/3) if labels match rows
    assert record.metrics["test/acc"] > 0.6, record.metrics
    assert re.fullmatch(r"[0-9a-f]{16}", record.run_key)
    assert _records(tmp_path / "results") == [
        tmp_path / "results" / "runs" / f"{record.run_key}.json"
    ]
