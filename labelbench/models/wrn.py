"""Wide ResNet (Zagoruyko & Komodakis 2016) as the semi-supervised image papers use it:
FixMatch (Sohn et al. 2020), USB (Wang et al. 2022), TorchSSL. Written with plain torch.

Sources: google-research/fixmatch libml/models.py (`ResNet`, the TensorFlow original),
TorchSSL models/nets/wrn.py and USB semilearn/nets/wrn/wrn.py (the PyTorch ports, the same
network), kekmodel/FixMatch-pytorch models/wideresnet.py (likewise, without conv biases);
for STL-10's 96x96 images, TorchSSL models/nets/wrn_var.py and USB
semilearn/nets/wrn/wrn_var.py (WideResNetVar: a fourth group)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from labelbench.config import ConfigError, check_int, check_number
from labelbench.models.resnet import ImageSequential, image_shape


class WideBasicBlock(nn.Module):
    """A pre-activation basic block: BN -> leaky ReLU -> 3x3 conv (stride) -> BN -> leaky
    ReLU -> [dropout] -> 3x3 conv, plus the input (a 1x1 conv where the width changes).

    Where the width changes, what the convolutions read depends on the source:
    - `activate_before_residual` (the network's first block): both the 3x3 conv and the 1x1
      projection read the activated input (all sources);
    - otherwise (the first block of the second and third groups), the PyTorch ports (TorchSSL,
      USB, kekmodel) feed the raw input to both: their first BN's output is computed and never
      used, so here that block has no first BN (the same function, and DDP needs no
      find_unused_parameters); `tf_residual=True` does what the TensorFlow original does,
      the 3x3 conv reading the activated input and the projection the raw one.
    An identity shortcut adds the raw input, except that the TF original adds the activated
    one in a first block that keeps its width (WRN-28-1 only)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        *,
        activate_before_residual: bool,
        tf_residual: bool,
        bn_momentum: float,
        bn_eps: float,
        leaky_slope: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.project = c_in != c_out
        # what the 3x3 conv reads: the activated input, or (ports, projecting) the raw one
        self.activate = not self.project or activate_before_residual or tf_residual
        # what the shortcut reads: activated only before the residual (the ports: only
        # where it projects)
        self.shortcut_activated = activate_before_residual and (self.project or tf_residual)
        if self.activate:
            self.bn1 = nn.BatchNorm2d(c_in, eps=bn_eps, momentum=bn_momentum)
            self.act1 = nn.LeakyReLU(leaky_slope)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
        self.act2 = nn.LeakyReLU(leaky_slope)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=True)
        self.shortcut: nn.Module = nn.Identity()
        if self.project:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act1(self.bn1(x)) if self.activate else x
        out = self.conv2(self.dropout(self.act2(self.bn2(self.conv1(h)))))
        return self.shortcut(h if self.shortcut_activated else x) + out


