"""k-nearest neighbours on the revealed items: the simplest classical peer, no training."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError, check_int
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.base import Strategy
from labelbench.strategies.classical import ClassifierPredictor, flat

WEIGHTS = ("uniform", "distance")
METRICS = ("euclidean", "manhattan", "cosine")


class KNN(Strategy):
    """scikit-learn KNeighborsClassifier on the flattened inputs of the revealed items and
    their observed labels."""

    uses_model = False  # scikit-learn on the flattened inputs

    def __init__(self, k: int = 5, weights: str = "distance", metric: str = "euclidean") -> None:
        self.k = check_int("k", k, least=1)
        if weights not in WEIGHTS:
            raise ConfigError(f"weights={weights!r} is not one of {', '.join(WEIGHTS)}")
        if metric not in METRICS:
            raise ConfigError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
        self.weights, self.metric = weights, metric

    def check(self, pool: LabelPool, task: TaskView) -> None:
        """Refuse a k larger than the labeled set: there would be too few neighbours."""
        super().check(pool, task)
        n = len(pool)
        if self.k > n:
            raise ConfigError(f"k={self.k} is larger than the {n} revealed labels; allowed: 1..{n}")

    def fit(self, pool, task, model, trainer, *, seed: int, checkpoint=None) -> ClassifierPredictor:
        # Nothing is trained (kNN stores the items) and nothing is random: seed and checkpoint
        # are unused.
        from sklearn.neighbors import KNeighborsClassifier

        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        seen = np.unique(pool.labels)
        clf = KNeighborsClassifier(n_neighbors=self.k, weights=self.weights, metric=self.metric)
        if len(seen) > 1:
            clf.fit(flat(task.x[pool.indices]), pool.labels)
        info = {"neighbours": float(self.k), "classes_seen": float(len(seen))}
        return ClassifierPredictor(clf, task.num_classes, seen, info)
