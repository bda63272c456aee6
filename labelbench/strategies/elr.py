"""Early-learning regularization (Liu et al. 2020): networks predict the true class of a
mislabeled item early in training, before they memorise its wrong label. ELR keeps, per
training item, a running average t_i of the network's predictions and adds
lam * log(1 - <p_i, t_i>) to the cross-entropy: the term pulls p_i towards t_i, so the
early prediction keeps outweighing the wrong label's pull."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import check_number
from labelbench.strategies.lightning import LabelModule, LightningStrategy

# Predictions are clamped away from 0 and 1 (as in the authors' code) so that
# log(1 - <p, t>) stays finite while p and t agree.
CLAMP = 1e-4


def elr_update(target: Tensor, probs: Tensor, beta: float) -> Tensor:
    """One EMA step of the targets: beta * target + (1 - beta) * probs, probs clamped to
    [CLAMP, 1 - CLAMP] and renormalised. `probs` carries no gradient."""
    p = probs.clamp(CLAMP, 1.0 - CLAMP)
    return beta * target + (1.0 - beta) * p / p.sum(dim=1, keepdim=True)


def elr_penalty(probs: Tensor, target: Tensor) -> Tensor:
    """mean_i log(1 - <p_i, t_i>), p_i clamped as in elr_update; gradients flow through p."""
    p = probs.clamp(CLAMP, 1.0 - CLAMP)
    return torch.log(1.0 - (p * target).sum(dim=1)).mean()


class ELRModule(LabelModule):
    """Cross-entropy + lam * ELR penalty; the targets are a buffer (one row per training
    item, in checkpoints with the weights), updated for each batch before its loss."""

    def __init__(
        self, *args: Any, beta: float, lam: float, num_classes: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.beta, self.lam = beta, lam
        self.register_buffer("elr_target", torch.zeros(len(self.data["train_y"]), num_classes))

    def training_loss(self) -> Tensor:
        pick, x, y = self.next_labeled_at()
        logits = self.net(self.weak(x))
        probs = torch.softmax(logits, dim=1)
        with torch.no_grad():
            self.elr_target[pick] = elr_update(self.elr_target[pick], probs.detach(), self.beta)
        return F.cross_entropy(logits, y) + self.lam * elr_penalty(probs, self.elr_target[pick])


class ELR(LightningStrategy):
    """Early-learning regularization. beta: EMA weight of a target's past, in [0, 1)
    (0.7 in the paper for CIFAR-10); lam: weight of the penalty, >= 0 (3 in the paper).
    Other arguments as LightningStrategy."""

    module_class = ELRModule

    def __init__(self, *args: Any, beta: float = 0.7, lam: float = 3.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.beta = check_number("beta", beta, "[0, 1)")
        self.lam = check_number("lam", lam)
        self._num_classes = 0

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None):
        self._num_classes = task.num_classes
        return super().fit(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "beta": self.beta,
            "lam": self.lam,
            "num_classes": self._num_classes,
        }
