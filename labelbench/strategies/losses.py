"""Classification losses for learning from noisy labels: small objects called as
`loss(logits, targets)` -> the mean over the batch (a scalar tensor).

`targets` are class ids (int64), or one row of class probabilities per item (float). Every
loss here is defined per class — `per_class(logits)[i, k]` is item i's loss were its label
k — so a soft row t reads as the expected loss under t, sum_k t_k per_class[i, k]. For
cross-entropy and label smoothing that is the usual soft-target loss; for the robust
losses (GCE, SCE, MAE, bootstrap) the papers define only class ids, and soft rows are this
linear extension of them.

The robust losses are bounded or down-weight items the network disagrees with, so wrong
labels pull less once the clean majority has been learnt (Ghosh et al. 2017; Zhang &
Sabuncu 2018; Wang et al. 2019). Config group: conf/strategy/loss/.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_number

# SCE's reverse cross-entropy takes log of a one-hot label: log 0 is clamped to this
# (A = -4 in Wang et al. 2019), which makes the reverse term -A (1 - p_y) = 4 (1 - p_y).
LOG_ZERO = -4.0


class Loss:
    """Base: subclasses give `per_class`; `per_item` reads it at the targets and `__call__`
    averages over the batch."""

    def per_class(self, logits: Tensor) -> Tensor:
        """(n, K): each item's loss if its label were class k."""
        raise NotImplementedError

    def per_item(self, logits: Tensor, targets: Tensor) -> Tensor:
        """(n,): each item's loss against its class id or its row of class probabilities."""
        table = self.per_class(logits)
        if targets.is_floating_point():
            return (table * targets.to(table.dtype)).sum(dim=1)
        return table.gather(1, targets.long().unsqueeze(1)).squeeze(1)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.per_item(logits, targets).mean()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class CrossEntropy(Loss):
    """-log p_y: the default, and the reference every robust loss is compared with."""

    def per_class(self, logits: Tensor) -> Tensor:
        return -F.log_softmax(logits, dim=1)

    def per_item(self, logits: Tensor, targets: Tensor) -> Tensor:
        # torch's own kernel: the same value, for class ids and probability rows alike
        return F.cross_entropy(logits, targets, reduction="none")


class GCE(Loss):
    """Generalized cross-entropy (Zhang & Sabuncu 2018): (1 - p_y^q) / q. q -> 0 is
    cross-entropy, q = 1 is MAE / 2; in between it keeps CE's fast fitting while bounding
    the pull of items the network finds unlikely. q in (0, 1]; 0.7 in the paper."""

    def __init__(self, q: float = 0.7) -> None:
        self.q = check_number("q", q, "(0, 1]")

    def per_class(self, logits: Tensor) -> Tensor:
        p = torch.softmax(logits, dim=1)
        return (1.0 - p.pow(self.q)) / self.q


class SCE(Loss):
    """Symmetric cross-entropy (Wang et al. 2019): alpha CE + beta RCE, where the reverse
    cross-entropy -sum_k p_k log y_k, with log 0 clamped to LOG_ZERO, is -LOG_ZERO (1 - p_y).
    alpha, beta >= 0, not both 0; the paper's CIFAR-10 setting is alpha 0.1, beta 1."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0) -> None:
        self.alpha = check_number("alpha", alpha)
        self.beta = check_number("beta", beta)
        if self.alpha == 0 and self.beta == 0:
            raise ConfigError("alpha=0 and beta=0 leave no loss; allowed: alpha + beta > 0")

    def per_class(self, logits: Tensor) -> Tensor:
        log_p = F.log_softmax(logits, dim=1)
        reverse = -LOG_ZERO * (1.0 - log_p.exp())
        return self.alpha * -log_p + self.beta * reverse


class MAE(Loss):
    """Mean absolute error between the predicted distribution and the one-hot label,
    ||p - e_y||_1 = 2 (1 - p_y) (Ghosh et al. 2017): symmetric, hence noise-tolerant, but
    slow to fit with many classes."""

    def per_class(self, logits: Tensor) -> Tensor:
        return 2.0 * (1.0 - torch.softmax(logits, dim=1))


class Bootstrap(Loss):
    """Bootstrapping (Reed et al. 2015): the target is beta e_y + (1 - beta) z, with z the
    network's own prediction — its probabilities (soft; the extra term is then the
    prediction's entropy, gradient included, as in the paper) or its one-hot argmax
    (hard, no gradient through the argmax). beta in [0, 1]; the paper uses 0.95 soft and
    0.8 hard."""

    def __init__(self, beta: float = 0.95, hard: bool = False) -> None:
        self.beta = check_number("beta", beta, "[0, 1]")
        self.hard = bool(hard)

    def per_class(self, logits: Tensor) -> Tensor:
        log_p = F.log_softmax(logits, dim=1)
        if self.hard:
            own = -log_p.gather(1, log_p.detach().argmax(dim=1, keepdim=True))
        else:
            own = -(log_p.exp() * log_p).sum(dim=1, keepdim=True)
        return self.beta * -log_p + (1.0 - self.beta) * own


class LabelSmoothing(Loss):
    """Cross-entropy against (1 - epsilon) e_y + epsilon / K (Szegedy et al. 2016; as a
    noisy-label remedy, Lukasik et al. 2020). epsilon in [0, 1]."""

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = check_number("epsilon", epsilon, "[0, 1]")

    def per_class(self, logits: Tensor) -> Tensor:
        nll = -F.log_softmax(logits, dim=1)
        return (1.0 - self.epsilon) * nll + self.epsilon * nll.mean(dim=1, keepdim=True)

    def per_item(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.epsilon)
