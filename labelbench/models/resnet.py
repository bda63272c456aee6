"""ResNet-18 for small images (CIFAR's 32x32, digits' 8x8), written with plain torch."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.models import penultimate


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


class ResNet18Cifar(nn.Sequential):
    """The CIFAR variant of ResNet-18: a 3x3 stem convolution and no max-pool (an ImageNet
    stem would shrink 32x32 to 8x8 at once), four stages of two BasicBlocks with widths
    64-128-256-512 (the last three halve the resolution), global average pooling, a linear
    head. `width` scales every stage (0.25 gives 16-32-64-128, for CPU runs and tests).

    Inputs are (C, H, W) images of any size; 8x8 digits end the last stage at 1x1."""

    takes_images = True
    STAGES = (64, 128, 256, 512)

    def __init__(self, in_shape: Sequence[int], num_classes: int, width: float = 1.0) -> None:
        if len(in_shape) != 3:
            raise ConfigError(
                f"in_shape={tuple(in_shape)}: model resnet18_cifar needs image inputs (channels,"
                " height, width); use model=mlp for vectors"
            )
        if not width > 0:
            raise ConfigError(f"width={width} must be positive (1.0: 64-128-256-512 channels)")
        c_in = int(in_shape[0])
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

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features: the globally pooled last stage (512 x width per item)."""
        return penultimate(self, x)
