"""The asymmetric, instance-dependent and label-file regimes: realised rates against their
definitions, labels read at the items' dataset indices through real runs, stacking, paired
reveals, and bad settings refused before training (in process and on the command line)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import refusal_lines, revealed
from labelbench.config import ConfigError
from labelbench.data.sources import Synthetic
from labelbench.labels import (
    Asymmetric,
    Clean,
    Full,
    Instance,
    Labeler,
    LabelFile,
    LongTail,
    Observed,
    Stack,
    Total,
    reveal,
    shape,
)
from labelbench.labels.label_file import _torch_load
from labelbench.run import run

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "logger=none"]
N_ITEMS = 400  # rows of that dataset: what a label file for it must cover
FAST_FIT = ["strategy=logreg"]  # these tests are about labels: the quickest learner will do

# Written out from the references, not read from the code under test: Patrini et al. 2017
# (giorgiop/loss-correction noise.py) and DivideMix's `transition` (dataloader_cifar.py).
CIFAR10_MAP = {
    9: 1,
    2: 0,
    4: 7,
    3: 5,
    5: 3,
}  # truck->automobile, bird->airplane, deer->horse, cat<->dog
MNIST_MAP = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def observe(regime, y, k, r, x=None):
    items = np.arange(len(y))
    return regime.observe_at(Observed.of_labels(y), x, items, k, r).labels


@pytest.fixture(scope="module")
def synthetic():
    return Synthetic(n_samples=N_ITEMS).load(split_seed=0)


# --- asymmetric -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "mapping"), [("cifar10", CIFAR10_MAP), ("mnist", MNIST_MAP)])
@pytest.mark.parametrize("rate", [0.2, 0.4, 0.7])
def test_asymmetric_flips_exactly_its_share_of_each_mapped_class(name, mapping, rate):
    y = rng(1).integers(0, 10, size=5_000)
    for seed in range(3):
        observed = observe(Asymmetric(rate, map=name), y, 10, rng(seed))
        for c in range(10):
            mine = y == c
            flipped = observed[mine] != c
            if c in mapping:
                assert flipped.sum() == round(rate * mine.sum()), (c, seed)
                assert np.all(observed[mine][flipped] == mapping[c])  # only to the mapped class
            else:
                assert not flipped.any(), c  # unmapped classes are untouched


def test_asymmetric_custom_map_swaps_without_flipping_back():
    y = np.repeat(np.arange(4), 250)
    observed = observe(Asymmetric(0.4, map={0: 1, 1: 0, 2: 3}), y, 4, rng())
    # a 0 observed as 1 is not flipped back: exactly 100 of each 250 move, to the mapped class
    assert np.sum((y == 0) & (observed == 1)) == 100
    assert np.sum((y == 1) & (observed == 0)) == 100
    assert np.sum((y == 2) & (observed == 3)) == 100
    assert np.array_equal(observed[y == 3], y[y == 3])
    assert np.mean(observed != y) == 300 / 1000


def test_asymmetric_is_reproducible_and_labelled():
    y = rng().integers(0, 10, size=1_000)
    regime = Asymmetric(0.4)
    assert np.array_equal(observe(regime, y, 10, rng(3)), observe(regime, y, 10, rng(3)))
    assert not np.array_equal(observe(regime, y, 10, rng(3)), observe(regime, y, 10, rng(4)))
    assert regime.label() == "asymmetric(cifar10 0.4)"
    assert Asymmetric(0.2, map={0: 1}).label() == "asymmetric({0:1} 0.2)"


# --- instance-dependent ---------------------------------------------------------------


def _truncated_normal_mean(mu: float, sigma: float) -> float:
    """Mean of N(mu, sigma^2) truncated to [0, 1], by its closed form."""
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    a, b = (0 - mu) / sigma, (1 - mu) / sigma
    return mu + sigma * (phi(a) - phi(b)) / (cdf(b) - cdf(a))


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4])
def test_instance_flip_probabilities_follow_the_formula(rate):
    """x = 0 makes every logit x W[y] equal: p(own) = 1 - E[q], p(j) = E[q] / (K - 1), with
    E[q] the truncated normal's mean, whatever W is."""
    n, k = 40_000, 5
    y = np.repeat(np.arange(k), n // k)
    observed = observe(Instance(rate), y, k, rng(), x=np.zeros((n, 3)))
    mean_q = _truncated_normal_mean(rate, 0.1)
    counts = np.zeros((k, k))
    np.add.at(counts, (y, observed), 1)
    freq = counts / counts.sum(axis=1, keepdims=True)
    expected = np.full((k, k), mean_q / (k - 1))
    np.fill_diagonal(expected, 1 - mean_q)
    assert np.abs(freq - expected).max() < 0.015, (freq, expected)


def test_instance_flips_go_where_x_w_of_the_given_class_points():
    """With inputs so large that the softmax is one-hot, a flipped item lands on the other
    class with the largest x W[y]: W drawn as one (K, d, K) normal draw, indexed by y."""
    n, k, d = 3_000, 4, 6
    x = rng(1).normal(size=(n, d)) * 1_000
    y = rng(2).integers(0, k, size=n)
    r = rng(3)
    w = Instance._annotators(r).standard_normal((k, d, k))
    observed = observe(Instance(0.5), y, k, r, x=x)
    logits = np.einsum("nd,ndk->nk", x, w[y])
    logits[np.arange(n), y] = -np.inf
    flipped = observed != y
    assert 0.4 < flipped.mean() < 0.6
    assert np.array_equal(observed[flipped], logits[flipped].argmax(axis=1))


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_instance_realised_rate_is_close_to_the_rate(rate):
    n, k = 4_000, 10
    x = rng(1).normal(size=(n, 2, 4))  # flattened to d = 8
    y = rng(2).integers(0, k, size=n)
    observed = observe(Instance(rate), y, k, rng(), x=x)
    assert abs(np.mean(observed != y) - _truncated_normal_mean(rate, 0.1)) < 0.025
    assert abs(np.mean(observed != y) - rate) < 0.03


def test_instance_is_reproducible_and_shares_w_between_pool_and_validation():
    n, k = 2_000, 4
    x = rng(1).normal(size=(n, 5)) * 1_000
    y = rng(2).integers(0, k, size=n)
    regime = Instance(0.9)
    assert np.array_equal(observe(regime, y, k, rng(7), x), observe(regime, y, k, rng(7), x))
    assert not np.array_equal(observe(regime, y, k, rng(7), x), observe(regime, y, k, rng(8), x))
    # the pool call and the validation call of one run draw from one generator in turn:
    # different flips, the same W (so a flipped item goes to the same class in both)
    r = rng(7)
    pool = observe(regime, y, k, r, x)
    val = regime.observe_val_at(y, x, np.arange(n), k, r)
    both = (pool != y) & (val != y)
    assert both.sum() > n / 2 and not np.array_equal(pool, val)
    assert np.array_equal(pool[both], val[both])
    with pytest.raises(ValueError, match="inputs"):
        regime.observe(Observed.of_labels(y), None, k, r)
    assert regime.label() == "instance(0.9)"


def test_noise_regimes_reveal_the_same_items_as_clean(synthetic, tmp_path):
    """Paired splits: which items are bought never depends on the regime."""
    path = tmp_path / "labels.npy"
    np.save(path, rng().integers(0, 4, size=N_ITEMS))
    clean, _ = reveal(synthetic, Clean(), Total(40), seed=0, split_seed=0)
    for regime in (Asymmetric(0.4, map={0: 1}), Instance(0.3), LabelFile(str(path))):
        pool, acc = reveal(synthetic, regime, Total(40), seed=0, split_seed=0)
        assert np.array_equal(pool.indices, clean.indices), regime.label()
        assert np.array_equal(pool.val_indices, clean.val_indices)
        assert acc.noise_rate == pytest.approx(np.mean(pool.labels != synthetic.y[pool.indices]))


# --- label file -------------------------------------------------------------------------


def _file_labels(seed: int = 5) -> np.ndarray:
    """Labels for the synthetic dataset's 400 items, about half of them wrong."""
    truth = Synthetic(n_samples=N_ITEMS).load(0).y
    noisy = truth.copy()
    wrong = rng(seed).random(N_ITEMS) < 0.5
    noisy[wrong] = (truth[wrong] + rng(seed + 1).integers(1, 4, size=wrong.sum())) % 4
    return noisy


def _write(kind: str, folder, labels: np.ndarray) -> tuple[str, list[str]]:
    """A label file of `kind` holding `labels`; (path, the regime overrides to read it)."""
    truth = Synthetic(n_samples=N_ITEMS).load(0).y
    if kind == "csv":
        path = folder / "labels.csv"
        path.write_text("".join(f"{v}\n" for v in labels))  # one column, no header
        return str(path), []
    if kind == "csv_column":
        path = folder / "votes.csv"
        rows = [f"{i},{(v + 1) % 4},{v}" for i, v in enumerate(labels)]
        path.write_text("id,other,annotator_b\n" + "\n".join(rows) + "\n")
        return str(path), ["regime.column=annotator_b"]
    if kind == "npy":
        path = folder / "labels.npy"
        np.save(path, labels.astype(np.int32))
        return str(path), []
    import torch

    path = folder / "CIFAR-10_human.pt"
    other = (labels + 1) % 4
    data = {
        "clean_label": truth,  # the truth: never to be used as annotations
        "aggre_label": other,
        "worse_label": labels,
        "random_label1": other,
        "random_label2": other,
        "random_label3": other,
    }
    torch.save(data, path)
    return str(path), ["regime.column=worst"]


@pytest.mark.parametrize("kind", ["csv", "csv_column", "npy", "pt"])
def test_label_file_labels_the_items_at_their_dataset_indices(kind, compose_fast, tmp_path):
    labels = _file_labels()
    path, extra = _write(kind, tmp_path, labels)
    cfg, choices = compose_fast(
        *SYNTHETIC, *FAST_FIT, "regime=label_file", f"regime.path={path}", *extra, fast=False
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    _, task, pool = revealed(cfg)
    assert np.array_equal(pool.labels, labels[pool.indices])  # pool items: their file labels
    assert np.array_equal(pool.val_labels, labels[pool.val_indices])  # validation items too
    idx = np.asarray(record.labels["indices"])
    assert np.array_equal(idx, pool.indices)
    assert record.labels["noise_rate"] == pytest.approx(np.mean(labels[idx] != task.y[idx]))
    assert record.labels["noise_rate"] > 0.3  # the file's noise, not the truth's
    val_rate = np.mean(labels[pool.val_indices] != task.y[pool.val_indices])
    assert record.labels["realised"]["val_noise_rate"] == pytest.approx(val_rate)
    assert record.labels["realised"]["label_file"] == path
    assert record.labels["regime"].startswith("label_file(")


def test_label_file_reads_cifar_n_files_written_under_old_numpy(tmp_path):
    """CIFAR-N's .pt files hold numpy arrays pickled as numpy.core.multiarray (numpy < 2);
    weights_only loading must take them, and aliases pick their keys."""
    import zipfile

    import torch

    data = {"clean_label": np.arange(6) % 3, "worse_label": np.array([1, 1, 0, 2, 0, 0])}
    data["aggre_label"] = np.array([0, 1, 2, 0, 1, 0])
    new = tmp_path / "new.pt"
    torch.save(data, new)
    old = tmp_path / "old.pt"
    with zipfile.ZipFile(new) as src, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            blob = src.read(info.filename)
            if info.filename.endswith("data.pkl"):  # protocol 2: GLOBAL names end in newlines
                assert b"cnumpy._core.multiarray\n" in blob
                blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            dst.writestr(info, blob)
    assert np.array_equal(_torch_load(old)["worse_label"], data["worse_label"])
    default = LabelFile(str(old))
    assert default.key == "worse_label" and np.array_equal(default.labels, data["worse_label"])
    assert default.label() == "label_file(old worse_label)"
    assert np.array_equal(LabelFile(str(old), column="aggre").labels, data["aggre_label"])


def test_label_file_warns_when_clean_labels_disagree_with_the_dataset(tmp_path):
    import torch

    y = np.repeat(np.arange(3), 20)
    path = tmp_path / "shuffled.pt"
    torch.save({"clean_label": rng().permutation(y), "worse_label": y}, path)
    regime = LabelFile(str(path))
    with pytest.warns(UserWarning, match="dataset's order"):
        regime.observe_at(Observed.of_labels(y), None, np.arange(60), 3, rng())
    torch.save({"clean_label": y, "worse_label": y}, path)
    aligned = LabelFile(str(path))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aligned.observe_at(Observed.of_labels(y), None, np.arange(60), 3, rng())


# --- stacking ---------------------------------------------------------------------------


def test_longtail_then_asymmetric_stack(compose_fast, synthetic):
    cfg, choices = compose_fast(
        *SYNTHETIC,
        *FAST_FIT,
        "regime=stack",
        "regime@regime.stages.noise=asymmetric",
        "regime.stages.noise.map={0:1,2:3}",
        "regime.stages.noise.rate=0.4",
        "budget=full",
        fast=False,
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.labels["regime"] == "longtail(10)+asymmetric({0:1,2:3} 0.4)"
    # the same pipeline by hand: the long-tailed pool, annotated whole
    regime = Stack([LongTail(10), Asymmetric(0.4, map={0: 1, 2: 3})])
    task = shape(synthetic, regime, seed=0, split_seed=0)
    assert len(task.split.pool) < len(synthetic.split.pool)
    labeler = Labeler(task, regime, Full(), seed=0, split_seed=0)
    pool = labeler.buy_first(labeler.capacity)
    truth = task.y[pool.indices]
    for c, target in ((0, 1), (2, 3)):
        mine = truth == c
        assert np.sum(pool.labels[mine] == target) == round(0.4 * mine.sum())
        assert np.all(np.isin(pool.labels[mine], [c, target]))
    for c in (1, 3):
        assert np.all(pool.labels[truth == c] == c)
    assert np.asarray(record.labels["indices"]).tolist() == pool.indices.tolist()
    assert record.labels["noise_rate"] == pytest.approx(np.mean(pool.labels != truth))


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Asymmetric(1.0), "rate=1.0 is outside [0, 1)"),
        (lambda: Asymmetric(-0.1), "rate=-0.1 is outside [0, 1)"),
        (lambda: Asymmetric(0.4, map="cifar100"), "allowed: cifar10, mnist"),
        (lambda: Asymmetric(0.4, map={1: 1}), "map={1:1} maps class 1 onto itself"),
        (lambda: Asymmetric(0.4, map={"a": 1}), "classes must be integers"),
        (lambda: Asymmetric(0.4, map={1: 2.5}), "classes must be integers"),
        (lambda: Asymmetric(0.4, map={}), "non-empty mapping"),
        (lambda: Instance(1.0), "rate=1.0 is outside [0, 1)"),
        (lambda: Instance(0.2, std=0), "std=0 is outside (0, inf)"),
        (lambda: LabelFile("/nonexistent/labels.csv"), "/nonexistent/labels.csv does not exist"),
        (lambda: LabelFile("labels.txt"), "allowed: .csv, .npy, .pt"),
    ],
)
def test_bad_settings_are_refused_with_one_line(make, message):
    with pytest.raises(ConfigError, match=r"^\w+=") as info:
        make()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_maps_and_files_are_refused_against_the_dataset(tmp_path):
    with pytest.raises(ConfigError, match=r"map=cifar10 names class 4, outside 0\.\.3"):
        Asymmetric(0.4).check(4)
    Asymmetric(0.4, map="mnist").check(10)
    csv = tmp_path / "votes.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"column=.c. is not a column .* columns: a, b"):
        LabelFile(str(csv), column="c")
    with pytest.raises(ConfigError, match=r"has 2 columns .* set column"):
        LabelFile(str(csv))
    csv.write_text("label\n1\ncat\n")
    with pytest.raises(ConfigError, match="holds 'cat' for item 1"):
        LabelFile(str(csv))
    csv.write_text("label\n1\n\n2\n\n")  # a blank row inside would shift every item after it
    with pytest.raises(ConfigError, match="holds '' for item 1"):
        LabelFile(str(csv))
    npy = tmp_path / "labels.npy"
    np.save(npy, np.array([0, 1, 7]))
    with pytest.raises(ConfigError, match="holds label 7 but the dataset has 4 classes"):
        LabelFile(str(npy)).check(4)
    with pytest.raises(ConfigError, match=r"column=.x. is for \.csv and \.pt"):
        LabelFile(str(npy), column="x")
    with pytest.raises(ConfigError, match=r"has 3 rows but the dataset has at least 10 items"):
        LabelFile(str(npy)).check_items(np.array([2, 9]))
    import torch

    pt = tmp_path / "human.pt"
    torch.save({"clean_label": np.zeros(3), "aggre_label": np.zeros(3)}, pt)
    with pytest.raises(ConfigError, match=r"column=.random9. is not a key .* keys: aggre_label"):
        LabelFile(str(pt), column="random9")
    with pytest.raises(ConfigError, match="column='clean' holds the true labels"):
        LabelFile(str(pt), column="clean")


def test_short_label_file_is_refused_before_training(compose_fast, tmp_path):
    path = tmp_path / "short.npy"
    np.save(path, np.zeros(300, dtype=np.int64))
    cfg, choices = compose_fast(
        *SYNTHETIC, *FAST_FIT, "regime=label_file", f"regime.path={path}", fast=False
    )
    with pytest.raises(ConfigError, match=r"^regime\.path=.* has 300 rows but the dataset has"):
        run(cfg, choices)
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            ["regime=asymmetric", "regime.map={0:0}"],
            ["regime.map={0:0} maps class 0 onto itself"],
        ),
        (["regime=instance", "regime.rate=1.5"], ["regime.rate=1.5 is outside [0, 1)"]),
        (
            ["regime=label_file", "regime.path=/nonexistent/CIFAR-10_human.pt"],
            ["regime.path=/nonexistent/CIFAR-10_human.pt does not exist"],
        ),
    ],
    ids=["asymmetric", "instance", "label_file"],
)
def test_cli_refuses_bad_noise_settings(overrides, fragments, tmp_path):
    """One line, exit 2, no record (a file too short: test_short_label_file_is_refused...)."""
    lines = refusal_lines(tmp_path, *SYNTHETIC, *FAST_FIT, *overrides)
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
