"""MNIST-1D source (the package's own fixed test split) and the 1-D CNN."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from labelbench.config import ConfigError
from labelbench.data.mnist1d import MNIST1D
from labelbench.data.task import stratified_split
from labelbench.models.cnn1d import CNN1D
from labelbench.run import run

pytest.importorskip("mnist1d")


@pytest.fixture(scope="module")
def task():
    return MNIST1D().load(0)


# --- source ---------------------------------------------------------------------------------


def test_arrays_and_shapes():
    x, y, classes, shape = MNIST1D().arrays()
    assert x.shape == (5000, 40) and x.dtype == np.float32
    assert y.shape == (5000,) and y.dtype == np.int64
    assert classes == tuple(str(d) for d in range(10))
    assert shape == (1, 40)
    assert set(np.unique(y).tolist()) == set(range(10))
    assert np.isfinite(x).all()


def test_task_split_sizes(task):
    assert task.name == "mnist1d" and task.modality == "vector"
    assert task.input_shape == (1, 40) and task.num_classes == 10
    pool, val, test = task.split.pool, task.split.val, task.split.test
    np.testing.assert_array_equal(test, np.arange(4000, 5000))  # the package's test items
    assert len(pool) + len(val) == 4000 and len(val) == 600  # 0.15 of each class's train items
    assert not set(pool) & set(val) and max(val.max(), pool.max()) < 4000
    train_counts = np.bincount(task.y[:4000], minlength=10)
    val_counts = np.bincount(task.y[val], minlength=10)
    np.testing.assert_array_equal(val_counts, [round(0.15 * c) for c in train_counts])


def test_data_deterministic_and_test_fixed_across_split_seeds(task):
    other = MNIST1D().load(1)
    np.testing.assert_array_equal(task.x, other.x)
    np.testing.assert_array_equal(task.y, other.y)
    np.testing.assert_array_equal(task.split.test, other.split.test)
    assert not np.array_equal(task.split.val, other.split.val)  # the split seed moves val
    again = MNIST1D().load(0)
    np.testing.assert_array_equal(task.split.val, again.split.val)
    np.testing.assert_array_equal(task.split.pool, again.split.pool)


def test_loading_leaves_global_rngs_alone():
    from labelbench.data import mnist1d

    mnist1d._generate.cache_clear()
    np.random.seed(7)
    random.seed(7)
    MNIST1D().arrays()
    assert np.random.rand() == np.random.RandomState(7).rand()
    assert random.random() == random.Random(7).random()


def test_origin_names_the_package_version():
    from importlib import metadata

    assert metadata.version("mnist1d") in MNIST1D().origin


@pytest.mark.parametrize("bad", [0, 1.0, -0.1])
def test_bad_val_fraction(bad):
    with pytest.raises(ConfigError, match=rf"^val_fraction={bad} is outside \(0, 1\)$"):
        MNIST1D(val_fraction=bad)


def test_stratified_split_with_fixed_test():
    y = np.arange(100) % 4
    fixed = np.arange(80, 100)
    s = stratified_split(y, 0.25, 0.2, seed=3, test=fixed)
    np.testing.assert_array_equal(s.test, fixed)
    assert len(s.val) == 20 and len(s.pool) == 60  # a quarter of each class's 20 others
    assert not (set(s.val) | set(s.pool)) & set(fixed)
    with pytest.raises(ValueError, match="fixed test indices"):
        stratified_split(y, 0.25, 0.2, seed=3, test=np.array([100]))


# --- cnn1d ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 40), (3, 17), (2, 1)])
def test_cnn1d_output_and_embed_shapes(shape):
    torch.manual_seed(0)
    net = CNN1D(shape, num_classes=10, channels=(8, 8, 8)).eval()
    x = torch.rand(4, *shape)
    assert net(x).shape == (4, 10)
    with torch.no_grad():
        h = net.embed(x)
        assert h.ndim == 2 and h.shape[0] == 4
        assert torch.allclose(net[-1](h), net(x), atol=1e-6)
    assert CNN1D.takes_images is False


def test_cnn1d_default_sizes_on_mnist1d():
    net = CNN1D((1, 40), 10)
    assert net.embed(torch.zeros(2, 1, 40)).shape == (2, 25 * 5)  # 40 -> 20 -> 10 -> 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_shape": (40,)}, r"^in_shape=\(40,\): model cnn1d needs signal inputs"),
        ({"in_shape": (1, 8, 8)}, r"^in_shape=\(1, 8, 8\): model cnn1d needs signal inputs"),
        ({"in_shape": (1, 40), "channels": []}, "positive layer widths"),
        ({"in_shape": (1, 40), "stride": 0}, "must be positive"),
        ({"in_shape": (1, 40), "dropout": 1.0}, r"dropout=1.0 is outside \[0, 1\)"),
    ],
)
def test_cnn1d_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        CNN1D(num_classes=3, **kwargs)
    assert "\n" not in str(info.value)


# --- end to end -----------------------------------------------------------------------------


def test_tiny_run_on_mnist1d(compose_fast):
    cfg, choices = compose_fast(
        "dataset=mnist1d",
        "model=cnn1d",
        "budget=per_class",
        "budget.per_class=20",
        "strategy.max_steps=40",
        "strategy.eval_every=20",
    )
    record = run(cfg, choices)
    assert record.status == "ok"
    assert record.choices["dataset"] == "mnist1d" and record.choices["model"] == "cnn1d"
    assert 0 <= record.metrics["test/acc"] <= 1


def test_cnn1d_on_images_is_one_line_config_error(compose_fast):
    cfg, choices = compose_fast("dataset=digits", "model=cnn1d")
    with pytest.raises(
        ConfigError, match=r"^model\.in_shape=\(1, 8, 8\): model cnn1d needs signal"
    ) as e:
        run(cfg, choices)
    assert "\n" not in str(e.value)
