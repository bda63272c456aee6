"""Crowd annotation: K simulated annotators, each with its own accuracy and confusions;
every revealed item is labeled by m of them. The budget is paid in annotations."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError, check_int, check_number
from labelbench.labels.pool import NO_LABEL, Observed, vote_counts
from labelbench.labels.regime import Regime


def majority(votes: np.ndarray, num_classes: int) -> np.ndarray:
    """Most frequent vote per row (ties go to the lowest class; -1 for a row without
    votes). For statistics only: the crowd strategies aggregate for themselves."""
    counts = vote_counts(votes, num_classes)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), NO_LABEL)


class Crowd(Regime):
    """`annotators` simulated annotators. Annotator a is right with probability acc_a, drawn
    uniformly from accuracy ± spread (clipped to [0, 1]); when wrong, a class-c item gets
    class j != c with probability C_a[c, j]: uniform over the other classes
    (`confusion: uniform`) or the annotator's own random confusions, each row drawn from a
    flat Dirichlet (`confusion: random`). Each revealed item is labeled by `per_item`
    distinct annotators chosen at random. One annotation costs `cost_per_annotation`; the
    budget counts annotations (a budget of 60 buys 20 items at per_item=3)."""

    name = "crowd"
    kind = "crowd"

    def __init__(
        self,
        annotators: int = 5,
        per_item: int = 3,
        accuracy: float = 0.7,
        spread: float = 0.0,
        confusion: str = "random",
        cost_per_annotation: float = 1.0,
    ) -> None:
        self.annotators = check_int("annotators", annotators, least=1)
        self.per_item = check_int("per_item", per_item, least=1)
        if self.per_item > self.annotators:
            raise ConfigError(
                f"per_item={per_item} is more than the {annotators} annotators; allowed:"
                f" 1..{annotators}"
            )
        self.accuracy = check_number("accuracy", accuracy, "[0, 1]")
        self.spread = check_number("spread", spread, "[0, 1]")
        if confusion not in ("uniform", "random"):
            raise ConfigError(f"confusion={confusion!r} is not one of uniform, random")
        self.confusion = confusion
        self.cost_per_annotation = check_number("cost_per_annotation", cost_per_annotation)
        self.annotations_per_item = self.per_item

    def annotator_matrices(self, num_classes: int, rng: np.random.Generator) -> np.ndarray:
        """(annotators, K, K): row c of annotator a is the distribution of a's label for a
        class-c item."""
        k = num_classes
        acc = np.clip(
            rng.uniform(self.accuracy - self.spread, self.accuracy + self.spread, self.annotators),
            0,
            1,
        )
        if self.confusion == "uniform":
            wrong = np.full((self.annotators, k, k), 1 / max(k - 1, 1))
        else:
            wrong = rng.dirichlet(np.ones(k), size=(self.annotators, k))
        eye = np.eye(k, dtype=bool)
        wrong[:, eye] = 0
        wrong /= np.maximum(wrong.sum(axis=2, keepdims=True), 1e-12)
        return wrong * (1 - acc)[:, None, None] + eye * acc[:, None, None]

    def observe(self, given, x, num_classes, rng):
        y, n = given.labels, len(given)
        matrices = self.annotator_matrices(num_classes, rng)
        votes = np.full((n, self.annotators), NO_LABEL, dtype=np.int64)
        # per_item distinct annotators per item: the first columns of a random ranking.
        chosen = np.argsort(rng.random((n, self.annotators)), axis=1)[:, : self.per_item]
        rows = np.repeat(np.arange(n), self.per_item)
        who = chosen.ravel()
        cumulative = np.cumsum(matrices[who, y[rows]], axis=1)
        u = rng.random(len(who))[:, None] * cumulative[:, -1:]
        votes[rows, who] = np.minimum((u >= cumulative).sum(axis=1), num_classes - 1)
        return Observed("crowd", np.full(n, NO_LABEL), votes=votes)

    def cost(self, n_items: int) -> float:
        return float(n_items * self.per_item * self.cost_per_annotation)

    def stats(self, observed, y_true):
        votes, n = observed.votes, len(observed)
        if n == 0:
            return {"annotations": 0}
        given = votes >= 0
        right = (votes == np.asarray(y_true)[:, None]) & given
        per_annotator = right.sum(axis=0) / np.maximum(given.sum(axis=0), 1)
        asked = given.sum(axis=0) > 0
        return {
            "annotations": int(given.sum()),
            "annotations_per_item": float(given.sum() / n),
            "annotation_acc": float(right.sum() / given.sum()),
            "annotator_acc": [round(float(a), 4) for a in per_annotator],
            "annotator_acc_min": float(per_annotator[asked].min()),
            "annotator_acc_max": float(per_annotator[asked].max()),
            "majority_vote_acc": float(np.mean(majority(votes, votes.max() + 1) == y_true)),
        }

    def label(self) -> str:
        return f"crowd({self.per_item}of{self.annotators}@{self.accuracy:g})"
