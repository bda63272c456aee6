"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.models import penultimate


class MLP(nn.Sequential):
    """Flatten -> [Linear -> ReLU -> Dropout] x len(hidden) -> Linear(num_classes)."""

    takes_images = False  # pixels become unordered features

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.0,
    ) -> None:
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout={dropout} is outside [0, 1)")
        if any(int(h) < 1 for h in hidden):
            raise ConfigError(f"hidden={list(hidden)} must list positive layer widths")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features: what the last linear layer reads (active learning's
        embeddings)."""
        return penultimate(self, x)
