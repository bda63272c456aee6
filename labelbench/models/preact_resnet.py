"""PreAct ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks") in the
CIFAR variant the noisy-label papers train: DivideMix's PreResNet18 (Li et al. 2020,
LiJunnan1992/DivideMix PreResNet.py), which later methods (ELR+, UNICON, ProMix ...) reuse.
Written with plain torch."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.models.resnet import ImageSequential, image_shape


class PreActBlock(nn.Module):
    """BN -> ReLU -> 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv, plus the shortcut of the
    activated input (after the first BN-ReLU): itself, or where the stride or the width
    changes a 1x1 conv of it (no BN). The reference (and kuangliu/pytorch-cifar's, which it
    follows) adds the activated input even where the paper's identity shortcut adds the raw
    one; we keep the reference's."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(h))))
        return out + self.shortcut(h)


class PreActResNet18(ImageSequential):
    """A 3x3 stem convolution to 64 channels with BN and ReLU, no max-pool, four stages of
    two PreActBlocks with widths 64-128-256-512 (the last three halve the resolution),
    global average pooling and a linear head; PyTorch's default initialisation. That is
    DivideMix's reference, layer for layer; where it differs from the paper's network we
    keep the reference (the papers' numbers come from it): the stem's BN-ReLU is followed by
    the first block's own, the shortcuts add the activated input (see PreActBlock), and no
    BN-ReLU follows the last block.

    11,171,274 parameters for 10 classes (published: 11.17M; the post-activation
    resnet18_cifar has 11,173,962). `embed(x)` gives 512 features per item. Inputs are
    (C, H, W) images of any size (the reference's fixed 4x4 pooling is global on 32x32;
    8x8 digits end at 1x1). `channels_last`: see ImageSequential."""

    STAGES = (64, 128, 256, 512)

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        channels_last: bool = False,
    ) -> None:
        c_in, _, _ = image_shape(in_shape, "preact_resnet18")
        c = self.STAGES[0]
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
        ]
        for stage, c_out in enumerate(self.STAGES):
            for block in range(2):
                layers.append(PreActBlock(c, c_out, stride=2 if stage > 0 and block == 0 else 1))
                c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        super().__init__(*layers)
        self.use_channels_last(channels_last)
