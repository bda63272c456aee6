"""SoftMatch (Chen et al. 2023): FixMatch with a soft mask. Each pseudo-label is weighted
by a truncated Gaussian of its confidence, whose mean and variance follow the unlabeled
batches' confidences (EMAs): weight 1 at or above the mean, exp(-(c - mu)^2 /
(2 sigma^2 / n_sigma^2)) below it. Confidences are taken after uniform alignment (UA),
which rescales the weak-view probabilities by uniform / (EMA of their batch means), so
that rarely predicted classes are not weighted down.

Checked against USB (microsoft/Semi-supervised-learning,
semilearn/algorithms/softmatch/softmatch.py and utils.py, SoftMatchWeightingHook;
semilearn/algorithms/hooks/dist_align.py, DistAlignEMAHook with p_target 'uniform'):

- Order within a step: the class-probability EMA is updated with this batch's raw
  weak-view probabilities, the batch is aligned with the updated EMA, then the confidence
  mean and variance are updated with the aligned confidences, and the weights use the
  updated mean and variance. The first update sets the class-probability EMA to the
  batch mean (USB's p_model starts as None); mu starts at 1/C and sigma^2 at 1.
- Pseudo-labels are the arg-max of the raw (unaligned) weak-view probabilities, hard (USB's
  hard_label true, so its T is unused); alignment only sets the weights. The loss is
  the weighted cross-entropy of the strong views averaged over the whole batch.
- The variance is the unbiased one (USB's torch.var(unbiased=True)); a batch of a single
  item leaves it as it was (USB would take NaN).
- `dist_align: false` really turns alignment off (USB's flag is stored but the hook runs
  regardless). USB's `dist_uniform: false` (align to an EMA of the labeled predictions)
  and `per_class` (one Gaussian per class) are not offered: both are off in its configs.
- Under DDP USB all-gathers the probabilities before each update; here the processes
  all-gather their shares' sums (count, class probabilities; count, confidence, squared
  confidence), so every process holds the statistics of the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from labelbench.config import check_flag, check_number
from labelbench.strategies.semi import (
    WeakStrong,
    WeakStrongModule,
    ema_,
    masked_cross_entropy,
)


def softmatch_weights(confidence: Tensor, mu: Tensor, var: Tensor, n_sigma: float) -> Tensor:
    """exp(-min(c - mu, 0)^2 / (2 var / n_sigma^2)): 1 for confidence at or above mu, a
    Gaussian in the distance below it, of standard deviation sqrt(var) / n_sigma."""
    below = torch.clamp(confidence - mu, max=0.0)
    return torch.exp(-(below**2) / (2 * var / n_sigma**2))


def uniform_alignment(probs: Tensor, p_model: Tensor) -> Tensor:
    """Rows of `probs` times (1/C + 1e-6) / (p_model + 1e-6), renormalised (USB's
    DistAlignEMAHook with a uniform target)."""
    uniform = 1.0 / probs.shape[1]
    aligned = probs * (uniform + 1e-6) / (p_model + 1e-6)
    return aligned / aligned.sum(dim=1, keepdim=True)


class SoftMatchModule(WeakStrongModule):
    """SoftMatch's loss: cross-entropy on labeled weak views plus `unlabeled_weight` x the
    strong views' cross-entropy against the weak views' pseudo-labels, weighted by
    softmatch_weights. The statistics (p_model, prob_max_mu, prob_max_var and the count of
    updates) are buffers: checkpointed and moved with the module."""

    def __init__(
        self, *args: Any, ema_p: float, n_sigma: float, dist_align: bool, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ema_p, self.n_sigma, self.dist_align = ema_p, n_sigma, dist_align
        c = self.num_classes
        self.register_buffer("p_model", torch.full((c,), 1.0 / c))
        self.register_buffer("prob_max_mu", torch.tensor(1.0 / c))
        self.register_buffer("prob_max_var", torch.tensor(1.0))
        self.register_buffer("updates", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def align(self, probs: Tensor) -> Tensor:
        """Update the class-probability EMA with a batch's raw weak-view probabilities and
        return the batch aligned to uniform."""
        sums = torch.cat(
            [
                torch.tensor([len(probs)], dtype=torch.float64, device=probs.device),
                probs.sum(dim=0).double(),
            ]
        )
        sums = self.summed_over_processes(sums)
        mean = (sums[1:] / sums[0]).float()
        if self.updates == 0:  # USB: p_model starts as the first batch's mean
            self.p_model.copy_(mean)
        else:
            ema_(self.p_model, mean, self.ema_p)
        return uniform_alignment(probs, self.p_model)

    @torch.no_grad()
    def update_gaussian(self, confidence: Tensor) -> None:
        """Fold a batch's confidences into the EMAs of their mean and unbiased variance."""
        x = confidence.double()
        sums = torch.stack([x.new_tensor(float(len(x))), x.sum(), (x * x).sum()])
        n, s1, s2 = self.summed_over_processes(sums)
        ema_(self.prob_max_mu, (s1 / n).float(), self.ema_p)
        if n > 1:  # one item has no unbiased variance (USB: NaN)
            var = ((s2 - s1 * s1 / n) / (n - 1)).clamp_min(0.0)
            ema_(self.prob_max_var, var.float(), self.ema_p)

    def unlabeled_loss(
        self, positions: Tensor, logits_weak: Tensor, logits_strong: Tensor
    ) -> Tensor:
        with torch.no_grad():
            probs = logits_weak.detach().softmax(dim=1).float()
            pseudo = probs.argmax(dim=1)
            aligned = self.align(probs) if self.dist_align else probs
            confidence = aligned.max(dim=1).values
            self.update_gaussian(confidence)
            self.updates += 1
            weights = softmatch_weights(
                confidence, self.prob_max_mu, self.prob_max_var, self.n_sigma
            )
        return self.unlabeled_weight * masked_cross_entropy(logits_strong, pseudo, weights)


class SoftMatch(WeakStrong):
    """SoftMatch. ema_p: momentum of the statistics' EMAs in [0, 1) (USB 0.999); n_sigma:
    the Gaussian's standard deviation is sigma / n_sigma (USB 2); dist_align: uniform
    alignment of the confidences (USB: on); warmup_steps, mu, unlabeled_weight,
    include_labeled, augment: see WeakStrong and SemiSupervised."""

    module_class = SoftMatchModule

    def __init__(
        self,
        *args: Any,
        ema_p: float = 0.999,
        n_sigma: float = 2.0,
        dist_align: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ema_p = check_number("ema_p", ema_p, "[0, 1)")
        self.n_sigma = check_number("n_sigma", n_sigma, "(0, inf)")
        self.dist_align = check_flag("dist_align", dist_align)

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "ema_p": self.ema_p,
            "n_sigma": self.n_sigma,
            "dist_align": self.dist_align,
        }
