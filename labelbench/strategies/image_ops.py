"""Batched image ops for the papers' image views: FixMatch's RandAugment and Cutout, and the
flip + reflect-padded random crop of the weak view, as torch ops on a whole batch.

Images are floats in [0, 1] shaped (B, C, H, W), C = 1 (grey, Pillow's "L") or 3 ("RGB"),
any H and W. Every op takes one magnitude per image (a (B,) tensor) and needs no Python
loop over the images, so a sub-batch of images that drew an op is one call.

The op list and magnitude ranges are USB's (microsoft/Semi-supervised-learning,
semilearn/datasets/augmentation/randaugment.py `augment_list()`), the RandAugment variant of
FixMatch (Sohn et al. 2020, Table 12: magnitudes drawn uniformly per op instead of one
global magnitude; Cutout after the ops). Each op reproduces what Pillow 13 does to the uint8
image u that the float image x = u / 255 stands for (`OPS` lists them; tests/test_image_ops.py
checks each against Pillow). Where we differ from Pillow, on purpose:

* Point ops keep the fraction. Pillow truncates blends (Brightness, Color, Contrast,
  Sharpness) and AutoContrast's table to uint8; we do not round the result, so x * 255 lies
  in [pil, pil + 1]. Where Pillow rounds an intermediate to uint8 (the grey image of Color
  and Contrast, Contrast's mean, Sharpness' smoothed image) we round it the same way, so
  that u / 255 images reproduce Pillow up to that final truncation.
* Equalize and Posterize work on the uint8 values round(x * 255), as Pillow does; their
  outputs lie on the 1/255 grid (Posterize with 8 bits is the identity and keeps x as is).
* Geometric ops (Rotate, ShearX/Y, TranslateX/Y) sample the input pixel under each output
  pixel's centre exactly as Pillow's NEAREST affine transform does (see `affine`), in
  float64 (float32 on MPS) where Pillow accumulates doubles; a pixel can differ only where
  a centre falls within rounding error of a pixel edge.
* Cutout's centre is uniform over [0, W) x [0, H); USB's `np.random.uniform(w)` is
  numpy's uniform(low=w, high=1), i.e. uniform over (1, w]: we take what it meant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_int, check_number

# ITU-R 601-2 luma, as Pillow's convert("L") computes it: L = (299 R + 587 G + 114 B) / 1000
# in 16-bit fixed point, rounded half up (libImaging/Convert.c).
LUMA = (19595 / 65536, 38470 / 65536, 7471 / 65536)
# USB's CutoutAbs fill colour (125, 123, 114); for grey images (ours) their mean.
CUTOUT_RGB = (125 / 255, 123 / 255, 114 / 255)
CUTOUT_GREY = sum(CUTOUT_RGB) / 3


def _per_image(v: Tensor, x: Tensor) -> Tensor:
    """Magnitudes (B,) as a (B, 1, 1, 1) tensor on x's device and dtype."""
    return v.to(x.device, x.dtype).view(-1, 1, 1, 1)


def _to_uint8(x: Tensor) -> Tensor:
    """The uint8 values the image stands for: round(x * 255), as int64."""
    return (x * 255).round().clamp(0, 255).long()


def _round_to_level(x: Tensor) -> Tensor:
    """x rounded half up to a whole grey level (a multiple of 1/255), as Pillow stores it."""
    return torch.floor(x * 255 + 0.5).clamp(0, 255) / 255


def _blend(degenerate: Tensor, x: Tensor, v: Tensor) -> Tensor:
    """Pillow's Image.blend(degenerate, x, v) = degenerate + v (x - degenerate), without
    its truncation to uint8. For v in [0, 1] the result stays in [0, 1] (clamped against
    float rounding)."""
    return (degenerate + _per_image(v, x) * (x - degenerate)).clamp_(0, 1)


def _grey(x: Tensor) -> Tensor:
    """Pillow's "L" image of x, (B, 1, H, W), rounded to whole levels; a 1-channel x is its
    own grey image."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    r, g, b = x.unbind(1)
    return _round_to_level(LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


# -- point ops ---------------------------------------------------------------------------


def identity(x: Tensor, v: Tensor) -> Tensor:
    return x


def auto_contrast(x: Tensor, v: Tensor) -> Tensor:
    """PIL.ImageOps.autocontrast(img) (cutoff 0): stretch each channel of each image from
    [min, max] to [0, 1]; a constant channel is left as is. `v` is unused."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    flat = span <= 0
    out = (x - lo) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, x, out.clamp_(0, 1))


