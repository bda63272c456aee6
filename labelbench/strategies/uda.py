"""UDA (Xie et al. 2020): unsupervised data augmentation. The strong view of an unlabeled
item is pulled towards the sharpened prediction on its weak view, where that prediction
is confident; training-signal annealing (TSA) keeps the labeled items the model already
fits beyond a rising threshold out of the supervised loss, so a few labels are not
over-fitted early.

Checked against USB (microsoft/Semi-supervised-learning, semilearn/algorithms/uda/uda.py),
TorchSSL (models/uda/uda_utils.py) and the authors' code (google-research/uda,
image/main.py):

- TSA threshold at training progress t = step / max_steps: eta_t = alpha_t (1 - 1/C) + 1/C,
  alpha_t = t (linear), exp(5 (t - 1)) (exp), 1 - exp(-5 t) (log); `none` keeps every
  item (eta = 1). As all three.
- TSA mask: a labeled item leaves the loss when the probability of its (observed) label
  exceeds eta_t, and the loss is averaged over the items kept (at least 1), as the paper
  and the authors' `anneal_sup_loss`. USB and TorchSSL instead mask on the largest
  probability, whatever the class, and average over the whole batch.
- Consistency: target softmax(weak logits / T), confidence mask max softmax(weak logits)
  >= threshold on the unsharpened probabilities, cross-entropy of the strong view against
  the target, masked and averaged over the whole batch (TorchSSL's `ce`; the authors
  use KL, which differs by the target's entropy, a constant for the student: the same
  gradients). USB passes T to its pseudo-label hook with softmax=False, which ignores it:
  its targets are not sharpened.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_number
from labelbench.strategies.semi import (
    WeakStrong,
    WeakStrongModule,
    confidence_mask,
    sharpen,
)

TSA_SCHEDULES = ("none", "linear", "exp", "log")
TSA_SCALE = 5.0  # all three references: exp(5 (t - 1)), 1 - exp(-5 t)


def tsa_threshold(schedule: str, progress: float, num_classes: int) -> float:
    """eta_t = alpha_t (1 - 1/C) + 1/C at training progress t in [0, 1]; 1 for `none`."""
    if schedule == "none":
        return 1.0
    alpha = {
        "linear": progress,
        "exp": math.exp((progress - 1.0) * TSA_SCALE),
        "log": 1.0 - math.exp(-progress * TSA_SCALE),
    }[schedule]
    return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


def tsa_cross_entropy(logits: Tensor, y: Tensor, threshold: float) -> Tensor:
    """Cross-entropy of the items whose label probability is at most `threshold`,
    averaged over those items (0 when none is left)."""
    with torch.no_grad():
        kept = (logits.detach().softmax(dim=1).gather(1, y[:, None])[:, 0] <= threshold).float()
    loss = F.cross_entropy(logits, y, reduction="none")
    return (loss * kept).sum() / kept.sum().clamp_min(1.0)


def uda_consistency(
    logits_strong: Tensor, logits_weak: Tensor, threshold: float, temperature: float
) -> Tensor:
    """Cross-entropy of the strong views against the weak views' sharpened probabilities
    (temperature T), kept where the weak view's unsharpened confidence reaches
    `threshold`, averaged over all rows."""
    with torch.no_grad():
        probs = logits_weak.detach().softmax(dim=1)
        mask = confidence_mask(probs.max(dim=1).values, threshold)
        target = sharpen(probs, temperature)
    loss = -(target * F.log_softmax(logits_strong, dim=1)).sum(dim=1)
    return (loss * mask).mean()


class UDAModule(WeakStrongModule):
    """UDA's loss: TSA cross-entropy on labeled weak views plus `unlabeled_weight` x
    uda_consistency."""

    def __init__(
        self, *args: Any, threshold: float, temperature: float, tsa_schedule: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.threshold, self.temperature = threshold, temperature
        self.tsa_schedule = tsa_schedule

    def supervised_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.tsa_schedule == "none":
            return F.cross_entropy(logits, y)
        progress = self.steps_done / self.max_steps
        return tsa_cross_entropy(
            logits, y, tsa_threshold(self.tsa_schedule, progress, self.num_classes)
        )

    def unlabeled_loss(
        self, positions: Tensor, logits_weak: Tensor, logits_strong: Tensor
    ) -> Tensor:
        consistency = uda_consistency(logits_strong, logits_weak, self.threshold, self.temperature)
        return self.unlabeled_weight * consistency


class UDA(WeakStrong):
    """UDA. threshold: confidence in [0, 1] a weak view's prediction needs to count (USB
    p_cutoff 0.8; 0 keeps all); temperature: sharpening of the targets in (0, 1] (USB T
    0.4); tsa_schedule: none, linear, exp or log; warmup_steps, mu, unlabeled_weight,
    include_labeled, augment: see WeakStrong and SemiSupervised."""

    module_class = UDAModule

    def __init__(
        self,
        *args: Any,
        threshold: float = 0.8,
        temperature: float = 0.4,
        tsa_schedule: str = "none",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = check_number("threshold", threshold, "[0, 1]")
        self.temperature = check_number("temperature", temperature, "(0, 1]")
        if tsa_schedule not in TSA_SCHEDULES:
            raise ConfigError(
                f"tsa_schedule={tsa_schedule!r} is not one of {', '.join(TSA_SCHEDULES)}"
            )
        self.tsa_schedule = tsa_schedule

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "threshold": self.threshold,
            "temperature": self.temperature,
            "tsa_schedule": self.tsa_schedule,
        }
