"""scikit-learn logistic regression on the same revealed labels: a classical peer with no
network, no Lightning and no validation-based selection."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError
from labelbench.strategies.base import Strategy
from labelbench.strategies.classical import ClassifierPredictor, flat


class LogReg(Strategy):
    """Multinomial logistic regression (L2, strength 1/C) on flattened inputs."""

    uses_model = False  # scikit-learn on the flattened inputs

    def __init__(self, C: float = 1.0, max_iter: int = 1000) -> None:
        if not C > 0:
            raise ConfigError(f"C={C} must be positive")
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ConfigError(f"max_iter={max_iter} must be a positive integer")
        self.C, self.max_iter = C, max_iter

    def fit(self, pool, task, model, trainer, *, seed: int, checkpoint=None) -> ClassifierPredictor:
        # One quick scikit-learn fit: nothing worth checkpointing.
        from sklearn.linear_model import LogisticRegression

        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        x = flat(task.x[pool.indices])
        seen = np.unique(pool.labels)
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=seed)
        if len(seen) > 1:
            clf.fit(x, pool.labels)
        return ClassifierPredictor(clf, task.num_classes, seen, {"classes_seen": float(len(seen))})
