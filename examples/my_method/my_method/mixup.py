"""mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization", ICLR): train on
convex combinations of pairs of labeled items and of their labels.

A labelbench strategy that lives in its own package: the shared loop (early stopping and
best weights on validation, checkpoints, exact resume) comes from LightningStrategy, and
the method is one training_loss. Defaults follow the reference implementation
(github.com/facebookresearch/mixup-cifar10, train.py): alpha = 1, one lambda per batch,
each item mixed with a random other item of the same batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import check_number
from labelbench.strategies.lightning import LabelModule, LightningStrategy


class MixupModule(LabelModule):
    """Cross-entropy on a mixed batch: lam * CE(y_i) + (1 - lam) * CE(y_j)."""

    def __init__(self, *args: Any, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mixing = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        x = self.weak(x)  # the strategy's weak view (strategy/augment=; none: the inputs)
        # lambda from torch's RNG and the pairing from the module's augmentation generator:
        # both are saved in checkpoints, so a resumed fit mixes exactly as an unbroken one.
        lam = float(self.mixing.sample())
        partner = torch.randperm(len(x), generator=self.generator).to(x.device)
        logits = self.net(lam * x + (1 - lam) * x[partner])
        return lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[partner])


class Mixup(LightningStrategy):
    """mixup on the revealed labels. alpha: the Beta(alpha, alpha) distribution lambda is
    drawn from (1.0 in the reference code; small alpha mixes little)."""

    module_class = MixupModule

    def __init__(self, *args: Any, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = check_number("alpha", alpha, "(0, inf)")

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "alpha": self.alpha}
