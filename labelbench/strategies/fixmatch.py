"""FixMatch (Sohn et al. 2020): a confident prediction on a weak view of an unlabeled item
becomes the hard target of its strong view."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from labelbench.config import check_number
from labelbench.strategies.semi import (
    WeakStrong,
    WeakStrongModule,
    confidence_mask,
    masked_cross_entropy,
)


class FixMatchModule(WeakStrongModule):
    """Cross-entropy on weak views of labeled items, plus `unlabeled_weight` x the masked
    cross-entropy of strong views against the weak views' confident pseudo-labels (the
    shared step of semi.WeakStrongModule: one forward pass over the three batches, the
    first `warmup_steps` steps on labeled items only)."""

    def __init__(self, *args: Any, threshold: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = threshold

    def thresholds(self, pseudo: Tensor) -> float | Tensor:
        """The confidence each pseudo-label must reach (FixMatch: one fixed threshold)."""
        return self.threshold

    def observe(self, positions: Tensor, confidence: Tensor, pseudo: Tensor) -> None:
        """Sees every step's pseudo-labels, for methods whose thresholds adapt."""

    def unlabeled_loss(
        self, positions: Tensor, logits_weak: Tensor, logits_strong: Tensor
    ) -> Tensor:
        with torch.no_grad():
            probs = logits_weak.detach().softmax(dim=1)
            confidence, pseudo = probs.max(dim=1)
            mask = confidence_mask(confidence, self.thresholds(pseudo))
            self.observe(positions, confidence, pseudo)
        return self.unlabeled_weight * masked_cross_entropy(logits_strong, pseudo, mask)


class FixMatch(WeakStrong):
    """FixMatch. threshold: confidence in (0, 1] a weak view's prediction needs to become a
    pseudo-label; warmup_steps: optimizer steps on labeled items only before the unlabeled
    loss starts (0 in FixMatch); mu, unlabeled_weight, augment: see SemiSupervised."""

    module_class = FixMatchModule

    def __init__(self, *args: Any, threshold: float = 0.95, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = check_number("threshold", threshold, "(0, 1]")

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "threshold": self.threshold}
