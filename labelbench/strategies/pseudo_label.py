"""Pseudo-label (Lee 2013): the model's own confident predictions on unlabeled items
become hard targets, their weight ramped up after a warm-up on the labeled items."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import check_int, check_number
from labelbench.strategies.semi import (
    SemiSupervised,
    SemiSupervisedModule,
    confidence_mask,
    linear_rampup,
    masked_cross_entropy,
)


class PseudoLabelModule(SemiSupervisedModule):
    """Cross-entropy on (weakly augmented) labeled items, plus a weight w(t) times the masked
    cross-entropy of unlabeled items against their own confident argmax. w(t) is 0 during
    the first `warmup_steps`, then rises linearly to `unlabeled_weight` over `rampup_steps`."""

    def __init__(
        self, *args: Any, threshold: float, warmup_steps: int, rampup_steps: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.threshold, self.warmup_steps, self.rampup_steps = threshold, warmup_steps, rampup_steps

    def weight(self) -> float:
        """w(t) at the current optimizer step."""
        ramp = linear_rampup(self.steps_done - self.warmup_steps, self.rampup_steps)
        return self.unlabeled_weight * ramp if self.steps_done >= self.warmup_steps else 0.0

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        unlabeled = self.next_unlabeled()
        weight = self.weight()
        if unlabeled is None or weight == 0:
            return self.labeled_loss(x, y)
        _, xu = unlabeled
        logits_x, logits_u = self.student_logits(self.weak(x), self.weak(xu))
        with torch.no_grad():
            confidence, pseudo = logits_u.detach().softmax(dim=1).max(dim=1)
            mask = confidence_mask(confidence, self.threshold)
        return F.cross_entropy(logits_x, y) + weight * masked_cross_entropy(logits_u, pseudo, mask)


class PseudoLabel(SemiSupervised):
    """Pseudo-label. threshold: confidence in (0, 1] a prediction needs to count;
    warmup_steps: optimizer steps on labeled items only; rampup_steps: steps over which the
    unlabeled weight then rises to `unlabeled_weight`."""

    module_class = PseudoLabelModule

    def __init__(
        self,
        *args: Any,
        threshold: float = 0.95,
        warmup_steps: int = 200,
        rampup_steps: int = 400,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = check_number("threshold", threshold, "(0, 1]")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, unit="optimizer steps")
        self.rampup_steps = check_int("rampup_steps", rampup_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "threshold": self.threshold,
            "warmup_steps": self.warmup_steps,
            "rampup_steps": self.rampup_steps,
        }
