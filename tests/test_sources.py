"""Dataset sources (Digits, Synthetic, Files) and the stratified pool/val/test split."""

from __future__ import annotations

import numpy as np
import pytest

from labelbench.config import ConfigError
from labelbench.data.sources import Digits, Files, Synthetic
from labelbench.data.task import stratified_split

# --- Digits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return Digits().load(0)


def test_digits_arrays():
    x, y, classes, shape = Digits().arrays()
    assert x.shape == (1797, 64)
    assert x.dtype == np.float32
    assert x.min() == 0.0
    assert x.max() == 1.0
    assert y.shape == (1797,)
    assert y.dtype == np.int64
    assert classes == tuple(str(d) for d in range(10))
    assert shape == (1, 8, 8)
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10
    assert counts.min() >= 170 and counts.max() <= 185  # sklearn's digits are near-balanced


def test_digits_task(digits):
    assert digits.name == "digits"
    assert digits.modality == "image"
    assert digits.num_classes == 10
    assert digits.input_shape == (1, 8, 8)
    assert digits.x.shape == (1797, 64)
    assert not digits.x.flags.writeable and not digits.y.flags.writeable
    sizes = [len(digits.split.pool), len(digits.split.val), len(digits.split.test)]
    assert sum(sizes) == 1797
    # per class: round(0.2 n) test, round(0.15 n) val
    counts = np.bincount(digits.y, minlength=10)
    assert len(digits.split.test) == sum(round(0.2 * c) for c in counts)
    assert len(digits.split.val) == sum(round(0.15 * c) for c in counts)


# --- Synthetic ------------------------------------------------------------------------------


def test_synthetic_sizes():
    src = Synthetic(n_samples=300, n_features=7, n_informative=4, n_classes=3)
    x, y, classes, shape = src.arrays()
    assert x.shape == (300, 7)
    assert y.shape == (300,)
    assert set(np.unique(y).tolist()) == {0, 1, 2}
    assert classes == ("class_0", "class_1", "class_2")
    assert shape == (7,)
    task = src.load(5)
    assert task.x.dtype == np.float32
    assert task.num_classes == 3
    assert task.name == "synthetic" and task.modality == "vector"
    assert len(task.split.pool) + len(task.split.val) + len(task.split.test) == 300


def test_synthetic_data_fixed_by_generator_seed():
    a = Synthetic(n_samples=200, n_classes=2, generator_seed=1).arrays()
    b = Synthetic(n_samples=200, n_classes=2, generator_seed=1).arrays()
    c = Synthetic(n_samples=200, n_classes=2, generator_seed=2).arrays()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # the split seed moves the split, not the data
    t0, t1 = (
        Synthetic(n_samples=200, n_classes=2).load(0),
        Synthetic(n_samples=200, n_classes=2).load(1),
    )
    np.testing.assert_array_equal(t0.x, t1.x)
    assert not np.array_equal(t0.split.pool, t1.split.pool)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_classes": 1}, r"^n_classes=1 must be at least 2$"),
        ({"n_features": 5, "n_informative": 6}, r"^n_informative=6 must be in 1\.\.n_features=5$"),
        ({"n_informative": 0}, r"^n_informative=0 "),
        ({"n_samples": 30, "n_classes": 4}, r"^n_samples=30 must be at least"),
        ({"val_fraction": -0.1}, r"^val_fraction=-0.1 is outside \[0, 1\)$"),
        ({"test_fraction": 1.0}, r"^test_fraction=1\.0 is outside \(0, 1\)$"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"leaves no pool"),
    ],
)
def test_synthetic_bad_arguments(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Synthetic(**kwargs)


# --- Files ----------------------------------------------------------------------------------


def _frame(n: int = 60):
    import pandas as pd

    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "f1": rng.normal(size=n),
            "f2": np.arange(n, dtype=np.int64),
            "f3": rng.uniform(size=n),
            "note": [f"row{i}" for i in range(n)],
            "label": np.array(["zebra", "ant", "bee"])[np.arange(n) % 3],
        }
    )


