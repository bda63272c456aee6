"""ResNet-18 for small images (CIFAR's 32x32, digits' 8x8), written with plain torch, and
what the image backbones share (wrn.py, preact_resnet.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.models import penultimate


def image_shape(in_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    """(channels, height, width) of one item, or a ConfigError naming `model` (its YAML
    stem) when the items are not images: vectors, or 1-D signals (channels, length)."""
    if len(in_shape) != 3 or any(int(v) < 1 for v in in_shape):
        raise ConfigError(
            f"in_shape={tuple(in_shape)}: model {model} needs image inputs (channels, height,"
            " width); use model=cnn1d for 1-D signals (channels, length) or model=mlp for vectors"
        )
    c, h, w = (int(v) for v in in_shape)
    return c, h, w


class ImageSequential(nn.Sequential):
    """An image network written as a sequence of layers whose last is the linear head:
    `embed(x)` is what that head reads. `channels_last=True` (see `use_channels_last`)
    stores the weights and feeds the inputs in torch.channels_last (NHWC) memory format,
    which the GPU's tensor cores convolve faster (mixed precision especially); the outputs
    are the same up to float rounding."""

    takes_images = True
    channels_last = False

    def use_channels_last(self, channels_last: bool) -> None:
        """Switch the weights (and from now on the inputs) to channels_last if asked."""
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self._layout(x))

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features: what the linear head reads (the globally pooled last
        stage), for embedding-based active-learning queries."""
        return penultimate(self, self._layout(x))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus the input (a 1x1 conv-BN projection where the stride or
    the width changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet18Cifar(ImageSequential):
    """The CIFAR variant of ResNet-18: a 3x3 stem convolution and no max-pool (an ImageNet
    stem would shrink 32x32 to 8x8 at once), four stages of two BasicBlocks with widths
    64-128-256-512 (the last three halve the resolution), global average pooling, a linear
    head. `width` scales every stage (0.25 gives 16-32-64-128, for CPU runs and tests);
    `channels_last` see ImageSequential. `embed(x)` gives 512 x width features per item.

    Inputs are (C, H, W) images of any size; 8x8 digits end the last stage at 1x1."""

    STAGES = (64, 128, 256, 512)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        width: float = 1.0,
        channels_last: bool = False,
    ) -> None:
        c_in, _, _ = image_shape(in_shape, "resnet18_cifar")
        if not width > 0:
            raise ConfigError(f"width={width} must be positive (1.0: 64-128-256-512 channels)")
        widths = [max(1, round(c * width)) for c in self.STAGES]
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        c = widths[0]
        for stage, c_out in enumerate(widths):
            for block in range(2):
                layers.append(BasicBlock(c, c_out, stride=2 if stage > 0 and block == 0 else 1))
                c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.use_channels_last(channels_last)
