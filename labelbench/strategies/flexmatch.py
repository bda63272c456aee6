"""FlexMatch (Zhang et al. 2021): FixMatch with class-wise thresholds from curriculum
pseudo-labelling. A class whose pseudo-labels the model rarely commits to yet gets a lower
threshold, so hard classes are learnt from early instead of starved.

Checked against the reference implementations, USB (microsoft/Semi-supervised-learning,
semilearn/algorithms/flexmatch/utils.py, FlexMatchThresholdingHook) and TorchSSL
(models/flexmatch/flexmatch.py):

- Order within a step: the mask of a step uses the class-wise thresholds of the memory
  *before* this step's batch is recorded. USB's `masking` computes the mask from
  `classwise_acc` (last updated at the end of the previous step), then writes the batch's
  confident pseudo-labels into `selected_label` and recomputes `classwise_acc` for the next
  step; TorchSSL computes `classwise_acc` at the top of the step and updates
  `selected_label` after the loss. FixMatchModule.unlabeled_loss does the same: `thresholds()`,
  then `observe()`.
- What is recorded: every item of the unlabeled batch whose weak-view confidence reaches
  the fixed threshold (`max_probs.ge(p_cutoff)`), whatever its flexible threshold; the
  memory holds each item's latest such pseudo-label.
- The learning effect: beta_c = sigma_c / max(max_c sigma_c, unused items) with
  `thresh_warmup`, sigma_c / max_c sigma_c without; threshold p_cutoff * beta / (2 - beta).
- Under DDP USB and TorchSSL keep one memory per process, each updated from that process's
  share of the batch only. Here the processes all-gather the confident (position,
  pseudo-label) pairs of the step, so every process holds the memory a single process
  would hold with the whole batch, and all use the same thresholds.
"""

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
    threshold * beta_c / (2 - beta_c) (the convex mapping of the paper).

    As USB and TorchSSL, except one corner: they leave the previous thresholds in place
    whenever a single value fills the whole memory (meant for "nothing recorded yet", where
    both give zeros); when every item is recorded as the same class, this gives that class
    the full threshold and the others zero instead of stale values."""
    counts = torch.bincount(selected[selected >= 0], minlength=num_classes).to(torch.float64)
    denominator = counts.max()
    if warmup:
        denominator = torch.maximum(denominator, (selected < 0).sum().to(torch.float64))
    beta = counts / denominator if denominator > 0 else torch.zeros_like(counts)
    return (threshold * beta / (2.0 - beta)).to(torch.float32)


def confident_updates(
    positions: Tensor, confidence: Tensor, pseudo: Tensor, threshold: float, size: int
) -> Tensor:
    """(size, 2) rows (position, pseudo-label) of the items whose confidence reaches
    `threshold`; the other rows, padding included, are (-1, -1). A fixed size, so every
    process of a DDP run hands the all-gather a tensor of the same shape whatever its share
    of the batch."""
    rows = torch.full((size, 2), -1, dtype=torch.long, device=positions.device)
    confident = confidence >= threshold
    n = len(positions)
    rows[:n, 0] = torch.where(confident, positions, -1)
    rows[:n, 1] = torch.where(confident, pseudo, -1)
    return rows


def apply_updates(selected: Tensor, updates: Tensor) -> None:
    """Write the (position, pseudo-label) rows of `updates` into `selected`, in row order
    (a later row wins), skipping the (-1, -1) padding."""
    keep = updates[:, 0] >= 0
    selected[updates[keep, 0]] = updates[keep, 1]


class FlexMatchModule(FixMatchModule):
    """FixMatch loss with flexmatch_thresholds. The latest confident pseudo-label of every
    unlabeled item is a buffer, so it is checkpointed and moves with the module; under DDP
    every process records the whole step's confident pseudo-labels (all-gathered)."""

    def __init__(self, *args: Any, threshold_warmup: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold_warmup = threshold_warmup
        self.register_buffer(
            "selected", torch.full((len(self.data["unlabeled_idx"]),), -1, dtype=torch.long)
        )

    def thresholds(self, pseudo: Tensor) -> Tensor:
        # The memory as it stands before this step's batch is recorded (see the module doc).
        per_class = flexmatch_thresholds(
            self.selected, self.num_classes, self.threshold, self.threshold_warmup
        )
        return per_class[pseudo]

    def observe(self, positions: Tensor, confidence: Tensor, pseudo: Tensor) -> None:
        world_size = self.trainer.world_size
        if world_size == 1:
            confident = confidence >= self.threshold
            self.selected[positions[confident]] = pseudo[confident]
            return
        # Every process has its share of the batch (MinibatchStream): pad each share to the
        # whole batch's size, gather them all, and apply them in rank order everywhere.
        size = self.streams["unlabeled"].batch_size
        updates = confident_updates(positions, confidence, pseudo, self.threshold, size)
        apply_updates(self.selected, self.all_gather(updates).reshape(-1, 2))


class FlexMatch(FixMatch):
    """FlexMatch. threshold: the upper threshold every class reaches once learnt (USB's
    p_cutoff, 0.95); threshold_warmup: keep thresholds low while most unlabeled items have
    no confident prediction yet (USB's thresh_warmup, true); warmup_steps: as FixMatch.
    Thresholds start near 0, so every early pseudo-label counts: from a random network that
    can pull all items into one class, hence the labeled-only warm-up in
    conf/strategy/flexmatch.yaml (not in the reference, which starts at once)."""

    module_class = FlexMatchModule

    def __init__(self, *args: Any, threshold_warmup: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold_warmup = bool(threshold_warmup)

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "threshold_warmup": self.threshold_warmup}