def _write(df, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.pq"])
def test_files_reads_selected_columns(tmp_path, name):
    df = _frame()
    path = _write(df, tmp_path / name)
    src = Files(str(path), label_column="label", feature_columns=["f3", "f1"])
    x, y, classes, shape = src.arrays()
    assert shape == (2,)
    np.testing.assert_allclose(x, df[["f3", "f1"]].to_numpy(), rtol=1e-6)
    assert classes == ("ant", "bee", "zebra")  # sorted label values
    np.testing.assert_array_equal(np.asarray(classes)[y], df["label"].to_numpy())
    assert y.dtype == np.int64
    task = src.load(0)
    assert task.name == "t"
    assert task.x.dtype == np.float32 and task.x.shape == (60, 2)
    assert task.num_classes == 3


def test_files_default_features_are_all_other_columns(tmp_path):
    df = _frame().drop(columns=["note"])
    path = _write(df, tmp_path / "d.csv")
    x, _, _, shape = Files(str(path)).arrays()
    assert shape == (3,)
    np.testing.assert_allclose(x, df[["f1", "f2", "f3"]].to_numpy(), rtol=1e-6)


def test_files_integer_labels_become_string_classes(tmp_path):
    df = _frame().drop(columns=["note"])
    df["label"] = np.arange(len(df)) % 2 * 10 + 5  # 5 and 15
    path = _write(df, tmp_path / "ints.parquet")
    _, y, classes, _ = Files(str(path)).arrays()
    assert classes == ("5", "15")
    np.testing.assert_array_equal(y, (df["label"].to_numpy() == 15).astype(np.int64))


@pytest.mark.parametrize("name", ["t.csv", "t.parquet"])
def test_files_non_numeric_feature_is_refused(tmp_path, name):
    path = _write(_frame(), tmp_path / name)
    src = Files(str(path), feature_columns=["f1", "note"])
    with pytest.raises(ConfigError, match=r"feature_columns of .* must be numeric"):
        src.arrays()
    # the default (every other column) takes in the text column too
    with pytest.raises(ConfigError, match="must be numeric"):
        Files(str(path)).load(0)


def test_files_missing_feature_column_is_refused(tmp_path):
    path = _write(_frame(), tmp_path / "t.csv")
    with pytest.raises(ConfigError, match=r"^feature_columns=\['f1', 'nope'\] must name columns"):
        Files(str(path), feature_columns=["f1", "nope"]).arrays()


def test_files_non_finite_feature_is_refused(tmp_path):
    df = _frame().drop(columns=["note"])
    df.loc[4, "f1"] = np.nan
    path = _write(df, tmp_path / "nan.parquet")
    with pytest.raises(ConfigError, match="missing or non-finite"):
        Files(str(path)).arrays()


@pytest.mark.parametrize("name", ["t.txt", "t.json", "t", "t.csv.gz", "t.xlsx"])
def test_files_unknown_extension_is_refused(tmp_path, name):
    with pytest.raises(
        ConfigError, match=r"has an unknown extension; allowed: \.csv, \.parquet, \.pq$"
    ):
        Files(str(tmp_path / name))


def test_files_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^path=.*nope\.csv does not exist"):
        Files(str(tmp_path / "nope.csv")).arrays()


def test_files_missing_label_column_is_refused(tmp_path):
    path = _write(_frame(), tmp_path / "t.csv")
    with pytest.raises(
        ConfigError, match=r"^label_column='y' is not a column of .*; columns: f1, f2"
    ):
        Files(str(path), label_column="y").arrays()


def test_files_single_class_is_refused(tmp_path):
    df = _frame().drop(columns=["note"])
    df["label"] = "same"
    path = _write(df, tmp_path / "one.csv")
    with pytest.raises(ConfigError, match=r"has a single class \('same'\)"):
        Files(str(path)).load(0)


def test_files_label_among_features_is_refused(tmp_path):
    df = _frame().drop(columns=["note"])
    df["label"] = np.arange(len(df)) % 3
    path = _write(df, tmp_path / "leak.csv")
    with pytest.raises(ConfigError):
        Files(str(path), feature_columns=["f1", "label"]).arrays()


# --- stratified_split -----------------------------------------------------------------------

Y = np.repeat(np.arange(4), [200, 120, 60, 20])
rng_perm = np.random.default_rng(0).permutation(len(Y))
Y = Y[rng_perm]  # classes interleaved, not in blocks


def test_split_disjoint_and_covering():
    s = stratified_split(Y, 0.15, 0.2, seed=0)
    parts = [s.pool, s.val, s.test]
    for p in parts:
        assert p.dtype == np.int64
        assert np.all(np.diff(p) > 0)  # sorted, no repeats
        assert not p.flags.writeable
    assert not set(s.pool) & set(s.val)
    assert not set(s.pool) & set(s.test)
    assert not set(s.val) & set(s.test)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(Y)))


def test_split_keeps_class_proportions():
    s = stratified_split(Y, 0.15, 0.2, seed=0)
    counts = np.bincount(Y)
    np.testing.assert_array_equal(np.bincount(Y[s.test], minlength=4), [40, 24, 12, 4])
    np.testing.assert_array_equal(np.bincount(Y[s.val], minlength=4), [30, 18, 9, 3])
    np.testing.assert_array_equal(np.bincount(Y[s.pool], minlength=4), [130, 78, 39, 13])
    overall = counts / counts.sum()
    for part in (s.pool, s.val, s.test):
        share = np.bincount(Y[part], minlength=4) / len(part)
        np.testing.assert_allclose(share, overall, atol=0.01)


def test_split_deterministic_per_seed():
    a = stratified_split(Y, 0.15, 0.2, seed=3)
    b = stratified_split(Y, 0.15, 0.2, seed=3)
    c = stratified_split(Y, 0.15, 0.2, seed=4)
    for name in ("pool", "val", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.test, c.test)
    assert not np.array_equal(a.pool, c.pool)
    # same sizes per class whatever the seed
    np.testing.assert_array_equal(np.bincount(Y[a.test]), np.bincount(Y[c.test]))


def test_split_depends_only_on_labels_not_on_order_of_calls():
    first = stratified_split(Y, 0.1, 0.3, seed=9).test
    stratified_split(np.arange(50) % 2, 0.2, 0.2, seed=9)  # unrelated call in between
    np.testing.assert_array_equal(stratified_split(Y, 0.1, 0.3, seed=9).test, first)
