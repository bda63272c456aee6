"""Partial labels: a candidate set that holds the label plus q distractors, or a
complementary label (one class the item is not: a candidate set of all the others)."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError, check_int
from labelbench.labels.pool import NO_LABEL, Observed
from labelbench.labels.regime import Regime


def _candidate_stats(observed: Observed, y_true: np.ndarray) -> dict[str, float]:
    sets = observed.candidates
    if len(sets) == 0:
        return {}
    return {
        "candidates_per_item": float(sets.sum(axis=1).mean()),
        # 1 unless a noisy stage before this one changed the label the set was built around
        "candidates_hold_label": float(sets[np.arange(len(sets)), y_true].mean()),
    }


class Partial(Regime):
    """Candidate sets: each item's label plus `distractors` other classes drawn uniformly."""

    name = "partial"
    kind = "partial"

    def __init__(self, distractors: int = 2) -> None:
        self.distractors = check_int("distractors", distractors, least=1)

    def check(self, num_classes: int) -> None:
        if self.distractors > num_classes - 2:
            raise ConfigError(
                f"distractors={self.distractors} leaves no class outside the candidate set with"
                f" {num_classes} classes; allowed: 1..{num_classes - 2}"
            )

    def observe(self, given, x, num_classes, rng):
        y, n = given.labels, len(given)
        sets = np.zeros((n, num_classes), dtype=bool)
        sets[np.arange(n), y] = True
        # Rank the other classes at random; the first `distractors` join the set.
        scores = rng.random((n, num_classes))
        scores[np.arange(n), y] = np.inf
        ranked = np.argsort(scores, axis=1)[:, : self.distractors]
        sets[np.repeat(np.arange(n), self.distractors), ranked.ravel()] = True
        return Observed("partial", np.full(n, NO_LABEL), candidates=sets)

    def stats(self, observed, y_true):
        return _candidate_stats(observed, y_true)

    def label(self) -> str:
        return f"partial({self.distractors})"


class Complementary(Regime):
    """Complementary labels: one class, drawn uniformly among the wrong ones, that the item
    is not. Stored as the candidate set of all other classes."""

    name = "complementary"
    kind = "partial"

    def observe(self, given, x, num_classes, rng):
        y, n = given.labels, len(given)
        not_this = (y + rng.integers(1, num_classes, size=n)) % num_classes
        sets = np.ones((n, num_classes), dtype=bool)
        sets[np.arange(n), not_this] = False
        return Observed("partial", np.full(n, NO_LABEL), candidates=sets)

    def stats(self, observed, y_true):
        return _candidate_stats(observed, y_true)
