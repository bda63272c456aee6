"""Plain nn.Module backbones. A model config is a partial: the run supplies
`in_shape` (one item's shape) and `num_classes`.

A network class may say whether it reads images as images (`takes_images = True`: a CNN,
which sees where pixels are) or flattens them (`False`: an MLP); augmentations chosen by
modality follow it (conf/strategy/augment/by_modality.yaml)."""

from __future__ import annotations

import functools
from typing import Any


def takes_images(model: Any) -> bool | None:
    """The `takes_images` of the network class behind a model factory (a class, or a
    functools.partial of one, as `_partial_: true` configs give), None if it does not say."""
    while isinstance(model, functools.partial):
        model = model.func
    value = getattr(model, "takes_images", None)
    return None if value is None else bool(value)
