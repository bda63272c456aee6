"""Backbones: shapes, bad arguments, and a CNN that learns digits."""

from __future__ import annotations

import pytest
import torch

from labelbench.config import ConfigError
from labelbench.models.cnn import CNNSmall
from labelbench.models.mlp import MLP
from labelbench.run import run


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 28, 28), (1, 9, 7)])
def test_cnn_small_output_shape(shape):
    net = CNNSmall(shape, num_classes=5)
    assert net(torch.zeros(4, *shape)).shape == (4, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_shape": (20,)}, r"in_shape=\(20,\): model cnn_small needs image inputs"),
        ({"in_shape": (1, 2, 2)}, "too small"),
        ({"in_shape": (1, 8, 8), "dropout": 1.0}, r"dropout=1.0 is outside \[0, 1\)"),
        ({"in_shape": (1, 8, 8), "channels": [8]}, "two positive widths"),
    ],
)
def test_cnn_small_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CNNSmall(num_classes=3, **kwargs)


def test_mlp_flattens_images():
    assert MLP((1, 8, 8), 10, hidden=[16])(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_cnn_small_learns_digits(compose_fast):
    cfg, choices = compose_fast(
        "dataset=digits",
        "model=cnn_small",
        "budget=per_class",
        "budget.per_class=10",
        "seed=0",
        "strategy.max_steps=300",
        "strategy.eval_every=100",
    )
    record = run(cfg, choices)
    assert record.status == "ok" and record.choices["model"] == "cnn_small"
    assert record.metrics["test/acc"] > 0.6  # 10 classes: chance is 0.1


def test_cnn_small_on_vectors_is_a_config_error(compose_fast):
    cfg, choices = compose_fast("model=cnn_small")  # synthetic data: vectors
    with pytest.raises(
        ConfigError, match=r"model.in_shape=\(20,\): model cnn_small needs image inputs"
    ):
        run(cfg, choices)
