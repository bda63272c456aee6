"""The shared base of semi-supervised strategies: labeled and unlabeled minibatches drawn
together from memory, weak and strong augmented views, and the pieces such methods share
(confidence masks, ramps, soft targets).

The unlabeled set is the unrevealed pool, plus the revealed items when `include_labeled`
is on (as USB does): with the full budget there is then still something to be consistent
on. The labeled stream draws `batch_size` items per step and the unlabeled stream
`mu * batch_size`, each from its own seeded, checkpointed stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import check_int, check_number
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.feed import Feed
from labelbench.strategies.lightning import LabelModule, LightningStrategy

UNLABELED_SEED_OFFSET = 0x5E41


def confidence_mask(confidence: Tensor, threshold: float | Tensor) -> Tensor:
    """1.0 where a pseudo-label's confidence reaches `threshold` (a number, or one per
    row), else 0.0."""
    return (confidence >= threshold).to(confidence.dtype)


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Cross-entropy of each row against its pseudo-label, kept where mask is 1, averaged
    over all rows (masked rows count as zero, as in FixMatch)."""
    return (F.cross_entropy(logits, targets, reduction="none") * mask).mean()


def sharpen(probs: Tensor, temperature: float) -> Tensor:
    """p_k^(1/T) / sum_j p_j^(1/T) per row (MixMatch's Sharpen; UDA's and DivideMix's
    temperature): T < 1 moves each row towards its arg-max, T = 1 leaves it as it is."""
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=1, keepdim=True)