class WideResNet(ImageSequential):
    """WRN-depth-widen_factor for small images: a 3x3 stem conv to 16 channels, three groups
    of (depth - 4) / 6 pre-activation basic blocks (WideBasicBlock) with widths 16k, 32k, 64k
    (strides 1, 2, 2; the first block activates before the residual), then BN, leaky ReLU,
    global average pooling and a linear head. BN momentum 0.001 (PyTorch's convention: the
    TF original's decay 0.999), eps 0.001, leaky ReLU slope 0.1, convolutions with biases,
    dropout 0. Initialised as the references do: convs kaiming-normal (fan_out, leaky_relu),
    BN weight 1 and bias 0, linear weight xavier-normal and bias 0 (conv biases keep
    PyTorch's default, as in the ports).

    Parameters for 10 classes: WRN-28-2 1,469,450 (published: 1.47M), WRN-28-8 23,362,154
    (published: 23.4M). `embed(x)` gives 64k features per item. Inputs are (C, H, W) images
    of any size (8x8 digits end at 2x2). `channels_last`: see ImageSequential."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 2,
        bn_momentum: float = 0.001,
        bn_eps: float = 0.001,
        leaky_slope: float = 0.1,
        dropout: float = 0.0,
        tf_residual: bool = False,
        channels_last: bool = False,
    ) -> None:
        layers = _wide_layers(
            in_shape, num_classes, f"wrn{depth}_{widen_factor}", depth, widen_factor,
            strides=(1, 2, 2), bn_momentum=bn_momentum, bn_eps=bn_eps,
            leaky_slope=leaky_slope, dropout=dropout, tf_residual=tf_residual,
        )  # fmt: skip
        super().__init__(layers)
        _init_weights(self)
        self.use_channels_last(channels_last)


class WideResNetVar(ImageSequential):
    """The Wide ResNet variant that USB and TorchSSL train on STL-10's 96x96 images (USB's
    `wrn_var_37_2`): WideResNet with a fourth group of blocks, 128k wide, and a stride of
    `first_stride` (2) in the first group, so that the groups are 16k, 32k, 64k, 128k wide
    with strides 2, 2, 2, 2 (96x96 ends at 6x6 before the pool). Everything else is
    WideResNet's: blocks, BN momentum 0.001 and eps 0.001, leaky ReLU slope 0.1,
    convolutions with biases, dropout 0, the initialisation.

    Source: USB semilearn/nets/wrn/wrn_var.py (`WideResNetVar`; `wrn_var_37_2` builds it
    with first_stride=2, depth=28, widen_factor=2) and TorchSSL models/nets/wrn_var.py
    (`WideResNetVar`, the same network). `depth` counts as in WideResNet (6n + 4, n blocks
    per group): 28 gives four groups of 4 blocks.

    Against TorchSSL's module, no deviation in function: like WideResNet, the first block of
    groups 2-4 has no first BN, which TorchSSL (and USB as stored at 7c7460fc) builds and
    never uses: 448 fewer parameters at k=2 (2 x (32 + 64 + 128)). USB's file is stored in
    two readings that differ from TorchSSL's and from each other: at 7c7460fc the block and
    projection convolutions have no biases and the blocks' BN eps is PyTorch's 1e-5; at
    167842af every block that changes width activates its input before both its
    convolution and its projection. This class follows TorchSSL (biases, eps 0.001, only
    the network's first block activating before the residual), as WideResNet follows it
    for wrn_28_2.

    Parameters for 10 classes: 5,933,322 here; counted from the references' modules,
    5,933,770 for TorchSSL's and USB's at 167842af (the 448 of the unused BNs more) and
    5,929,450 for USB's at 7c7460fc (no conv biases in the blocks). `embed(x)` gives 128k
    features per item. Inputs are (C, H, W) images of any size (32x32 ends at 2x2, 8x8 at
    1x1). `channels_last`: see ImageSequential."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 2,
        first_stride: int = 2,
        bn_momentum: float = 0.001,
        bn_eps: float = 0.001,
        leaky_slope: float = 0.1,
        dropout: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        check_int("first_stride", first_stride, 1, "the first group's stride: 2 for 96x96 STL-10")
        layers = _wide_layers(
            in_shape, num_classes, "wrn37_2", depth, widen_factor,
            strides=(first_stride, 2, 2, 2), bn_momentum=bn_momentum, bn_eps=bn_eps,
            leaky_slope=leaky_slope, dropout=dropout, tf_residual=False,
        )  # fmt: skip
        super().__init__(layers)
        _init_weights(self)
        self.use_channels_last(channels_last)


def _wide_layers(
    in_shape: Sequence[int],
    num_classes: int,
    model: str,
    depth: int,
    widen_factor: int,
    *,
    strides: Sequence[int],
    bn_momentum: float,
    bn_eps: float,
    leaky_slope: float,
    dropout: float,
    tf_residual: bool,
) -> OrderedDict[str, nn.Module]:
    """The layers of a Wide ResNet with one group of (depth - 4) / 6 blocks per stride, the
    groups 16k, 32k, 64k (, 128k ...) wide; `model` names the YAML stem in messages."""
    check_int("depth", depth, 10, "6n + 4 with n >= 1 blocks per group: 28 for WRN-28")
    if (depth - 4) % 6:
        raise ConfigError(
            f"depth={depth} must be 6n + 4 (10, 16, 22, 28, 34, 40 ...): 28 for WRN-28"
        )
    check_int("widen_factor", widen_factor, 1, "k: the groups are 16k, 32k, 64k wide")
    check_number("bn_momentum", bn_momentum, "(0, 1]")
    check_number("bn_eps", bn_eps, "(0, inf)")
    check_number("leaky_slope", leaky_slope, "[0, 1]")
    check_number("dropout", dropout, "[0, 1)")
    c_in, _, _ = image_shape(in_shape, model)
    norm = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
    widths = [16] + [16 * widen_factor * 2**g for g in range(len(strides))]
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(c_in, widths[0], 3, padding=1, bias=True)
    )
    for group, stride in enumerate(strides):
        blocks = [
            WideBasicBlock(
                widths[group] if i == 0 else widths[group + 1],
                widths[group + 1],
                stride if i == 0 else 1,
                activate_before_residual=group == 0 and i == 0,
                tf_residual=bool(tf_residual),
                leaky_slope=leaky_slope,
                dropout=dropout,
                **norm,
            )
            for i in range((depth - 4) // 6)
        ]
        layers[f"block{group + 1}"] = nn.Sequential(*blocks)
    layers["bn"] = nn.BatchNorm2d(widths[-1], eps=bn_eps, momentum=bn_momentum)
    layers["act"] = nn.LeakyReLU(leaky_slope)
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(widths[-1], num_classes)
    return layers


def _init_weights(net: nn.Module) -> None:
    """The references' initialisation: convs kaiming-normal (fan_out, leaky_relu), BN 1/0,
    linear xavier-normal with zero bias (conv biases keep PyTorch's default)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
