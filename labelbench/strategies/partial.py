"""Strategies for candidate sets (kind 'partial'): partial labels (the true class among a
few distractors) and complementary labels (every class but one the item is not).

Both train the run's network with the shared loop on the revealed items' candidate masks
(train_y: (items, classes) float, 1 on a candidate); validation keeps its single labels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.labels.pool import LabelPool
from labelbench.strategies.lightning import LabelModule, LightningStrategy, NetPredictor

# Keeps PRODEN's renormalisation defined when the model gives every candidate probability 0
# in float32: the weights then fall back to (nearly) uniform over the candidates.
TINY = 1e-12


def proden_weights(probs: Tensor, candidates: Tensor) -> Tensor:
    """PRODEN's confidence update: the model's probabilities restricted to each item's
    candidates and renormalised, so every row sums to 1 and is 0 off the candidates."""
    w = (probs + TINY) * candidates
    return w / w.sum(dim=1, keepdim=True)


def complementary_loss(logits: Tensor, candidates: Tensor) -> Tensor:
    """SCL-NL (Chou et al. 2020), for any candidate set: -sum over the classes outside the
    set of log(1 - p_j), averaged over the rows. log(1 - p_j) is taken as the logsumexp of
    the other classes' log-probabilities, exact even where p_j rounds to 1 (there
    log1p(-p_j) is -inf and its gradient is lost); this costs (rows, classes, classes)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    k = log_p.shape[1]
    others = torch.zeros(k, k, device=log_p.device).fill_diagonal_(float("-inf"))
    log_not = torch.logsumexp(log_p.unsqueeze(1) + others, dim=2)  # [i, j]: log(1 - p_ij)
    outside = 1.0 - candidates.to(log_not.dtype)
    return -(outside * log_not).sum(dim=1).mean()


class ProdenModule(LabelModule):
    """-sum_j w_ij log p_ij over each item's candidates, the weights w (one row per revealed
    item, a buffer so checkpoints carry it) starting uniform over the candidates and updated
    from the model's predictions on every batch the item is in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        candidates = self.data["train_y"]
        self.register_buffer("confidence", candidates / candidates.sum(dim=1, keepdim=True))

    def training_loss(self) -> Tensor:
        pick, x, candidates = self.next_labeled_at()
        log_p = F.log_softmax(self.net(self.weak(x)).float(), dim=1)
        loss = -(self.confidence[pick] * log_p).sum(dim=1).mean()
        # The update uses this step's (pre-step) predictions, as the authors' code does.
        # Under DDP each process updates the rows of its own share of the batch only.
        self.confidence[pick] = proden_weights(log_p.detach().exp(), candidates)
        return loss


class ComplementaryModule(LabelModule):
    """SCL-NL on each item's candidate set."""

    def training_loss(self) -> Tensor:
        x, candidates = self.next_labeled()
        return complementary_loss(self.net(self.weak(x)), candidates)


class FromCandidates(LightningStrategy):
    """Base: train on the candidate masks of the revealed items. Arguments as
    LightningStrategy."""

    accepts: tuple[str, ...] = ("partial",)

    def tensors(self, pool: LabelPool, task) -> dict[str, Tensor]:
        data = super().tensors(pool, task)
        data["train_y"] = torch.tensor(pool.candidates, dtype=torch.float32)
        return data

    def fit(self, pool: LabelPool, task, model, trainer, *, seed: int, checkpoint=None):
        if len(pool) and not pool.candidates.any(axis=1).all():
            raise ValueError("every revealed item needs at least one candidate class")
        predictor: NetPredictor = super().fit(
            pool, task, model, trainer, seed=seed, checkpoint=checkpoint
        )
        predictor.fit_info["mean_candidates"] = float(pool.candidates.sum(axis=1).mean())
        return predictor


class Proden(FromCandidates):
    """PRODEN (Lv et al. 2020): progressive identification of the true label among the
    candidates, by self-training confidence weights."""

    module_class = ProdenModule


class Complementary(FromCandidates):
    """The complementary-label loss SCL-NL (Chou et al. 2020): push down the probability of
    every class outside the candidate set. For a complementary label that is one class."""

    module_class = ComplementaryModule
