"""Self-training: rounds of pseudo-labelling the unlabeled pool with the current model and
training a fresh model on the revealed items plus the confident pseudo-labels (or, with
`soft`, on the teacher's full class probabilities, as in SimCLRv2's distillation)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from labelbench.config import check_int, check_number
from labelbench.strategies.lightning import LightningStrategy, NetPredictor
from labelbench.strategies.semi import (
    SoftTargetModule,
    one_hot,
    soft_targets,
)


class SelfTraining(LightningStrategy):
    """rounds: pseudo-labelling rounds after the first model (0: supervised only);
    threshold: confidence in (0, 1] a prediction needs to become a hard pseudo-label;
    soft: train on the teacher's probabilities for every unlabeled item instead;
    pseudo_weight: weight of a pseudo-labeled item relative to a revealed one."""

    module_class = SoftTargetModule

    def __init__(
        self,
        *args: Any,
        rounds: int = 2,
        threshold: float = 0.9,
        soft: bool = False,
        pseudo_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rounds = check_int("rounds", rounds)
        self.threshold = check_number("threshold", threshold, "(0, 1]")
        self.soft = bool(soft)
        self.pseudo_weight = check_number("pseudo_weight", pseudo_weight)

    def pseudo_labels(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(kept positions, their target rows) from the teacher's class probabilities."""
        if self.soft:
            return np.arange(len(proba)), proba.astype(np.float32)
        keep = np.flatnonzero(proba.max(axis=1) >= self.threshold)
        return keep, one_hot(proba[keep].argmax(axis=1), proba.shape[1])

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        base = self.tensors(pool, task)
        revealed = one_hot(pool.labels, task.num_classes)
        indices, targets = pool.indices, revealed
        weights = np.ones(len(pool), dtype=np.float32)
        steps, pseudo_counts = 0.0, []
        for r in range(self.rounds + 1):
            data = {
                **base,
                **{k: torch.tensor(v) for k, v in soft_targets(indices, targets, weights).items()},
            }
            # Every round is a fresh model with its own checkpoints: a killed run resumes
            # inside the round it was in, replaying finished rounds from their last state.
            where = (
                None
                if checkpoint is None
                else dataclasses.replace(checkpoint, dir=checkpoint.dir / f"round{r}")
            )
            predictor = self.train(data, task, model, trainer, seed=seed, checkpoint=where)
            steps += predictor.fit_info["steps"]
            unlabeled = pool.unlabeled_data
            if r == self.rounds or len(unlabeled) == 0:
                break
            keep, pseudo = self.pseudo_labels(predictor.predict_proba(task.x[unlabeled]))
            pseudo_counts.append(len(keep))
            indices = np.concatenate([pool.indices, unlabeled[keep]])
            targets = np.concatenate([revealed, pseudo])
            weights = np.concatenate(
                [np.ones(len(pool)), np.full(len(keep), self.pseudo_weight)]
            ).astype(np.float32)
        predictor.fit_info.update(
            {
                "steps": steps,
                "rounds": float(len(pseudo_counts)),
                "pseudo_labeled": float(pseudo_counts[-1] if pseudo_counts else 0),
            }
        )
        return predictor