def brightness(x: Tensor, v: Tensor) -> Tensor:
    """ImageEnhance.Brightness(img).enhance(v): a blend with black, x * v."""
    return _blend(torch.zeros_like(x), x, v)


def color(x: Tensor, v: Tensor) -> Tensor:
    """ImageEnhance.Color(img).enhance(v): a blend with the image's grey version (Pillow's
    "L" conversion); the identity on grey images."""
    if x.shape[1] == 1:
        return x
    return _blend(_grey(x).expand_as(x), x, v)


def contrast(x: Tensor, v: Tensor) -> Tensor:
    """ImageEnhance.Contrast(img).enhance(v): a blend with a constant image at the mean of
    the grey image, which Pillow rounds half up to a whole level: int(mean + 0.5)."""
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(_round_to_level(mean).expand_as(x), x, v)


def equalize(x: Tensor, v: Tensor) -> Tensor:
    """PIL.ImageOps.equalize(img): per channel of each image, map uint8 value i through
    lut[i] = (step // 2 + #pixels below i) // step with step = (#pixels - #pixels at the
    highest value present) // 255 (Pillow 13's divisor), clipped to 255; a channel with at
    most one distinct value, or step 0, is left as is. `v` is unused. One histogram for the
    whole batch (kornia.enhance.equalize computes the same table but loops over images and
    channels with a device sync each: not used)."""
    b, c, h, w = x.shape
    u = _to_uint8(x).reshape(b * c, h * w)
    rows = torch.arange(b * c, device=x.device)[:, None]
    hist = torch.bincount((u + 256 * rows).view(-1), minlength=b * c * 256).view(b * c, 256)
    present = hist > 0
    levels = torch.arange(256, device=x.device)
    top = torch.where(present, levels, -1).amax(dim=1, keepdim=True)  # highest value present
    step = (h * w - hist.gather(1, top)) // 255
    below = hist.cumsum(dim=1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    keep = (present.sum(dim=1, keepdim=True) <= 1) | (step == 0)
    lut = torch.where(keep, levels, lut)
    out = lut.gather(1, u).view(b, c, h, w).to(x.dtype) / 255
    return torch.where(keep.view(b, c, 1, 1), x, out)


def posterize(x: Tensor, v: Tensor) -> Tensor:
    """PIL.ImageOps.posterize(img, int(v)): keep the top int(v) bits of each uint8 value;
    8 bits is the identity (x kept as is, not rounded). As in USB, v uniform in [4, 8]
    gives 4 to 7 bits (8 only at v = 8 exactly)."""
    bits = v.to(x.device).floor().long().clamp(1, 8).view(-1, 1, 1, 1)
    mask = 256 - 2 ** (8 - bits)  # ~(2 ** (8 - bits) - 1) & 0xFF
    out = (_to_uint8(x) & mask).to(x.dtype) / 255
    return torch.where(bits >= 8, x, out)


def solarize(x: Tensor, v: Tensor) -> Tensor:
    """PIL.ImageOps.solarize(img, v): invert (1 - x) every value with x * 255 >= v. The
    comparison allows 1e-4 of a level so that u / 255 images compare as u would."""
    return torch.where(x * 255 + 1e-4 >= _per_image(v, x), 1 - x, x)


# Pillow's ImageFilter.SMOOTH: 3x3 kernel, scale 13; the border rows and columns are copied.
SMOOTH = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))


def sharpness(x: Tensor, v: Tensor) -> Tensor:
    """ImageEnhance.Sharpness(img).enhance(v): a blend with img.filter(SMOOTH), whose
    interior Pillow rounds to whole levels and whose one-pixel border is the image's own."""
    b, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    kernel = torch.tensor(SMOOTH, device=x.device, dtype=x.dtype) / 13
    smooth = F.conv2d(x.reshape(b * c, 1, h, w), kernel.view(1, 1, 3, 3)).view(b, c, h - 2, w - 2)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = _round_to_level(smooth)
    return _blend(degenerate, x, v)


# -- geometric ops -----------------------------------------------------------------------


def _coord_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


