"""Supervised learning on the revealed labels only: the baseline every leaderboard compares to."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from labelbench.strategies.lightning import LabelModule, LightningStrategy
from labelbench.strategies.losses import CrossEntropy, Loss


class SupervisedModule(LabelModule):
    """A loss (cross-entropy by default) on observed labels."""

    def __init__(self, *args: Any, loss: Loss | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss = loss if loss is not None else CrossEntropy()

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        return self.loss(self.net(self.weak(x)), y)


class Supervised(LightningStrategy):
    """The loss on the revealed items, early stopping on the validation split.

    loss: a labelbench.strategies.losses object (conf/strategy/loss/: ce, gce, sce, mae,
    bootstrap, label_smoothing); cross-entropy when None."""

    module_class = SupervisedModule

    def __init__(self, *args: Any, loss: Loss | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss = loss if loss is not None else CrossEntropy()

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "loss": self.loss}
