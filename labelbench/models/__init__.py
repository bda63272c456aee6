"""Plain nn.Module backbones. A model config is a partial: the run supplies
`in_shape` (one item's shape) and `num_classes`.

A network class may say whether it reads images as images (`takes_images = True`: a CNN,
which sees where pixels are) or flattens them (`False`: an MLP); augmentations chosen by
modality follow it (conf/strategy/augment/by_modality.yaml)."""

from __future__ import annotations

import functools
from typing import Any


def penultimate(layers: Any, x: Any) -> Any:
    """x through every layer of a sequential network but the last. (Slicing a Sequential
    subclass would call its constructor with the layers, which ours do not take.)"""
    for layer in list(layers)[:-1]:
        x = layer(x)
    return x


def network_class(model: Any) -> Any:
    """The network class behind a model factory (a class, or a functools.partial of one, as
    `_partial_: true` configs give)."""
    while isinstance(model, functools.partial):
        model = model.func
    return model


def embeds(model: Any) -> bool:
    """Whether the network class behind a model factory exposes `embed(x)`: penultimate
    features, which embedding-based active-learning queries need."""
    return callable(getattr(network_class(model), "embed", None))


def takes_images(model: Any) -> bool | None:
    """The `takes_images` of the network class behind a model factory (a class, or a
    functools.partial of one, as `_partial_: true` configs give), None if it does not say."""
    value = getattr(network_class(model), "takes_images", None)
    return None if value is None else bool(value)
