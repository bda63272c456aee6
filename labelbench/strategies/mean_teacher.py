"""Mean teacher (Tarvainen & Valpola 2017): a student learns from labels and from agreeing
with a teacher whose weights are an exponential moving average of the student's."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from labelbench.config import check_int, check_number
from labelbench.strategies.semi import (
    SemiSupervised,
    SemiSupervisedModule,
    sigmoid_rampup,
)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameter by parameter; buffers
    are copied from the student."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


class MeanTeacherModule(SemiSupervisedModule):
    """Cross-entropy of the student on weak views of labeled items, plus w(t) times the
    mean squared difference between the student's and the teacher's class probabilities
    on two independent weak views of unlabeled items. w(t) ramps up to `unlabeled_weight`
    over `rampup_steps` (sigmoid-shaped). The teacher is validated and predicts."""

    def __init__(self, *args: Any, ema_decay: float, rampup_steps: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ema_decay, self.rampup_steps = ema_decay, rampup_steps
        self.teacher = copy.deepcopy(self.net).requires_grad_(False)  # a child: checkpointed

    @property
    def eval_net(self) -> nn.Module:
        return self.teacher

    def training_loss(self) -> Tensor:
        x, y = self.next_labeled()
        unlabeled = self.next_unlabeled()
        weight = self.unlabeled_weight * sigmoid_rampup(self.steps_done, self.rampup_steps)
        if unlabeled is None or weight == 0:
            return self.labeled_loss(x, y)
        _, xu = unlabeled
        logits_x, logits_u = self.student_logits(self.weak(x), self.weak(xu))
        with torch.no_grad():
            target = self.teacher(self.weak(xu)).softmax(dim=1)
        consistency = F.mse_loss(logits_u.softmax(dim=1), target)
        return F.cross_entropy(logits_x, y) + weight * consistency

    def after_step(self) -> None:
        # Early on the teacher follows the student closely (decay 1 - 1/(t+1)), so it is not
        # stuck averaging in the random initial weights.
        decay = min(self.ema_decay, 1.0 - 1.0 / (self.steps_done + 1))
        ema_update(self.teacher, self.net, decay)


class MeanTeacher(SemiSupervised):
    """Mean teacher. ema_decay: in [0, 1); rampup_steps: optimizer steps over which the
    consistency weight rises to `unlabeled_weight`."""

    module_class = MeanTeacherModule

    def __init__(
        self, *args: Any, ema_decay: float = 0.99, rampup_steps: int = 500, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.ema_decay = check_number("ema_decay", ema_decay, "[0, 1)")
        self.rampup_steps = check_int("rampup_steps", rampup_steps, unit="optimizer steps")

    def module_kwargs(self) -> dict[str, Any]:
        return {
            **super().module_kwargs(),
            "ema_decay": self.ema_decay,
            "rampup_steps": self.rampup_steps,
        }
