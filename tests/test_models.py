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


@pytest.mark.parametrize(
    ("make", "width"),
    [
        (lambda: MLP((64,), 10, hidden=(32, 16)), 16),
        (lambda: CNNSmall((1, 8, 8), 10, hidden=24), 24),
    ],
)
def test_embed_is_what_the_last_layer_reads(make, width):
    """Penultimate features for embedding-based active-learning queries; the predictor
    batches them like its logits."""
    import functools

    import numpy as np

    from labelbench.models import embeds
    from labelbench.strategies.lightning import NetPredictor

    torch.manual_seed(0)
    net = make().eval()
    x = torch.rand(7, *((64,) if isinstance(net, MLP) else (1, 8, 8)))
    with torch.no_grad():
        h = net.embed(x)
        assert h.shape == (7, width)
        assert torch.allclose(net[-1](h), net(x), atol=1e-6)
    predictor = NetPredictor(net, tuple(x.shape[1:]), {}, batch_size=3)
    assert np.allclose(predictor.embed(x.numpy()), h.numpy(), atol=1e-6)
    assert embeds(functools.partial(type(net))) and not embeds(functools.partial(torch.nn.Linear))
    with pytest.raises(TypeError, match="Linear exposes no embed"):
        NetPredictor(torch.nn.Linear(64, 2), (64,), {}).embed(np.zeros((1, 64), "float32"))


def test_every_conf_model_exposes_embeddings():
    """Embedding-based active-learning queries work with every model the project ships."""
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from labelbench.models import embeds

    models = Path(__file__).resolve().parent.parent / "conf" / "model"
    assert {p.stem: embeds(instantiate(OmegaConf.load(p))) for p in models.glob("*.yaml")} == {
        p.stem: True for p in models.glob("*.yaml")
    }
