"""Mean teacher (Tarvainen & Valpola 2017): a student learns from labels and from agreeing
with a teacher whose weights are an exponential moving average of the student's."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import ConfigError
from labelbench.strategies.schedules import steps_of
from labelbench.strategies.semi import (
    SemiSupervised,
    SemiSupervisedModule,
    linear_rampup,
    sigmoid_rampup,
)

RAMPS = {"linear": linear_rampup, "sigmoid": sigmoid_rampup}


class MeanTeacherModule(SemiSupervisedModule):
    """Cross-entropy of the student on weak views of labeled items, plus w(t) times the
    mean squared difference between the student's and the teacher's class probabilities
    on two independent weak views of unlabeled items. w(t) ramps up to `unlabeled_weight`
    over `rampup_steps` (steps, or a fraction of training below 1). The teacher is the
    shared loop's EMA of the student (`ema_decay`): it is validated and predicts."""

    def __init__(self, *args: Any, rampup_steps: float, ramp: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.ema is None:
            raise ValueError("mean teacher needs the EMA of the shared loop (ema_decay)")
        self.rampup = steps_of("rampup_steps", rampup_steps, self.max_steps)
        self.ramp = RAMPS[ramp]

    @property
    def teacher(self) -> nn.Module:
        return self.ema.average

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        unlabeled = self.next_unlabeled()
        weight = self.unlabeled_weight * self.ramp(self.steps_done, self.rampup)
        if unlabeled is None or weight == 0:
            return self.labeled_loss(x, y)
        _, xu = unlabeled
        logits_x, logits_u = self.student_logits(self.weak(x), self.weak(xu))
        with torch.no_grad():
            target = self.teacher(self.weak(xu)).softmax(dim=1)
        consistency = F.mse_loss(logits_u.softmax(dim=1), target)
        return F.cross_entropy(logits_x, y) + weight * consistency


class MeanTeacher(SemiSupervised):
    """Mean teacher. ema_decay (the shared loop's, required here): the teacher's decay.
    rampup_steps: optimizer steps (or a fraction of training) over which the consistency
    weight rises to `unlabeled_weight`; ramp: `linear` (USB) or `sigmoid`
    (exp(-5 (1 - t)^2), the original paper's)."""

    module_class = MeanTeacherModule

    def __init__(
        self, *args: Any, rampup_steps: float = 0.4, ramp: str = "linear", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.recipe.ema_decay is None:
            raise ConfigError(
                "ema_decay=None: mean teacher's teacher is the EMA of the student's weights;"
                " set it in [0, 1) (0.999 in USB)"
            )
        if ramp not in RAMPS:
            raise ConfigError(f"ramp={ramp!r} is not one of {', '.join(RAMPS)}")
        self.rampup_steps, self.ramp = rampup_steps, ramp
        if self.max_steps is not None:
            steps_of("rampup_steps", rampup_steps, self.max_steps)

    def module_kwargs(self) -> dict[str, Any]:
        return {**super().module_kwargs(), "rampup_steps": self.rampup_steps, "ramp": self.ramp}
