"""FlexMatch (Zhang et al. 2021): FixMatch with class-wise thresholds from curriculum
pseudo-labelling. A class whose pseudo-labels the model rarely commits to yet gets a lower
threshold, so hard classes are learnt from early instead of starved."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from labelbench.strategies.fixmatch import FixMatch, FixMatchModule


def flexmatch_thresholds(
    selected: Tensor, num_classes: int, threshold: float, warmup: bool = True
) -> Tensor:
    """Class-wise thresholds from the latest confident pseudo-label of every unlabeled item
    (`selected`, -1 where none yet).

    sigma_c counts the items last predicted as class c with confidence >= threshold; the
    learning effect is beta_c = sigma_c / max(sigma), or, with `warmup`, divided by
    max(max sigma, items without a confident prediction), so thresholds stay low until
    the model has committed on most of the data. Class c's threshold is
    threshold * beta_c / (2 - beta_c) (the convex mapping of the paper)."""
    counts = torch.bincount(selected[selected >= 0], minlength=num_classes).to(torch.float64)
    denominator = counts.max()
    if warmup:
        denominator = torch.maximum(denominator, (selected < 0).sum().to(torch.float64))
    beta = counts / denominator if denominator > 0 else torch.zeros_like(counts)
    return (threshold * beta / (2.0 - beta)).to(torch.float32)


class FlexMatchModule(FixMatchModule):
    """FixMatch loss with flexmatch_thresholds. The latest confident pseudo-label of every
    unlabeled item is a buffer, so it is checkpointed and moves with the module."""

    def __init__(self, *args: Any, threshold_warmup: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold_warmup = threshold_warmup
        self.register_buffer(
            "selected", torch.full((len(self.data["unlabeled_idx"]),), -1, dtype=torch.long)
        )

    def thresholds(self, pseudo: Tensor) -> Tensor:
        per_class = flexmatch_thresholds(
            self.selected, self.num_classes, self.threshold, self.threshold_warmup
        )
        return per_class[pseudo]

    def observe(self, positions: Tensor, confidence: Tensor, pseudo: Tensor) -> None:
        confident = confidence >= self.threshold
        self.selected[positions[confident]] = pseudo[confident]


class FlexMatch(FixMatch):
    """FlexMatch. threshold: the upper threshold every class reaches once learnt;
    threshold_warmup: keep thresholds low while most unlabeled items have no confident
    prediction yet; warmup_steps: as FixMatch. Thresholds start near 0, so every early
    pseudo-label counts: from a random network that can pull all items into one class,
    hence the labeled-only warm-up in conf/strategy/flexmatch.yaml."""

    module_class = FlexMatchModule

    def __init__(self, *args: Any, threshold_warmup: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold_warmup = bool(threshold_warmup)

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "threshold_warmup": self.threshold_warmup}