def mixup(
    x: Tensor, targets: Tensor, alpha: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """MixMatch's MixUp (Berthelot et al. 2019, eq. 8-11): one lambda ~ Beta(alpha, alpha)
    for the batch, lambda' = max(lambda, 1 - lambda) so each mixed item stays closer to its
    own row, mixed with a random permutation of the rows. `targets` are rows of class
    probabilities. Both draws come from `generator` (checkpointed with the module), so a
    resumed fit mixes the same pairs with the same weights. Returns (mixed x, mixed
    targets)."""
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)
    order = torch.randperm(len(x), generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[order], lam * targets + (1 - lam) * targets[order]


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """-sum_k t_k log softmax(logits)_k, averaged over rows: cross-entropy against rows of
    class probabilities (the labeled term of MixMatch and DivideMix)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def linear_rampup(step: int, length: int) -> float:
    """0 -> 1 linearly over `length` steps (1 at once when length is 0)."""
    return 1.0 if length <= 0 else min(1.0, step / length)


def sigmoid_rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / length, the ramp-up of mean teacher (Laine & Aila)."""
    if length <= 0:
        return 1.0
    t = min(1.0, step / length)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def ema_(average: Tensor, value: Tensor | float, momentum: float) -> None:
    """average <- momentum * average + (1 - momentum) * value, in place: the running
    statistics of FreeMatch and SoftMatch (USB's `ema_p`), kept in registered buffers."""
    average.mul_(momentum).add_((1.0 - momentum) * value)


@contextmanager
def kept_batch_norm_stats(net: nn.Module) -> Iterator[None]:
    """Forward passes inside leave the batch-norm running statistics as they were (USB's
    `bn_controller.freeze_bn` / `unfreeze_bn`): for passes that only guess targets."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    try:
        yield
    finally:
        for m, state in zip(norms, saved, strict=True):
            m.load_state_dict(state)


class SemiSupervisedModule(LabelModule):
    """LabelModule with an unlabeled stream and augmented views."""

    def __init__(
        self, *args: Any, mu: int, unlabeled_weight: float, num_classes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mu, self.unlabeled_weight = mu, unlabeled_weight
        self.num_classes = num_classes

    @property
    def num_unlabeled(self) -> int:
        return len(self.data["unlabeled_idx"])

    def make_streams(self) -> dict[str, Feed]:
        streams = super().make_streams()
        if self.num_unlabeled:
            streams["unlabeled"] = self.feed(
                self.data["unlabeled_idx"],
                self.mu * self.batch_size,
                self.seed + UNLABELED_SEED_OFFSET,
            )
        return streams

    def next_unlabeled(self) -> tuple[Tensor, Tensor] | None:
        """The next unlabeled minibatch: positions in the unlabeled set and inputs; None
        when there are no unlabeled items (then the unlabeled loss is left out)."""
        stream = self.streams.get("unlabeled")
        if stream is None:
            return None
        return next(stream)

    def labeled_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the student on a weak view of labeled items: the whole loss
        when there is nothing unlabeled to learn from (yet)."""
        return F.cross_entropy(self.net(self.weak(x)), y)

    def student_logits(self, *batches: Tensor) -> tuple[Tensor, ...]:
        """The student's logits for several batches in one forward pass (one batch-norm
        statistic over all of them, as in FixMatch), split back per batch."""
        return self.net(torch.cat(batches)).split([len(b) for b in batches])

    def summed_over_processes(self, t: Tensor) -> Tensor:
        """`t` summed over the processes of a DDP run (itself on one): batch statistics of
        the whole global batch, the same on every process, from each process's share."""
        if self.trainer.world_size == 1:
            return t
        return self.all_gather(t).sum(dim=0)


class WeakStrongModule(SemiSupervisedModule):
    """The step of the FixMatch family: the student's logits for weak views of a labeled
    batch and for weak and strong views of an unlabeled batch, in one forward pass (one
    batch-norm statistic over all three); the loss is `supervised_loss` plus
    `unlabeled_loss` (subclasses). The first `warmup_steps` steps use the labeled items only."""

    def __init__(self, *args: Any, warmup_steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warmup_steps = warmup_steps

    def supervised_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The labeled term from the student's logits (cross-entropy)."""
        return F.cross_entropy(logits, y)

    def labeled_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return self.supervised_loss(self.net(self.weak(x)), y)

    def learns_from_unlabeled(self) -> bool:
        """Whether any unlabeled term has a weight (else the step skips the unlabeled batch)."""
        return self.unlabeled_weight != 0

    def unlabeled_loss(
        self, positions: Tensor, logits_weak: Tensor, logits_strong: Tensor
    ) -> Tensor:
        """The unlabeled terms, weights included, from the logits of both views of the
        unlabeled batch (items `positions` of the unlabeled set)."""
        raise NotImplementedError

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        warm = self.steps_done < self.warmup_steps
        unlabeled = None if warm else self.next_unlabeled()
        if unlabeled is None or not self.learns_from_unlabeled():
            return self.labeled_loss(x, y)
        positions, xu = unlabeled
        logits_x, logits_weak, logits_strong = self.student_logits(
            self.weak(x), self.weak(xu), self.strong(xu)
        )
        return self.supervised_loss(logits_x, y) + self.unlabeled_loss(
            positions, logits_weak, logits_strong
        )


class SemiSupervised(LightningStrategy):
    """Base of strategies that learn from the revealed items and the unlabeled pool.

    mu: unlabeled items per labeled item in a step. unlabeled_weight: weight of the unlabeled loss. include_labeled: the
    unlabeled set also holds the revealed items (their labels unused there). Other
    arguments as LightningStrategy."""

    module_class: type[SemiSupervisedModule] = SemiSupervisedModule

    def __init__(
        self,
        *args: Any,
        mu: int = 7,
        unlabeled_weight: float = 1.0,
        include_labeled: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mu = check_int("mu", mu, least=1, unit="unlabeled items per labeled one")
        self.unlabeled_weight = check_number("unlabeled_weight", unlabeled_weight)
        self.include_labeled = bool(include_labeled)
        self._num_classes = 0

    def unlabeled_indices(self, pool: LabelPool) -> np.ndarray:
        """Dataset indices of the unlabeled set (the unlabeled-only items included)."""
        if self.include_labeled:
            return np.concatenate([pool.unlabeled_data, pool.indices])
        return np.asarray(pool.unlabeled_data)

    def tensors(self, pool: LabelPool, task: TaskView) -> dict[str, Tensor]:
        data = super().tensors(pool, task)
        data["unlabeled_idx"] = torch.tensor(self.unlabeled_indices(pool))
        return data

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None):
        self._num_classes = task.num_classes
        predictor = super().fit(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)
        predictor.fit_info["unlabeled"] = float(len(self.unlabeled_indices(pool)))
        return predictor

    def module_kwargs(self) -> dict[str, Any]:
        return {
            "mu": self.mu,
            "unlabeled_weight": self.unlabeled_weight,
            "num_classes": self._num_classes,
        }


class WeakStrong(SemiSupervised):
    """Base of the strategies of WeakStrongModule. warmup_steps: optimizer steps on labeled
    items only before the unlabeled loss starts (0 in the references)."""

    module_class: type[WeakStrongModule] = WeakStrongModule

    def __init__(self, *args: Any, warmup_steps: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "warmup_steps": self.warmup_steps}


class SoftTargetModule(LabelModule):
    """Cross-entropy against a row of class probabilities per training item (`train_y`),
    weighted per item (`train_w`): the weighted mean over each minibatch. Trains on
    propagated or pseudo-labels alongside the revealed ones."""

    def training_loss(self) -> Tensor:
        pick, x = next(self.labeled)
        logits = self.net(self.weak(x))
        loss = F.cross_entropy(logits, self.data["train_y"][pick], reduction="none")
        weight = self.data["train_w"][pick]
        return (loss * weight).sum() / weight.sum().clamp_min(1e-8)


def soft_targets(
    indices: np.ndarray, probs: np.ndarray, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """train_idx / train_y / train_w arrays for SoftTargetModule."""
    return {
        "train_idx": np.asarray(indices, dtype=np.int64),
        "train_y": np.asarray(probs, dtype=np.float32),
        "train_w": np.asarray(weights, dtype=np.float32),
    }


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]
