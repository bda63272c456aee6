"""Seeded data augmentations as torch ops: weak and strong random views of a batch, chosen
by modality (conf/strategy/augment/).

Every random draw comes from the caller's `torch.Generator` (on the generator's device,
usually the CPU) and is then moved to the batch's device, so the views depend only on the
generator's state: the same seed gives the same views on CPU and GPU, and a fit resumed
from a checkpointed generator continues with exactly the views it would have drawn. Ops
are vectorised over the batch; they run on every optimizer step.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from labelbench.config import ConfigError, check_number
from labelbench.data.task import TaskView
from labelbench.strategies import image_ops
from labelbench.strategies.image_ops import RandAugment

UNBOUND = "call bind(task) first: {name} needs the task's {what}"


def _value_range(x: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> tuple[float, float]:
    """(min, max) of x[rows] (NaN if any is NaN; (0, 0) for no rows), a chunk of rows at a
    time rather than one copy of the whole pool."""
    if len(rows) == 0:
        return 0.0, 0.0
    lo, hi = np.inf, -np.inf
    for start in range(0, len(rows), chunk):
        part = x[rows[start : start + chunk]]
        lo, hi = np.minimum(lo, part.min()), np.maximum(hi, part.max())
    return float(lo), float(hi)


class Augment:
    """Weak and strong random views of a batch, as torch ops on the batch's own device.
    Every random draw comes from the caller's CPU `torch.Generator`, so views are
    reproducible under a seed (and resume exactly from a checkpointed generator state)."""

    def bind(self, task: TaskView, takes_images: bool | None = None) -> Augment:
        """A copy fitted to the task: feature statistics, image shape, whether flips are
        allowed. Raises ConfigError (one line naming the bad value and what is allowed) when
        this augmentation cannot work on the task, e.g. ImageAugment on vector inputs.
        `takes_images`: whether the network reads images as images (see
        labelbench.models.takes_images); only ByModality uses it."""
        return self

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A mildly perturbed view of the batch `x` (B, *input_shape); same shape, dtype
        and device, `x` itself left unchanged."""
        raise NotImplementedError

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A heavily perturbed view of the batch `x`; as `weak` otherwise."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Identity(Augment):
    """No augmentation: both views are the batch itself (returned as is, not copied)."""

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return x

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return x