@functools.cache
def _centres(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(3, H*W): the output pixel centres (i + 0.5, j + 0.5, 1), row-major."""
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=dtype) + 0.5, torch.arange(w, dtype=dtype) + 0.5, indexing="ij"
    )
    return torch.stack((cols.flatten(), rows.flatten(), torch.ones(h * w, dtype=dtype))).to(device)


def affine(x: Tensor, theta: Tensor) -> Tensor:
    """Pillow's img.transform(size, AFFINE, (a, b, c, d, e, f), NEAREST), fill 0, for one
    (2, 3) matrix per image (`theta`, (B, 2, 3)): output pixel (i, j) (column, row) takes
    input pixel (floor(X), floor(Y)) with (X, Y) = theta @ (i + 0.5, j + 0.5, 1), i.e. the
    matrix maps output pixel centres to input positions and a pixel covers [i, i + 1) (as
    libImaging/Geometry.c's affine and scale paths do: `xo = a[2] + a[1] * 0.5 + a[0] *
    0.5`, then `(int)` on non-negative coordinates). Positions outside the input give 0.
    One gather for the whole batch."""
    b, c, h, w = x.shape
    dtype = _coord_dtype(x.device)
    src = (theta.to(x.device, dtype) @ _centres(h, w, x.device, dtype)).floor()
    sx, sy = src[:, 0], src[:, 1]  # (B, H*W): input column, row
    inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    index = torch.where(inside, sy * w + sx, 0).long()
    out = x.reshape(b, c, h * w).gather(2, index[:, None].expand(b, c, h * w))
    return out.masked_fill_(~inside[:, None], 0).view(b, c, h, w)


def _theta(v: Tensor, rows: Sequence[Sequence[object]]) -> Tensor:
    """(B, 2, 3) matrices from entries that are numbers or (B,) tensors, on v's device
    (the CPU for RandAugment's draws: the matrices are the same whatever x's device)."""
    b = len(v)
    entries = [
        torch.as_tensor(e, dtype=v.dtype, device=v.device).expand(b) for r in rows for e in r
    ]
    return torch.stack(entries, dim=1).view(b, 2, 3)


def rotate(x: Tensor, v: Tensor) -> Tensor:
    """img.rotate(v): v degrees counter-clockwise about the centre (W / 2, H / 2), nearest,
    fill 0; Pillow's matrix (Image.rotate), applied by `affine`."""
    v = v.double()
    angle = -torch.deg2rad(v)
    a, b = torch.cos(angle), torch.sin(angle)
    d, e = -b, a
    cx, cy = x.shape[3] / 2, x.shape[2] / 2
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    return affine(x, _theta(v, ((a, b, c), (d, e, f))))


def shear_x(x: Tensor, v: Tensor) -> Tensor:
    """img.transform(size, AFFINE, (1, v, 0, 0, 1, 0)): X = x + v y."""
    v = v.double()
    return affine(x, _theta(v, ((1, v, 0), (0, 1, 0))))


def shear_y(x: Tensor, v: Tensor) -> Tensor:
    """img.transform(size, AFFINE, (1, 0, 0, v, 1, 0)): Y = v x + y."""
    v = v.double()
    return affine(x, _theta(v, ((1, 0, 0), (v, 1, 0))))


def translate_x(x: Tensor, v: Tensor) -> Tensor:
    """img.transform(size, AFFINE, (1, 0, v * W, 0, 1, 0)): content moves left by v W."""
    v = v.double()
    return affine(x, _theta(v, ((1, 0, v * x.shape[3]), (0, 1, 0))))


def translate_y(x: Tensor, v: Tensor) -> Tensor:
    """img.transform(size, AFFINE, (1, 0, 0, 0, 1, v * H)): content moves up by v H."""
    v = v.double()
    return affine(x, _theta(v, ((1, 0, 0), (0, 1, v * x.shape[2]))))


# -- the op table ------------------------------------------------------------------------


class Op(NamedTuple):
    fn: Callable[[Tensor, Tensor], Tensor]
    low: float  # magnitudes are drawn uniformly in [low, high]
    high: float


# USB's augment_list(), in its order and with its ranges. AutoContrast, Equalize and
# Identity take no magnitude; USB still draws one in [0, 1], and so do we.
OPS: dict[str, Op] = {
    "AutoContrast": Op(auto_contrast, 0.0, 1.0),
    "Brightness": Op(brightness, 0.05, 0.95),
    "Color": Op(color, 0.05, 0.95),
    "Contrast": Op(contrast, 0.05, 0.95),
    "Equalize": Op(equalize, 0.0, 1.0),
    "Identity": Op(identity, 0.0, 1.0),
    "Posterize": Op(posterize, 4.0, 8.0),
    "Rotate": Op(rotate, -30.0, 30.0),
    "Sharpness": Op(sharpness, 0.05, 0.95),
    "ShearX": Op(shear_x, -0.3, 0.3),
    "ShearY": Op(shear_y, -0.3, 0.3),
    "Solarize": Op(solarize, 0.0, 256.0),
    "TranslateX": Op(translate_x, -0.3, 0.3),
    "TranslateY": Op(translate_y, -0.3, 0.3),
}


def apply_op(name: str, x: Tensor, v: Tensor | float | Sequence[float]) -> Tensor:
    """Op `name` of `OPS` on the batch `x` with magnitudes `v` (one per image, or one for
    all), checked against the op's range. A ValueError (one line) for an unknown name or a
    magnitude out of range."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; allowed: {', '.join(OPS)}")
    op = OPS[name]
    v = torch.as_tensor(v, dtype=torch.float64).flatten()
    if v.numel() == 1:
        v = v.expand(len(x))
    if v.numel() != len(x):
        raise ValueError(f"{name}: got {v.numel()} magnitudes for a batch of {len(x)}")
    low, high = v.min().item(), v.max().item()
    if not (op.low <= low and high <= op.high):
        bad = low if low < op.low else high
        raise ValueError(f"{name} magnitude {bad:g} is outside [{op.low:g}, {op.high:g}]")
    return op.fn(x, v)


# -- cutout, flip, crop ------------------------------------------------------------------


def cutout_fill(channels: int, fill: float | None = None) -> Tensor:
    """The fill colour per channel: `fill` for every channel, or (None) USB's (125, 123,
    114) / 255 on RGB and the mean of those three on other channel counts (ours)."""
    if fill is not None:
        return torch.full((channels,), float(fill))
    if channels == 3:
        return torch.tensor(CUTOUT_RGB)
    return torch.full((channels,), CUTOUT_GREY)


def cutout(x: Tensor, side: Tensor, cx: Tensor, cy: Tensor, fill: Tensor) -> Tensor:
    """USB's CutoutAbs(img, side) with centre (cx, cy), per image ((B,) tensors, pixels):
    x0 = int(max(0, cx - side / 2)), x1 = min(W, x0 + side), likewise y0, y1, then
    ImageDraw.rectangle((x0, y0, x1, y1), fill), which fills columns x0 .. int(x1) and rows
    y0 .. int(y1), end coordinates included, clipped to the image. side <= 0: no cutout
    (USB's Cutout returns the image). `fill`: (C,) colour."""
    b, c, h, w = x.shape
    dtype = _coord_dtype(x.device)
    side, cx, cy = (t.to(x.device, dtype).view(b, 1) for t in (side, cx, cy))
    x0 = (cx - side / 2).clamp(min=0).floor()
    y0 = (cy - side / 2).clamp(min=0).floor()
    x1 = torch.minimum(x0 + side, torch.full_like(x0, w)).floor()
    y1 = torch.minimum(y0 + side, torch.full_like(y0, h)).floor()
    cols = torch.arange(w, device=x.device, dtype=dtype)
    rows = torch.arange(h, device=x.device, dtype=dtype)
    in_cols = (cols >= x0) & (cols <= x1) & (side > 0)  # (B, W)
    in_rows = (rows >= y0) & (rows <= y1)  # (B, H)
    hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
    return torch.where(hole, fill.to(x.device, x.dtype).view(1, c, 1, 1), x)


def hflip(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the images where `flip` ((B,) bool) is set."""
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def _reflect(index: Tensor, size: int) -> Tensor:
    """Indices in [-size + 1, 2 size - 2] reflected into [0, size) about the edge pixels
    (numpy's and torch's "reflect": the edge is not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def reflect_crop(
    x: Tensor, top: Tensor, left: Tensor, pad: tuple[int, int], flip: Tensor | None = None
) -> Tensor:
    """torchvision's RandomCrop((H, W), padding=pad, padding_mode="reflect") for given
    window corners: pad each side by `pad` = (rows, columns) with reflection, then take the
    H x W window at (top, left), (B,) integers in [0, 2 pad]. `flip` ((B,) bool, optional)
    mirrors those images first (torchvision's RandomHorizontalFlip). One gather."""
    b, c, h, w = x.shape
    ph, pw = pad
    if not (0 <= ph < h and 0 <= pw < w):
        raise ValueError(f"reflect padding {pad} must be >= 0 and below the image side ({h}x{w})")
    dev = x.device
    rows = _reflect(torch.arange(h, device=dev) + top.to(dev).view(b, 1) - ph, h)  # (B, H)
    cols = _reflect(torch.arange(w, device=dev) + left.to(dev).view(b, 1) - pw, w)  # (B, W)
    if flip is not None:
        cols = torch.where(flip.to(dev).view(b, 1), w - 1 - cols, cols)
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w)
    return x.reshape(b, c, h * w).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)


# -- RandAugment -------------------------------------------------------------------------


class Plan(NamedTuple):
    """What RandAugment drew for a batch (CPU tensors): `op` (B, n) indices into its ops,
    `magnitude` (B, n) values in each op's range, the cutout `side` (B,) in pixels and its
    centre `cx`, `cy` (B,) in pixels."""

    op: Tensor
    magnitude: Tensor
    side: Tensor
    cx: Tensor
    cy: Tensor


class RandAugment:
    """USB's RandAugment(n, m) (semilearn/datasets/augmentation/randaugment.py, FixMatch's
    variant, Sohn et al. 2020 Table 12), batched: each image draws `n` ops uniformly with
    replacement (random.choices) from `ops` (default USB's augment_list(), all 14), each
    with a magnitude uniform in the op's range, applies them in order, then Cutout: a square
    of side u * `cutout` * W (u uniform in [0, 1); USB: 0.5) filled with `cutout_fill` (None:
    USB's colour, see `cutout_fill`; else a value in [0, 1]).

    Images draw independently, so identical images get different views. All draws come
    from the caller's torch.Generator (`draw`), and `apply` groups the images by op in each
    round: one call per (round, op) drawn, no loop over images."""

    def __init__(
        self,
        n: int = 2,
        ops: Sequence[str] | None = None,
        cutout: float = 0.5,
        cutout_fill: float | None = None,
    ) -> None:
        self.n = check_int("n", n, least=1, unit="ops per image")
        if ops is None:
            ops = tuple(OPS)
        if (
            not isinstance(ops, Sequence)
            or isinstance(ops, str)
            or not all(isinstance(name, str) for name in ops)
        ):
            raise ConfigError(f"ops={ops!r} must be a list of op names; allowed: {', '.join(OPS)}")
        ops = tuple(ops)
        unknown = [name for name in ops if name not in OPS]
        if unknown or not ops:
            what = f"has unknown op {unknown[0]!r}" if unknown else "is empty"
            raise ConfigError(f"ops={list(ops)} {what}; allowed: {', '.join(OPS)}")
        self.ops = ops
        self.cutout = check_number("cutout", cutout, "[0, 1]")
        self.cutout_fill = (
            None if cutout_fill is None else check_number("cutout_fill", cutout_fill, "[0, 1]")
        )
        self._low = torch.tensor([OPS[name].low for name in ops], dtype=torch.float64)
        self._high = torch.tensor([OPS[name].high for name in ops], dtype=torch.float64)

    def draw(self, b: int, height: int, width: int, generator: torch.Generator) -> Plan:
        """The random choices for a batch of `b` images of `height` x `width`, from
        `generator` only, returned on the CPU."""
        on = {"generator": generator, "device": generator.device}
        op = torch.randint(0, len(self.ops), (b, self.n), **on)
        u = torch.rand(b, self.n, dtype=torch.float64, **on)
        side, cx, cy = torch.rand(3, b, dtype=torch.float64, **on)
        op, u, side, cx, cy = (t.cpu() for t in (op, u, side, cx, cy))
        low, high = self._low[op], self._high[op]
        return Plan(op, low + (high - low) * u, side * self.cutout * width, cx * width, cy * height)

    def apply(self, x: Tensor, plan: Plan) -> Tensor:
        """The ops of `plan`, round by round, then its cutout."""
        if len(x) == 0:
            return x
        dev = x.device
        for r in range(self.n):
            ops = plan.op[:, r]
            order = torch.argsort(ops, stable=True)
            counts = torch.bincount(ops, minlength=len(self.ops)).tolist()
            grouped = x.index_select(0, order.to(dev))  # images in op order
            magnitude = plan.magnitude[order, r]
            pieces, start = [], 0
            for k, count in enumerate(counts):
                if count:
                    end = start + count
                    fn = OPS[self.ops[k]].fn
                    pieces.append(fn(grouped[start:end], magnitude[start:end]))
                    start = end
            x = torch.empty_like(grouped).index_copy_(0, order.to(dev), torch.cat(pieces))
        if self.cutout > 0:
            x = cutout(x, plan.side, plan.cx, plan.cy, cutout_fill(x.shape[1], self.cutout_fill))
        return x

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        b, _, h, w = x.shape
        return self.apply(x, self.draw(b, h, w, generator))

    def __repr__(self) -> str:
        return (
            f"RandAugment(n={self.n}, ops={list(self.ops)}, cutout={self.cutout},"
            f" cutout_fill={self.cutout_fill})"
        )
