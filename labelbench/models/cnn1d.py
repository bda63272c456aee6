"""A small 1-D convolutional network for signals (MNIST-1D and the like)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.models import penultimate


class CNN1D(nn.Sequential):
    """[Conv1d(kernel, stride) -> ReLU] x len(channels) -> Flatten -> Linear(num_classes),
    after the MNIST-1D authors' small CNN. Inputs are (C, L) signals: C channels of L
    samples. Each layer pads by kernel // 2, so stride 1 keeps the length and stride s
    divides it by about s."""

    # Reads signals by position but never images: on image data by-modality augmentation
    # would give it 2-D shifts it cannot take; it refuses (C, H, W) inputs anyway.
    takes_images = False

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (25, 25, 25),
        kernel_size: int = 5,
        stride: int = 2,
        dropout: float = 0.3,
    ) -> None:
        if len(in_shape) != 2:
            raise ConfigError(
                f"in_shape={tuple(in_shape)}: model cnn1d needs signal inputs (channels, length);"
                " use model=mlp for vectors, model=cnn_small for images"
            )
        if not channels or any(int(c) < 1 for c in channels):
            raise ConfigError(f"channels={list(channels)} must list positive layer widths")
        if int(kernel_size) < 1 or int(stride) < 1:
            raise ConfigError(f"kernel_size={kernel_size} and stride={stride} must be positive")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout={dropout} is outside [0, 1)")
        c_in, length = (int(v) for v in in_shape)
        k, s, pad = int(kernel_size), int(stride), int(kernel_size) // 2
        layers: list[nn.Module] = []
        for c in channels:
            out = (length + 2 * pad - k) // s + 1
            if out < 1:
                raise ConfigError(
                    f"in_shape={tuple(in_shape)} is too short for {len(channels)} conv layers"
                    f" of kernel {k}, stride {s}"
                )
            layers += [nn.Conv1d(c_in, int(c), k, stride=s, padding=pad), nn.ReLU()]
            c_in, length = int(c), out
        layers.append(nn.Flatten())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(c_in * length, num_classes))
        super().__init__(*layers)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features: what the last linear layer reads (active learning's
        embeddings)."""
        return penultimate(self, x)
