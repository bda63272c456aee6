"""Classical strategies (knn, label_spreading) and their shared predictor: real runs, the
column mapping onto all classes, and bad arguments refused before any fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_here
from labelbench.config import ConfigError
from labelbench.data.sources import Synthetic
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.run import run
from labelbench.strategies.classical import ClassifierPredictor, flat
from labelbench.strategies.knn import KNN
from labelbench.strategies.label_spreading import LabelSpreading

ERROR_PREFIX = "labelbench-run: error:"
CLI_FAST = ["dataset=synthetic", "dataset.n_samples=400", "logger=none"]


def _records(results: Path) -> list[Path]:
    return sorted((results / "runs").glob("*.json"))


def _pool_and_task(
    x: np.ndarray, revealed: list[int], labels: list[int], num_classes: int
) -> tuple[LabelPool, TaskView]:
    """Every item is in the pool; `revealed` of them carry `labels`, the rest are unlabeled."""
    everything = np.arange(len(x))
    pool = LabelPool(
        indices=np.asarray(revealed),
        labels=np.asarray(labels),
        unlabeled=np.setdiff1d(everything, revealed),
        val_indices=np.array([], dtype=np.int64),
        val_labels=np.array([], dtype=np.int64),
        num_classes=num_classes,
    )
    task = TaskView(
        name="toy",
        x=x,
        classes=tuple(str(c) for c in range(num_classes)),
        modality="vector",
        input_shape=tuple(x.shape[1:]),
        pool=everything,
        val=np.array([], dtype=np.int64),
    )
    return pool, task


def _blobs(n_per: int = 15, num_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs, class c centred at (10c, 10c)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), n_per)
    x = 10.0 * y[:, None] + rng.normal(scale=0.5, size=(len(y), 2))
    return x, y


# --- through the real run ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ("strategy=knn",),
        ("strategy=knn", "strategy.metric=cosine", "strategy.weights=uniform"),
        ("strategy=knn", "strategy.metric=manhattan", "strategy.k=1"),
        ("strategy=label_spreading",),
    ],
    ids=["knn", "knn-cosine-uniform", "knn-manhattan-1", "label_spreading"],
)
def test_runs_end_to_end_on_synthetic(compose_fast, tmp_path, overrides):
    record = run(*compose_fast(*overrides))
    assert record.status == "ok", record.error
    assert record.choices["strategy"] == overrides[0].split("=")[1]
    assert record.metrics["test/acc"] > 0.5, record.metrics  # 4 classes: chance is 0.25
    assert record.metrics["fit/classes_seen"] == 4
    if record.choices["strategy"] == "knn":
        assert record.metrics["fit/neighbours"] == record.config["strategy"]["k"]
    else:
        assert record.metrics["fit/converged"] == 1.0
        assert 1 <= record.metrics["fit/iterations"] < record.config["strategy"]["max_iter"]
    assert _records(tmp_path / "results") == [
        tmp_path / "results" / "runs" / f"{record.run_key}.json"
    ]


def test_label_spreading_beats_knn_on_digits_at_40_labels(compose_fast):
    # Measured (test/acc, seeds 0/1/2): label_spreading 0.944/0.944/0.911, knn 0.864/0.830/0.786.
    for seed in (0, 1, 2):
        acc = {}
        for strategy in ("knn", "label_spreading"):
            record = run(
                *compose_fast(
                    "dataset=digits", "budget.total=40", f"strategy={strategy}", f"seed={seed}"
                )
            )
            assert record.status == "ok", record.error
            acc[strategy] = record.metrics["test/acc"]
        assert acc["label_spreading"] > acc["knn"] + 0.05, (seed, acc)


# --- the shared predictor ------------------------------------------------------------------


class _Fixed:
    """A stand-in classifier: the same probabilities for every row; remembers its input."""

    def __init__(self, row: list[float]) -> None:
        self.row = np.asarray(row)
        self.seen_shape: tuple[int, ...] | None = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.seen_shape = x.shape
        return np.tile(self.row, (len(x), 1))


def test_predictor_maps_seen_columns_and_zeroes_unseen_classes():
    clf = _Fixed([0.2, 0.8])
    predictor = ClassifierPredictor(clf, 5, np.array([1, 3]), {"classes_seen": 2.0})
    proba = predictor.predict_proba(np.zeros((4, 2, 3)))  # image-like input is flattened
    assert clf.seen_shape == (4, 6)
    np.testing.assert_array_equal(proba, np.tile([0.0, 0.2, 0.0, 0.8, 0.0], (4, 1)))
    assert predictor.fit_info == {"classes_seen": 2.0}


def test_predictor_with_a_single_observed_class_never_calls_the_classifier():
    predictor = ClassifierPredictor(None, 4, np.array([2]), {})  # None: any call would fail
    proba = predictor.predict_proba(np.ones((3, 5)))
    np.testing.assert_array_equal(proba, np.tile([0.0, 0.0, 1.0, 0.0], (3, 1)))


def test_flat():
    assert flat(np.zeros((3, 2, 4))).shape == (3, 8)
    assert flat(np.zeros(3)).shape == (3, 1)
    assert flat([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("strategy", [KNN(k=1), LabelSpreading(k=3)], ids=["knn", "spreading"])
def test_unseen_class_gets_zero_probability(strategy):
    x, y = _blobs(num_classes=3)
    revealed = [0, 1, 15, 16]  # classes 0 and 1 only; class 2 never observed
    pool, task = _pool_and_task(x, revealed, y[revealed].tolist(), num_classes=3)
    strategy.check(pool, task)
    predictor = strategy.fit(pool, task, None, None, seed=0)
    proba = predictor.predict_proba(x)
    assert proba.shape == (len(x), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(proba[:, 2] == 0)
    assert predictor.fit_info["classes_seen"] == 2
    # the two observed blobs are recovered
    np.testing.assert_array_equal(proba[y < 2].argmax(axis=1), y[y < 2])


@pytest.mark.parametrize("strategy", [KNN(k=2), LabelSpreading(k=3)], ids=["knn", "spreading"])
def test_single_observed_class_predicts_it_everywhere(strategy):
    x, _ = _blobs(num_classes=3)
    pool, task = _pool_and_task(x, [20, 21, 22], [1, 1, 1], num_classes=3)
    predictor = strategy.fit(pool, task, None, None, seed=0)
    proba = predictor.predict_proba(x)
    np.testing.assert_array_equal(proba, np.tile([0.0, 1.0, 0.0], (len(x), 1)))
    assert predictor.fit_info["classes_seen"] == 1


def test_label_spreading_uses_unlabeled_items():
    # Two parallel chains of items 0.7 apart, 6 apart from each other, one revealed item each
    # at opposite ends: the nearest revealed item is wrong for about half of them (measured
    # 0.43 accuracy); spreading along each chain of unlabeled items gets every item right.
    t = np.linspace(0.0, 20.0, 30)
    x = np.concatenate([np.c_[t, np.zeros_like(t)], np.c_[t[::-1] - 5.0, np.full_like(t, 6.0)]])
    y = np.repeat([0, 1], 30)
    revealed = [0, 30]  # (0, 0) for class 0, (15, 6) for class 1
    pool, task = _pool_and_task(x, revealed, [0, 1], num_classes=2)
    spread = LabelSpreading(k=3, alpha=0.9, max_iter=1000).fit(pool, task, None, None, seed=0)
    knn = KNN(k=1).fit(pool, task, None, None, seed=0)
    acc_spread = (spread.predict_proba(x).argmax(axis=1) == y).mean()
    acc_knn = (knn.predict_proba(x).argmax(axis=1) == y).mean()
    assert spread.fit_info["converged"] == 1.0
    assert acc_spread == 1.0
    assert acc_knn < 0.6, acc_knn


def test_label_spreading_point_near_an_unlabeled_component_gets_the_prior():
    # Two far-apart groups; only the first holds revealed items, so the second's kNN graph
    # component carries no label mass and scikit-learn alone returns 0/0 there.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(100, 1, (20, 2))])
    pool, task = _pool_and_task(x, [0, 1, 2], [0, 2, 0], num_classes=3)
    predictor = LabelSpreading(k=3).fit(pool, task, None, None, seed=0)
    far = predictor.predict_proba(np.array([[100.0, 100.0]]))
    np.testing.assert_allclose(far, [[2 / 3, 0.0, 1 / 3]])
    near = predictor.predict_proba(np.array([[0.0, 0.0]]))
    assert np.isfinite(near).all() and near[0, 1] == 0
    np.testing.assert_allclose(near.sum(), 1.0)


# --- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: KNN(k=0), "k=0 must be a positive integer"),
        (lambda: KNN(k=-2), "k=-2 must be a positive integer"),
        (lambda: KNN(k=2.5), "k=2.5 must be a positive integer"),
        (lambda: KNN(k=True), "k=True must be a positive integer"),
        (lambda: KNN(weights="x"), "weights='x' is not one of uniform, distance"),
        (lambda: KNN(metric="minkowski"), "metric='minkowski' is not one of euclidean, "),
        (lambda: LabelSpreading(k=0), "k=0 must be a positive integer"),
        (lambda: LabelSpreading(k="7"), "k=7 must be a positive integer"),
        (lambda: LabelSpreading(alpha=0), "alpha=0 is outside (0, 1)"),
        (lambda: LabelSpreading(alpha=1.0), "alpha=1.0 is outside (0, 1)"),
        (lambda: LabelSpreading(alpha=-0.5), "alpha=-0.5 is outside (0, 1)"),
        (lambda: LabelSpreading(alpha="0.5"), "alpha=0.5 is outside (0, 1)"),
        (lambda: LabelSpreading(max_iter=0), "max_iter=0 must be a positive integer"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_check_bounds_are_inclusive_where_they_should_be():
    x, y = _blobs(n_per=4, num_classes=2)  # 8 pool items
    pool, task = _pool_and_task(x, [0, 4, 1], y[[0, 4, 1]].tolist(), num_classes=2)
    KNN(k=3).check(pool, task)  # as many neighbours as labels: fine
    with pytest.raises(
        ConfigError, match=r"^k=4 is larger than the 3 revealed labels; allowed: 1\.\.3$"
    ):
        KNN(k=4).check(pool, task)
    LabelSpreading(k=7).check(pool, task)
    LabelSpreading(k=7).fit(pool, task, None, None, seed=0)  # the largest k it allows does fit
    with pytest.raises(
        ConfigError, match=r"^k=8 is larger than the pool \(8 items\); allowed: 1\.\.7$"
    ):
        LabelSpreading(k=8).check(pool, task)


def _assert_refused(proc, results: Path, fragment: str) -> None:
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 2, detail
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, detail
    assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert "Traceback" not in proc.stderr, detail
    assert _records(results) == [], detail


def test_cli_refuses_knn_k_larger_than_revealed_labels(tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        *CLI_FAST,
        "strategy=knn",
        "strategy.k=50",
        "budget.total=20",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    _assert_refused(
        proc, results, "strategy.k=50 is larger than the 20 revealed labels; allowed: 1..20"
    )


def test_cli_refuses_label_spreading_k_larger_than_pool(tmp_path):
    n_pool = len(Synthetic(n_samples=400).load(0).split.pool)  # what the CLI sees
    assert n_pool < 500
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        *CLI_FAST,
        "strategy=label_spreading",
        "strategy.k=500",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    _assert_refused(
        proc,
        results,
        f"strategy.k=500 is larger than the pool ({n_pool} items); allowed: 1..{n_pool - 1}",
    )
