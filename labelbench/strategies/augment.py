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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_int, check_number
from labelbench.data.task import TaskView

UNBOUND = "call bind(task) first: {name} needs the task's {what}"


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


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
    """Views of (B, C, H, W) images.

    weak: a random translation by up to `weak_shift` pixels each way (zero fill), and a
    horizontal flip with probability 0.5 where flips are on. strong: translation by up to
    `strong_shift` pixels, a random zoom onto a crop whose area is drawn in
    [crop_scale, 1] (1: off), a `cutout` x `cutout` square of zeros at a random centre (0:
    off), Gaussian noise of std `noise` (0: off), and the same flip. flip: None flips
    only on datasets that declare mirroring label-preserving (`flip_invariant`); True
    requires that; False never flips. The defaults are the digits recipe that made
    FixMatch work with a small CNN."""

    def __init__(
        self,
        weak_shift: int = 1,
        strong_shift: int = 2,
        crop_scale: float = 1.0,
        cutout: int = 3,
        noise: float = 0.1,
        flip: bool | None = None,
    ) -> None:
        self.weak_shift = check_int("weak_shift", weak_shift)
        self.strong_shift = check_int("strong_shift", strong_shift)
        self.crop_scale = check_number("crop_scale", crop_scale, "(0, 1]")
        self.cutout = check_int("cutout", cutout)
        self.noise = check_number("noise", noise)
        if flip is not None and not isinstance(flip, bool):
            raise ConfigError(f"flip={flip} must be true, false or null (auto)")
        self.flip = flip
        self._shape: tuple[int, int, int] | None = None
        self._flip = False  # resolved by bind()
        self._cache: dict[torch.device, dict[str, Tensor]] = {}

    def bind(self, task: TaskView, takes_images: bool | None = None) -> ImageAugment:
        shape = tuple(int(v) for v in task.input_shape)
        if len(shape) != 3:
            raise ConfigError(
                f"input_shape={shape} of dataset {task.name} is not an image (channels, height,"
                " width); use strategy/augment=vector (or by_modality) for feature vectors"
            )
        side = min(shape[1:])
        for name in ("weak_shift", "strong_shift", "cutout"):
            value = getattr(self, name)
            # A shift of a whole side can move the image out of view; a larger cutout
            # blanks it whatever its centre.
            too_big = value > side if name == "cutout" else value >= side
            if too_big:
                limit = f"at most {side}" if name == "cutout" else f"below {side}"
                raise ConfigError(
                    f"{name}={value} is too large for {shape[1]}x{shape[2]} images of dataset"
                    f" {task.name}; it must be {limit}"
                )
        if self.flip and not task.flip_invariant:
            raise ConfigError(
                f"flip=true but dataset {task.name} does not declare flips label-preserving"
                " (flip_invariant=false); allowed: false or null (auto)"
            )
        bound = copy.copy(self)
        bound._shape = shape  # type: ignore[assignment]
        bound._flip = bool(task.flip_invariant) if self.flip is None else self.flip
        bound._cache = {}
        return bound

    def _check(self, x: Tensor) -> None:
        if self._shape is None:
            raise RuntimeError(UNBOUND.format(name="ImageAugment", what="image shape"))
        if tuple(x.shape[1:]) != self._shape:
            raise ValueError(f"expected a batch shaped (B, {self._shape}), got {tuple(x.shape)}")

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        self._check(x)
        return self._flip_lr(self._translate(x, self.weak_shift, generator), generator)

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        self._check(x)
        out = self._translate(x, self.strong_shift, generator)
        out = self._crop(out, generator)
        out = self._cutout(out, generator)
        if self.noise > 0:
            eps = torch.randn(x.shape, generator=generator, device=generator.device)
            out = out + self.noise * eps.to(x.device, x.dtype)
        return self._flip_lr(out, generator)

    def _tables(self, device: torch.device) -> dict[str, Tensor]:
        """Index tables for shifts and cutout on `device`, built once per device. Batches of
        small images are cheap to move, so the cost of an op is mostly the number of torch
        calls: with these tables a shift and a cutout are one gather each."""
        if device not in self._cache:
            assert self._shape is not None
            _, h, w = self._shape
            on = {"device": device}
            rows, cols = torch.arange(h, **on)[:, None], torch.arange(w, **on)
            tables = {}
            for shift in {self.weak_shift, self.strong_shift} - {0}:
                # flat index of each pixel in the zero-padded image, and of each window start
                width, k = w + 2 * shift, torch.arange(2 * shift + 1, **on)
                tables[f"pixels{shift}"] = (rows * width + cols).view(1, 1, h * w)
                tables[f"starts{shift}"] = (k[:, None] * width + k).view(-1)
            if self.cutout:
                # A (2H-1, 2W-1) canvas with the square at its centre: the cutout mask for a
                # centre (cy, cx) is the H x W window of it starting at (H-1-cy, W-1-cx).
                u, v = torch.arange(2 * h - 1, **on)[:, None], torch.arange(2 * w - 1, **on)
                top, left = h - 1 - self.cutout // 2, w - 1 - self.cutout // 2
                square = (
                    (u >= top) & (u < top + self.cutout) & (v >= left) & (v < left + self.cutout)
                )
                tables["canvas"] = square.view(1, -1)
                tables["window"] = (rows * (2 * w - 1) + cols).view(1, h * w)
                centre = torch.arange(h * w, **on)
                tables["corner"] = (h - 1 - centre // w) * (2 * w - 1) + (w - 1 - centre % w)
            self._cache[device] = tables
        return self._cache[device]

    def _translate(self, x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
        """Move each image by its own (dy, dx) drawn uniformly from [-shift, shift]^2, with
        zero fill: pad, then gather an H x W window at a random start."""
        if shift == 0:
            return x
        b, c, h, w = x.shape
        tables = self._tables(x.device)
        n_starts = (2 * shift + 1) ** 2
        pick = torch.randint(0, n_starts, (b,), generator=generator, device=generator.device)
        index = tables[f"starts{shift}"][pick.to(x.device)].view(b, 1, 1) + tables[f"pixels{shift}"]
        padded = F.pad(x, (shift, shift, shift, shift)).flatten(2)
        return padded.gather(2, index.expand(b, c, h * w)).view(b, c, h, w)

    def _crop(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Zoom onto a random square-aspect crop of area in [crop_scale, 1], kept inside."""
        if self.crop_scale >= 1:
            return x
        b = x.shape[0]
        side = _uniform(b, self.crop_scale, 1.0, generator).sqrt()
        ty, tx = (_uniform(b, -1.0, 1.0, generator) * (1 - side) for _ in range(2))
        theta = torch.zeros(b, 2, 3, device=side.device)
        theta[:, 0, 0] = theta[:, 1, 1] = side
        theta[:, 0, 2], theta[:, 1, 2] = tx, ty
        theta = theta.to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # border: the outermost half-pixel of a crop would otherwise blend with zeros
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _cutout(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Zero a cutout x cutout square (all channels) centred on a random pixel; it may
        hang over the edge, so less than the full square can be blanked."""
        if self.cutout == 0:
            return x
        b, _, h, w = x.shape
        tables = self._tables(x.device)
        centre = torch.randint(0, h * w, (b,), generator=generator, device=generator.device)
        index = tables["corner"][centre.to(x.device)][:, None] + tables["window"]
        hole = tables["canvas"].expand(b, -1).gather(1, index)
        return x.masked_fill(hole.view(b, 1, h, w), 0.0)

    def _flip_lr(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if not self._flip:
            return x
        coin = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
        return torch.where(coin.to(x.device)[:, None, None, None], x.flip(-1), x)


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
    """Augment what the network sees: `image` for image datasets fed to a network that
    reads images as images (a CNN), `vector` for the rest: vector and text inputs, and
    images fed to a network that flattens them (an MLP), for which shifted pixels are other
    features altogether. On digits, 1-pixel shifts cost an MLP 4-5 points of accuracy at
    the full budget, while feature noise and masking do not. A network that does not say
    (`takes_images` None) gets `image` on image data. bind() returns the chosen
    augmentation, bound."""

    def __init__(self, image: Augment, vector: Augment) -> None:
        for name, value in (("image", image), ("vector", vector)):
            if not isinstance(value, Augment):
                raise ConfigError(
                    f"{name}={value} must be an augmentation (a node with a _target_ from"
                    " labelbench.strategies.augment)"
                )
        self.image = image
        self.vector = vector

    def bind(self, task: TaskView, takes_images: bool | None = None) -> Augment:
        images = task.modality == "image" and takes_images is not False
        return (self.image if images else self.vector).bind(task)

    def weak(self, x: Tensor, generator: torch.Generator) -> Tensor:
        raise RuntimeError("call bind(task) first: ByModality picks its augmentation by task")

    def strong(self, x: Tensor, generator: torch.Generator) -> Tensor:
        raise RuntimeError("call bind(task) first: ByModality picks its augmentation by task")
