"""FixMatch (Sohn et al. 2020): a confident prediction on a weak view of an unlabeled item
becomes the hard target of its strong view."""

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
    masked_cross_entropy,
)


class FixMatchModule(SemiSupervisedModule):
    """Cross-entropy on weak views of labeled items, plus `unlabeled_weight` x the masked
    cross-entropy of strong views against the weak views' confident pseudo-labels. One
    forward pass over the three batches. The first `warmup_steps` steps use the labeled
    items only."""

    def __init__(self, *args: Any, threshold: float, warmup_steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold, self.warmup_steps = threshold, warmup_steps

    def thresholds(self, pseudo: Tensor) -> float | Tensor:
        """The confidence each pseudo-label must reach (FixMatch: one fixed threshold)."""
        return self.threshold

    def observe(self, positions: Tensor, confidence: Tensor, pseudo: Tensor) -> None:
        """Sees every step's pseudo-labels, for methods whose thresholds adapt."""

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        warm = self.steps_done < self.warmup_steps
        unlabeled = None if warm else self.next_unlabeled()
        if unlabeled is None or self.unlabeled_weight == 0:
            return self.labeled_loss(x, y)
        positions, xu = unlabeled
        logits_x, logits_weak, logits_strong = self.student_logits(
            self.weak(x), self.weak(xu), self.strong(xu)
        )
        with torch.no_grad():
            probs = logits_weak.detach().softmax(dim=1)
            confidence, pseudo = probs.max(dim=1)
            mask = confidence_mask(confidence, self.thresholds(pseudo))
            self.observe(positions, confidence, pseudo)
        unsupervised = masked_cross_entropy(logits_strong, pseudo, mask)
        return F.cross_entropy(logits_x, y) + self.unlabeled_weight * unsupervised


class FixMatch(SemiSupervised):
    """FixMatch. threshold: confidence in (0, 1] a weak view's prediction needs to become a
    pseudo-label; warmup_steps: optimizer steps on labeled items only before the unlabeled
    loss starts (0 in FixMatch); mu, unlabeled_weight, augment: see SemiSupervised."""

    module_class = FixMatchModule

    def __init__(
        self, *args: Any, threshold: float = 0.95, warmup_steps: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = check_number("threshold", threshold, "(0, 1]")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "threshold": self.threshold,
            "warmup_steps": self.warmup_steps,
        }
