"""FreeMatch (Wang et al. 2023): FixMatch with self-adaptive thresholds (SAT) and a
self-adaptive class-fairness loss (SAF).

The global threshold tau_t is an EMA of the unlabeled batches' mean confidence (the
0.8-quantile with `use_quantile`); the local ones scale it per class by the EMA of the
mean class probabilities p_t, MaxNorm'd: class c needs tau_t * p_t(c) / max p_t. The
fairness loss compares the EMA class distribution (p_t over the EMA histogram of
pseudo-labels h_t) with the strong views' mean prediction over their histogram.

Checked against USB (microsoft/Semi-supervised-learning,
semilearn/algorithms/freematch/freematch.py and utils.py, FreeMatchThresholingHook) and
TorchSSL (models/freematch/):

- Order within a step: the statistics are first updated with this step's weak-view
  probabilities, then the mask uses the updated thresholds (USB's `masking` calls
  `update` first; TorchSSL likewise).
- Start values: USB starts p_t, h_t and tau_t at 1; the paper and TorchSSL at 1/C
  (`uniform_init`). With USB's start, tau_t falls from 1 towards the mean confidence
  (a high threshold at first); with 1/C it rises from chance.
- Unlabeled loss: hard pseudo-labels (USB's `hard_label` true, so its T is unused),
  cross-entropy of the strong view masked and averaged over the whole batch; the fairness
  loss on the masked items' strong-view logits only, 0 when none passes, as USB's
  `entropy_loss` (1/0 replaced by 0, log(x + 1e-12)).
- Under DDP USB all-gathers the weak-view probabilities before updating its statistics;
  here the processes all-gather their shares' sums (count, confidence, class
  probabilities, pseudo-label histogram; the confidences themselves for the quantile), so
  every process holds the statistics of the whole batch. The fairness loss uses each
  process's share, as in USB.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from labelbench.config import check_flag, check_number
from labelbench.strategies.semi import (
    WeakStrong,
    WeakStrongModule,
    confidence_mask,
    ema_,
    masked_cross_entropy,
)

QUANTILE = 0.8  # USB: torch.quantile(max_probs, 0.8) with use_quantile
CLIP = 0.95  # USB: torch.clip(time_p, 0.0, 0.95) with clip_thresh


def freematch_thresholds(time_p: Tensor, p_model: Tensor) -> Tensor:
    """Self-adaptive class-wise thresholds: tau_t * p_t(c) / max_c p_t(c)."""
    return time_p * p_model / p_model.max()


def _inverse_or_zero(x: Tensor) -> Tensor:
    # USB's replace_inf_to_zero(1 / x): a class never seen weighs nothing.
    return torch.where(x > 0, 1.0 / x, torch.zeros_like(x))


def fairness_loss(logits_strong: Tensor, p_model: Tensor, label_hist: Tensor) -> Tensor:
    """SAF (the paper's eq. 11; USB's `entropy_loss`): sum_c a_c log(b_c + 1e-12) with
    a = SumNorm(p_t / h_t) from the EMA statistics and b = SumNorm(pbar / hbar) from the
    strong views' logits (the masked items): pbar their mean class probabilities, hbar the
    histogram of their predictions. Minimised, it pushes the predictions towards
    diversity across classes."""
    probs = logits_strong.softmax(dim=1)
    hist = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).to(probs.dtype)
    hist = hist / hist.sum()
    target = p_model * _inverse_or_zero(label_hist)
    target = (target / target.sum()).detach()
    mean = probs.mean(dim=0) * _inverse_or_zero(hist).detach()
    mean = mean / mean.sum()
    return (target * torch.log(mean + 1e-12)).sum()


class FreeMatchModule(WeakStrongModule):
    """FreeMatch's loss: cross-entropy on labeled weak views, `unlabeled_weight` x the
    strong views' masked cross-entropy against the weak views' pseudo-labels, and
    `fairness_weight` x the fairness loss. The statistics (time_p, p_model, label_hist)
    are buffers: checkpointed and moved with the module."""

    def __init__(
        self,
        *args: Any,
        ema_p: float,
        fairness_weight: float,
        use_quantile: bool,
        clip_thresh: bool,
        uniform_init: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ema_p, self.fairness_weight = ema_p, fairness_weight
        self.use_quantile, self.clip_thresh = use_quantile, clip_thresh
        start = 1.0 / self.num_classes if uniform_init else 1.0
        self.register_buffer("p_model", torch.full((self.num_classes,), start))
        self.register_buffer("label_hist", torch.full((self.num_classes,), start))
        self.register_buffer("time_p", torch.tensor(start))

    def learns_from_unlabeled(self) -> bool:
        return self.unlabeled_weight != 0 or self.fairness_weight != 0

    @torch.no_grad()
    def update_statistics(self, probs: Tensor) -> None:
        """Fold one unlabeled batch's weak-view class probabilities into the EMAs."""
        confidence, pseudo = probs.max(dim=1)
        c = self.num_classes
        sums = torch.cat(
            [
                torch.tensor([len(probs)], dtype=torch.float64, device=probs.device),
                confidence.sum().reshape(1).double(),
                probs.sum(dim=0).double(),
                torch.bincount(pseudo, minlength=c).double(),
            ]
        )
        sums = self.summed_over_processes(sums)
        n, hist = sums[0], sums[2 + c :]
        if self.use_quantile:
            level = torch.quantile(self.confidences_over_processes(confidence), QUANTILE)
        else:
            level = sums[1] / n
        m = self.ema_p
        ema_(self.time_p, level.float(), m)
        if self.clip_thresh:
            self.time_p.clamp_(0.0, CLIP)
        ema_(self.p_model, (sums[2 : 2 + c] / n).float(), m)
        ema_(self.label_hist, (hist / hist.sum()).float(), m)

    def confidences_over_processes(self, confidence: Tensor) -> Tensor:
        """The confidences of the whole global batch (every process's share) under DDP."""
        if self.trainer.world_size == 1:
            return confidence
        # Shares may differ in size: pad each to the global batch with NaN, gather, drop.
        padded = confidence.new_full((self.streams["unlabeled"].batch_size,), float("nan"))
        padded[: len(confidence)] = confidence
        gathered = self.all_gather(padded).reshape(-1)
        return gathered[~gathered.isnan()]

    def unlabeled_loss(
        self, positions: Tensor, logits_weak: Tensor, logits_strong: Tensor
    ) -> Tensor:
        with torch.no_grad():
            probs = logits_weak.detach().softmax(dim=1).float()
            self.update_statistics(probs)
            confidence, pseudo = probs.max(dim=1)
            thresholds = freematch_thresholds(self.time_p, self.p_model)
            mask = confidence_mask(confidence, thresholds[pseudo])
        loss = self.unlabeled_weight * masked_cross_entropy(logits_strong, pseudo, mask)
        kept = mask.bool()
        if self.fairness_weight and kept.any():
            fair = fairness_loss(logits_strong[kept], self.p_model, self.label_hist)
            loss = loss + self.fairness_weight * fair
        return loss


