"""Pieces shared by the classical (scikit-learn) strategies: flattening inputs, a
predictor that maps a classifier's columns onto every class of the task, and the check
on neighbour counts of graph methods (label spreading, label propagation). Light: no torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelbench.config import ConfigError
from labelbench.labels.pool import LabelPool


def flat(x: np.ndarray) -> np.ndarray:
    """Inputs as a 2-D array, one flattened item per row (images, sequences ...)."""
    x = np.asarray(x)
    return x.reshape(len(x), -1)


class ClassifierPredictor:
    """A fitted scikit-learn classifier as a Predictor over all `num_classes` classes.

    The classifier only knows the classes it saw (`seen`, sorted, as in its `classes_`); their
    columns go to those classes and every unseen class gets probability 0. With a single
    observed class there is nothing to discriminate: `clf` is not used (it may be unfitted)
    and every item gets that class."""

    def __init__(
        self, clf: Any, num_classes: int, seen: np.ndarray, fit_info: dict[str, float]
    ) -> None:
        self.clf, self.num_classes, self.seen = clf, num_classes, np.asarray(seen)
        self.fit_info = fit_info

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (len(x), num_classes)."""
        x = flat(x)
        proba = np.zeros((len(x), self.num_classes))
        if len(self.seen) == 1:
            proba[:, self.seen[0]] = 1.0
        else:
            proba[:, self.seen] = self.clf.predict_proba(x)
        return proba


def check_graph_k(k: int, pool: LabelPool) -> None:
    """Refuse a neighbour count that leaves no pool item outside an item's neighbourhood
    in a graph of the whole pool (revealed and unlabeled items, unlabeled-only ones too)."""
    nodes = len(pool) + len(pool.unlabeled_data)
    if k >= nodes:
        raise ConfigError(f"k={k} is larger than the pool ({nodes} items); allowed: 1..{nodes - 1}")
