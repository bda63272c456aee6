"""A small convolutional network for small images (8x8 digits, 28x28 and the like)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.models import penultimate


class CNNSmall(nn.Sequential):
    """[Conv3x3 -> ReLU] x2 with a 2x2 max-pool after each, then one hidden layer and logits.
    Inputs are (C, H, W) images; odd sizes are pooled down with floor division."""

    takes_images = True

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        if len(in_shape) != 3:
            raise ConfigError(
                f"in_shape={tuple(in_shape)}: model cnn_small needs image inputs (channels, height,"
                " width); use model=mlp for vectors"
            )
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout={dropout} is outside [0, 1)")
        if len(channels) != 2 or any(int(c) < 1 for c in channels) or int(hidden) < 1:
            raise ConfigError(
                f"channels={list(channels)} must be two positive widths; hidden={hidden} positive"
            )
        c_in, h, w = (int(v) for v in in_shape)
        c1, c2 = (int(c) for c in channels)
        if h < 4 or w < 4:
            raise ConfigError(
                f"in_shape={tuple(in_shape)} is too small for two 2x2 poolings (need >= 4x4)"
            )
        super().__init__(
            nn.Conv2d(c_in, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), int(hidden)),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(int(hidden), num_classes),
        )

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features: what the last linear layer reads (active learning's
        embeddings)."""
        return penultimate(self, x)
