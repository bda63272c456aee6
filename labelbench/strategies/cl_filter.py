"""Confident-learning filter (Northcutt et al. 2021, via cleanlab): estimate which revealed
labels are wrong from out-of-fold predicted probabilities, drop them, and train on the rest.

The out-of-fold probabilities come from the strategy's own network, trained by the shared
loop on k - 1 folds of the revealed items for `cv_max_steps` steps (early stopping on the
validation split) and predicting the held-out fold. Cheaper stand-ins (a logistic
regression on the raw inputs) would judge the labels with a different model than the one
that learns from them and, on images or embeddings it underfits, flag hard-but-correct
items; the network's own probabilities are what cleanlab's authors recommend.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_int
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.lightning import NetPredictor, sub_checkpoint
from labelbench.strategies.supervised import Supervised

FILTERS = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)


class CLFilter(Supervised):
    """Confident-learning filter. folds: cross-validation folds (>= 2; every class needs at
    least that many revealed labels). cv_max_steps: optimizer steps of each fold's network.
    filter_by: cleanlab's rule (`cleanlab.filter.find_label_issues`): prune_by_noise_rate
    (its default), prune_by_class, both, confident_learning, predicted_neq_given,
    low_normalized_margin, low_self_confidence. The final network trains on the kept
    labels with `loss`; after fit, `removed_` holds the dataset indices it dropped. Other
    arguments as Supervised."""

    def __init__(
        self,
        *args: Any,
        folds: int = 3,
        cv_max_steps: int = 500,
        filter_by: str = "prune_by_noise_rate",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.folds = check_int("folds", folds, least=2)
        self.cv_max_steps = check_int("cv_max_steps", cv_max_steps, least=1, unit="optimizer steps")
        if filter_by not in FILTERS:
            raise ConfigError(f"filter_by={filter_by!r} is not one of {', '.join(FILTERS)}")
        self.filter_by = filter_by

    def check(self, pool: LabelPool, task: TaskView) -> None:
        super().check(pool, task)
        counts = pool.class_counts()
        fewest = int(counts.argmin())
        if counts[fewest] < self.folds:
            raise ConfigError(
                f"folds={self.folds} needs {self.folds} revealed labels of every class but"
                f" class {fewest} has {counts[fewest]}; allowed: fewer folds (>= 2) or more labels"
            )

    def out_of_fold(self, pool, task, model, trainer, *, seed, checkpoint) -> np.ndarray:
        """Predicted probabilities for each revealed item from a network that never saw it."""
        from sklearn.model_selection import StratifiedKFold

        cv = copy.copy(self)
        cv.max_steps, cv.max_epochs = self.cv_max_steps, None
        base = self.tensors(pool, task)
        probs = np.zeros((len(pool), task.num_classes))
        splits = StratifiedKFold(self.folds, shuffle=True, random_state=seed)
        for fold, (train, held_out) in enumerate(splits.split(pool.indices, pool.labels)):
            data = {
                **base,
                "train_idx": base["train_idx"][train],
                "train_y": base["train_y"][train],
            }
            where = sub_checkpoint(checkpoint, f"fold{fold}")
            predictor = cv.train(data, task, model, trainer, seed=seed, checkpoint=where)
            probs[held_out] = predictor.predict_proba(task.x[pool.indices[held_out]])
        return probs

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        from cleanlab.filter import find_label_issues

        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        probs = self.out_of_fold(pool, task, model, trainer, seed=seed, checkpoint=checkpoint)
        # n_jobs=1: no worker processes forked inside a (possibly distributed) training run
        issues = find_label_issues(pool.labels, probs, filter_by=self.filter_by, n_jobs=1)
        keep = np.flatnonzero(~issues)
        self.removed_ = pool.indices[issues]  # dataset indices of the dropped items
        data = self.tensors(pool, task)
        data["train_idx"], data["train_y"] = data["train_idx"][keep], data["train_y"][keep]
        where = sub_checkpoint(checkpoint, "final")
        predictor = self.train(data, task, model, trainer, seed=seed, checkpoint=where)
        predictor.fit_info.update(
            {
                "removed": float(issues.sum()),
                "kept": float(len(keep)),
                "oof_agreement": float(np.mean(probs.argmax(1) == pool.labels)),
            }
        )
        return predictor