class FreeMatch(WeakStrong):
    """FreeMatch. ema_p: momentum of the statistics' EMAs in [0, 1) (USB 0.999);
    fairness_weight: weight of the fairness loss (USB's ent_loss_ratio); use_quantile: the
    global threshold follows the 0.8-quantile of the confidences instead of their mean;
    clip_thresh: cap the global threshold at 0.95; uniform_init: start the statistics at
    1/C (the paper, TorchSSL) instead of 1 (USB); warmup_steps, mu, unlabeled_weight,
    include_labeled, augment: see WeakStrong and SemiSupervised."""

    module_class = FreeMatchModule

    def __init__(
        self,
        *args: Any,
        ema_p: float = 0.999,
        fairness_weight: float = 0.01,
        use_quantile: bool = False,
        clip_thresh: bool = False,
        uniform_init: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ema_p = check_number("ema_p", ema_p, "[0, 1)")
        self.fairness_weight = check_number("fairness_weight", fairness_weight)
        self.use_quantile = check_flag("use_quantile", use_quantile)
        self.clip_thresh = check_flag("clip_thresh", clip_thresh)
        self.uniform_init = check_flag("uniform_init", uniform_init)

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "ema_p": self.ema_p,
            "fairness_weight": self.fairness_weight,
            "use_quantile": self.use_quantile,
            "clip_thresh": self.clip_thresh,
            "uniform_init": self.uniform_init,
        }
