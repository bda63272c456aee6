"""Label spreading (Zhou et al., 2004) over a kNN graph of the whole pool: a classical
semi-supervised peer that uses the unlabeled items, transductively."""

from __future__ import annotations

import numpy as np

from labelbench.config import check_int, check_number
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.strategies.base import Strategy
from labelbench.strategies.classical import ClassifierPredictor, check_graph_k, flat


class _Spread:
    """A fitted LabelSpreading whose predict_proba never divides by zero.

    A new point's probabilities are the summed label distributions of its k nearest pool
    items; when the graph has a component with no revealed item, those distributions are all
    zero and scikit-learn returns 0/0. Such points get the observed class frequencies."""

    def __init__(self, model, prior: np.ndarray) -> None:
        self.model, self.prior = model, prior

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            proba = self.model.predict_proba(x)
        empty = ~np.isfinite(proba).all(axis=1)
        proba[empty] = self.prior
        return proba


class LabelSpreading(Strategy):
    """scikit-learn LabelSpreading with a kNN kernel, fitted on every pool item: the revealed
    ones with their observed labels, the unlabeled ones without. New points are classified
    from the spread labels of their k nearest pool items."""

    uses_model = False  # scikit-learn on the flattened inputs

    def __init__(self, k: int = 7, alpha: float = 0.2, max_iter: int = 30) -> None:
        self.k = check_int("k", k, least=1)
        self.alpha = check_number("alpha", alpha, "(0, 1)")
        self.max_iter = check_int("max_iter", max_iter, least=1)

    def check(self, pool: LabelPool, task: TaskView) -> None:
        super().check(pool, task)
        check_graph_k(self.k, pool)

    def fit(self, pool, task, model, trainer, *, seed: int, checkpoint=None) -> ClassifierPredictor:
        # Deterministic (no random_state in scikit-learn's LabelSpreading) and seconds long:
        # seed and checkpoint are unused. A ConvergenceWarning (max_iter reached) is left
        # visible: it means alpha/max_iter need changing, and fit/converged records it too.
        from sklearn.semi_supervised import LabelSpreading as SkLabelSpreading

        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        seen = np.unique(pool.labels)
        spread = SkLabelSpreading(
            kernel="knn", n_neighbors=self.k, alpha=self.alpha, max_iter=self.max_iter
        )
        # The same keys whatever happens, so every record of this strategy has the same fit/.
        info = {"classes_seen": float(len(seen)), "iterations": 0.0, "converged": 1.0}
        if len(seen) > 1:  # one class: every item gets it, no graph needed
            x = flat(task.x[np.concatenate([pool.indices, pool.unlabeled_data])])
            y = np.concatenate([pool.labels, np.full(len(pool.unlabeled_data), -1)])
            spread.fit(x, y)
            info["iterations"] = float(spread.n_iter_)
            info["converged"] = float(spread.n_iter_ < self.max_iter)
        prior = np.bincount(pool.labels, minlength=task.num_classes)[seen] / len(pool)
        return ClassifierPredictor(_Spread(spread, prior), task.num_classes, seen, info)
