"""Knowledge distillation (Hinton et al. 2015): teachers trained on the revealed labels
pass their temperature-softened predictions to a student. Under label noise the teachers'
early-stopped predictions spread a wrong label's mass over the classes the input resembles,
so the student learns less of it (Li et al. 2017 distil from a cleaner teacher; here the
teachers learn from the same noisy labels, as in born-again networks)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from labelbench.config import ConfigError, check_int, check_number
from labelbench.strategies.lightning import LabelModule, NetPredictor, sub_checkpoint
from labelbench.strategies.supervised import Supervised, SupervisedModule

# Teacher i trains with seed + i * TEACHER_SEED_STRIDE; the student with the next one.
TEACHER_SEED_STRIDE = 1009


def soften(logits: Tensor, temperature: float) -> Tensor:
    """softmax(logits / T), rows summing to 1."""
    return torch.softmax(logits / temperature, dim=1)


class DistillModule(LabelModule):
    """Per item: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * loss(student,
    label), the second term only where the item has a label (`train_hard` >= 0); averaged
    over the batch. `train_y` holds the teachers' softened rows (soft targets)."""

    def __init__(
        self, *args: Any, temperature: float, alpha: float, loss: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha, self.loss = temperature, alpha, loss

    def training_loss(self) -> Tensor:
        pick, x, soft = self.next_labeled_at()
        logits = self.net(self.weak(x))
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="none").sum(dim=1)
        per_item = self.alpha * t * t * kl
        if self.alpha < 1:
            hard = self.data["train_hard"][pick]
            labeled = (hard >= 0).to(logits.dtype)
            hard_loss = self.loss.per_item(logits, hard.clamp_min(0))
            per_item = per_item + (1.0 - self.alpha) * labeled * hard_loss
        return per_item.mean()


TEACHER_LABELS = ("revealed", "oracle")


class Distill(Supervised):
    """Knowledge distillation. teachers: networks trained on the revealed labels with
    `loss` (>= 1; several, each with its own seed, form an ensemble whose softened
    predictions are averaged). teacher_labels: 'revealed' (what the budget bought), or
    'oracle': the true labels of the whole pool, a marked upper bound (the record says
    `upper_bound` and the table names it distill[oracle]). temperature: T > 0 softening teacher and student logits
    (the KL term is scaled by T^2, as in Hinton et al.). alpha: weight of the KL term, in
    [0, 1]; 1 - alpha weighs `loss` on the revealed labels. unlabeled: the student also
    distils on the unrevealed pool items (no label, KL term only). Other arguments as
    Supervised."""

    def __init__(
        self,
        *args: Any,
        teachers: int = 1,
        temperature: float = 2.0,
        alpha: float = 0.7,
        unlabeled: bool = True,
        teacher_labels: str = "revealed",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if teacher_labels not in TEACHER_LABELS:
            raise ConfigError(
                f"teacher_labels={teacher_labels!r} is not one of {', '.join(TEACHER_LABELS)}"
            )
        self.upper_bound = teacher_labels == "oracle"
        self.teachers = check_int("teachers", teachers, least=1)
        self.temperature = check_number("temperature", temperature, "(0, inf)")
        self.alpha = check_number("alpha", alpha, "[0, 1]")
        self.unlabeled = bool(unlabeled)

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        base = self.tensors(pool, task)
        if self.upper_bound:
            if self.oracle_pool is None:
                raise ValueError("teacher_labels=oracle needs the run to hand over oracle_pool")
            teach = self.tensors(self.oracle_pool, task)
        else:
            teach = base
        students = (
            np.concatenate([pool.indices, pool.unlabeled_data]) if self.unlabeled else pool.indices
        )
        soft = torch.zeros(len(students), task.num_classes)
        teacher_val = []
        for i in range(self.teachers):
            where = sub_checkpoint(checkpoint, f"teacher{i}")
            teacher = self.train(
                teach,
                task,
                model,
                trainer,
                seed=seed + i * TEACHER_SEED_STRIDE,
                checkpoint=where,
                make_module=SupervisedModule,
            )
            soft += soften(teacher.logits(task.x[students]), self.temperature) / self.teachers
            teacher_val.append(teacher.fit_info.get(f"best_{self.monitor}", float("nan")))
        hard = np.full(len(students), -1, dtype=np.int64)
        hard[: len(pool)] = pool.labels
        data = {
            **base,
            "train_idx": torch.tensor(students),
            "train_y": soft,
            "train_hard": torch.tensor(hard),
        }
        student = functools.partial(DistillModule, temperature=self.temperature, alpha=self.alpha)
        predictor = self.train(
            data,
            task,
            model,
            trainer,
            seed=seed + self.teachers * TEACHER_SEED_STRIDE,
            checkpoint=sub_checkpoint(checkpoint, "student"),
            make_module=student,
        )
        predictor.fit_info.update(
            {
                "teachers": float(self.teachers),
                "distilled": float(len(students)),
                f"teacher_{self.monitor}": float(np.mean(teacher_val)),
            }
        )
        return predictor
