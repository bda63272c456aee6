"""A linear head: one Linear layer over the flattened input, the probe for frozen
embeddings (conf/dataset/encoder/)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError, check_int


class Linear(nn.Sequential):
    """Flatten -> Linear(num_classes). `in_features`: the input size the head is built for;
    None takes the data's. A number that differs from the data's (an encoder whose output
    size does not match the head) is refused before training."""

    takes_images = False  # reads a flat vector

    def __init__(
        self, in_shape: Sequence[int], num_classes: int, in_features: int | None = None
    ) -> None:
        width = math.prod(in_shape)
        if in_features is not None:
            check_int("in_features", in_features, 1)
            if in_features != width:
                raise ConfigError(
                    f"in_features={in_features} does not match the input size {width} (the"
                    f" dataset's encoder output, shape {tuple(in_shape)}); set"
                    f" model.in_features={width} or null"
                )
        super().__init__(nn.Flatten(), nn.Linear(width, num_classes))

    def embed(self, x: Tensor) -> Tensor:
        """What the linear layer reads: the flattened input itself (the encoder's
        embedding), for embedding-based active-learning queries."""
        return self[0](x)