class ImageAugment(Augment):
    """The papers' views of (B, C, H, W) images with pixels in [0, 1] (C = 1 or 3), as
    batched ops from labelbench.strategies.image_ops.

    weak (FixMatch, Sohn et al. 2020, Sec. 2.3; USB semilearn/datasets/cv_datasets/cifar.py
    `transform_weak`): a horizontal flip with probability 0.5 where flips are on, then a
    random crop after reflect padding by `pad` on each side: torchvision's
    RandomCrop(size, padding=pad, padding_mode="reflect"). `pad` is pixels (an int >= 0) or,
    below 1, a fraction of each side, int(side * pad) as USB's int(crop_size * (1 -
    crop_ratio)): the default 0.125 is 4 px on 32x32 and 1 px on 8x8 digits. USB crops
    then flips; flipping first gives the same distribution (reflect padding is symmetric)
    and lets one gather do both.

    strong (USB `transform_strong`): the weak view's flip and crop, then RandAugment
    (image_ops.RandAugment, FixMatch's variant as USB's randaugment.py): `n` ops drawn per
    image from `ops` (default all 14 of USB's augment_list()) with magnitudes uniform in
    each op's range, then Cutout of side up to `cutout` x W filled with `cutout_fill` (None:
    USB's (125, 123, 114)). n = 2 is FixMatch's; USB's classic CV configs use
    RandAugment(3, 5), i.e. n = 3.

    flip: None flips only on datasets that declare mirroring label-preserving
    (`flip_invariant`); True requires that; False never flips."""

    def __init__(
        self,
        pad: float = 0.125,
        n: int = 2,
        ops: Sequence[str] | None = None,
        cutout: float = 0.5,
        cutout_fill: float | None = None,
        flip: bool | None = None,
    ) -> None:
        pixels = isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0
        fraction = isinstance(pad, float) and 0 <= pad < 1
        if not (pixels or fraction):
            raise ConfigError(
                f"pad={pad} must be a non-negative integer (pixels) or a number in [0, 1)"
                " (a fraction of the image side)"
            )
        self.pad = pad
        self._randaugment = RandAugment(n, ops, cutout, cutout_fill)
        self.n = self._randaugment.n
        self.ops = self._randaugment.ops
        self.cutout = self._randaugment.cutout
        self.cutout_fill = self._randaugment.cutout_fill
        if flip is not None and not isinstance(flip, bool):
            raise ConfigError(f"flip={flip} must be true, false or null (auto)")
        self.flip = flip
        self._shape: tuple[int, int, int] | None = None
        self._pad = (0, 0)  # (rows, columns), resolved by bind()
        self._flip = False  # resolved by bind()

    def bind(self, task: TaskView, takes_images: bool | None = None) -> ImageAugment:
        shape = tuple(int(v) for v in task.input_shape)
        if len(shape) != 3:
            raise ConfigError(
                f"input_shape={shape} of dataset {task.name} is not an image (channels, height,"
                " width); use strategy/augment=vector (or by_modality) for feature vectors"
            )
        channels, h, w = shape
        if channels not in (1, 3):
            raise ConfigError(
                f"input_shape={shape} of dataset {task.name} has {channels} channels;"
                " ImageAugment takes 1 (grey) or 3 (RGB)"
            )
        pad = (
            (self.pad, self.pad)
            if isinstance(self.pad, int)
            else (int(h * self.pad), int(w * self.pad))
        )
        if pad[0] >= h or pad[1] >= w:
            raise ConfigError(
                f"pad={self.pad} is too large for {h}x{w} images of dataset {task.name};"
                f" reflect padding must be below the side: at most {min(h, w) - 1} px"
            )
        if self.flip and not task.flip_invariant:
            raise ConfigError(
                f"flip=true but dataset {task.name} does not declare flips label-preserving"
                " (flip_invariant=false); allowed: false or null (auto)"
            )
        if hasattr(task.x, "value_range"):  # a LazyInputs: uint8 images need no reading
            lo, hi = task.x.value_range()
        else:
            lo, hi = _value_range(np.asarray(task.x), np.asarray(task.pool))
        if not (lo >= 0 and hi <= 1):  # also catches NaN
            raise ConfigError(
                f"dataset {task.name} has pool pixel values in [{lo:.4g}, {hi:.4g}];"
                " ImageAugment's ops need pixels in [0, 1] (e.g. dataset.standardize=false)"
            )
        bound = copy.copy(self)
        bound._shape = shape  # type: ignore[assignment]
        bound._pad = pad
        bound._flip = bool(task.flip_invariant) if self.flip is None else self.flip
        return bound

    def _check(self, x: Tensor) -> None:
        if self._shape is None:
            raise RuntimeError(UNBOUND.format(name="ImageAugment", what="image shape"))
        if tuple(x.shape[1:]) != self._shape:
            raise ValueError(f"expected a batch shaped (B, {self._shape}), got {tuple(x.shape)}")

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        self._check(x)
        return self._flip_crop(x, generator)

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        self._check(x)
        return self._randaugment(self._flip_crop(x, generator), generator)

    def _flip_crop(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Flip (where on) then reflect-pad random crop, drawn per image, as one gather."""
        b = len(x)
        on = {"generator": generator, "device": generator.device}
        flip = torch.rand(b, **on) < 0.5 if self._flip else None
        (ph, pw) = self._pad
        if ph == pw == 0:
            return x if flip is None else image_ops.hflip(x, flip)
        top = torch.randint(0, 2 * ph + 1, (b,), **on)
        left = torch.randint(0, 2 * pw + 1, (b,), **on)
        return image_ops.reflect_crop(x, top, left, self._pad, flip)


class VectorAugment(Augment):
    """Views of feature vectors (any input shape, treated as flat features).

    Gaussian noise of std `*_noise` x each feature's standard deviation, then masking:
    each feature replaced by its mean with probability `*_mask`. Means and deviations are
    the pool's (inputs only). Features that are constant on the pool get no noise: noise
    there would be a signal the data never has."""

    def __init__(
        self,
        weak_noise: float = 0.05,
        strong_noise: float = 0.2,
        weak_mask: float = 0.0,
        strong_mask: float = 0.2,
    ) -> None:
        self.weak_noise = check_number("weak_noise", weak_noise)
        self.strong_noise = check_number("strong_noise", strong_noise)
        self.weak_mask = check_number("weak_mask", weak_mask, "[0, 1)")
        self.strong_mask = check_number("strong_mask", strong_mask, "[0, 1)")
        self._mean: Tensor | None = None
        self._std: Tensor | None = None
        self._on: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def bind(self, task: TaskView, takes_images: bool | None = None) -> VectorAugment:
        rows = np.asarray(task.x)[np.asarray(task.pool)]
        if len(rows) == 0:
            raise ConfigError(f"dataset {task.name} has an empty pool: no feature statistics")
        rows = rows.reshape(len(rows), -1).astype(np.float64)
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ConfigError(f"dataset {task.name} has non-finite inputs in its pool")
        bound = copy.copy(self)
        bound._mean = torch.as_tensor(mean, dtype=torch.float32)
        bound._std = torch.as_tensor(std, dtype=torch.float32)
        bound._on = {}
        return bound

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._mean is None or self._std is None:
            raise RuntimeError(UNBOUND.format(name="VectorAugment", what="feature statistics"))
        if x[0].numel() != self._mean.numel():
            raise ValueError(
                f"expected {self._mean.numel()} features per item, got shape {tuple(x.shape)}"
            )
        key = (x.device, x.dtype)
        if key not in self._on:  # move the statistics once per device, not every step
            self._on[key] = (self._mean.to(x.device, x.dtype), self._std.to(x.device, x.dtype))
        return self._on[key]

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._view(x, self.weak_noise, self.weak_mask, generator)

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._view(x, self.strong_noise, self.strong_mask, generator)

    def _view(self, x: Tensor, noise: float, mask: float, generator: torch.Generator) -> Tensor:
        mean, std = self._stats(x)
        out = x.reshape(len(x), -1)
        if noise > 0:
            eps = torch.randn(out.shape, generator=generator, device=generator.device)
            out = out + eps.to(x.device, x.dtype) * (noise * std)
        if mask > 0:
            drop = torch.rand(out.shape, generator=generator, device=generator.device) < mask
            out = torch.where(drop.to(x.device), mean, out)
        return out.reshape(x.shape)


class ByModality(Augment):
    """Augment what the network sees: `tokens` for datasets of token ids (text a network
    fine-tunes on, `task.tokens` set), `image` for image datasets fed to a network that
    reads images as images (a CNN), `vector` for the rest: vector and embedded text inputs,
    and images fed to a network that flattens them (an MLP), for which shifted pixels are
    other features altogether. On digits, 1-pixel shifts cost an MLP 4-5 points of accuracy
    at the full budget, while feature noise and masking do not. A network that does not say
    (`takes_images` None) gets `image` on image data. bind() returns the chosen
    augmentation, bound; without `tokens` it refuses token ids (feature noise on ids would
    make other tokens, or no ids at all)."""

    def __init__(self, image: Augment, vector: Augment, tokens: Augment | None = None) -> None:
        for name, value in (("image", image), ("vector", vector), ("tokens", tokens)):
            if not isinstance(value, Augment) and not (name == "tokens" and value is None):
                raise ConfigError(
                    f"{name}={value} must be an augmentation (a node with a _target_ from"
                    " labelbench.strategies.augment or .text_ops)"
                )
        self.image = image
        self.vector = vector
        self.tokens = tokens

    def bind(self, task: TaskView, takes_images: bool | None = None) -> Augment:
        if task.tokens is not None:
            if self.tokens is None:
                raise ConfigError(
                    f"dataset {task.name} holds token ids but tokens=None: give ByModality a"
                    " tokens augmentation (as strategy/augment=by_modality does) or use"
                    " strategy/augment=tokens or none"
                )
            return self.tokens.bind(task)
        images = task.modality == "image" and takes_images is not False
        return (self.image if images else self.vector).bind(task)

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        raise RuntimeError("call bind(task) first: ByModality picks its augmentation by task")

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        raise RuntimeError("call bind(task) first: ByModality picks its augmentation by task")
