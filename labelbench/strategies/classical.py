"""Pieces shared by the classical (scikit-learn) strategies: flattening inputs, and a
predictor that maps a classifier's columns onto every class of the task."""

from __future__ import annotations

from typing import Any

import numpy as np


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
