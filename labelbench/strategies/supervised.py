"""Supervised learning on the revealed labels only: the baseline every leaderboard compares to."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from labelbench.strategies.lightning import LabelModule, LightningStrategy


class SupervisedModule(LabelModule):
    """Cross-entropy on observed labels."""

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        return F.cross_entropy(self.net(x), y)


class Supervised(LightningStrategy):
    """Cross-entropy on the revealed items, early stopping on the validation split."""

    module_class = SupervisedModule
