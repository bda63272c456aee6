"""Crowd annotation: K simulated annotators, each with its own accuracy and confusions;
every revealed item is labeled by m of them. The budget is paid in annotations."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError, check_int, check_number
from labelbench.labels.pool import NO_LABEL, Observed
from labelbench.labels.regime import Regime
from labelbench.labels.votes import Votes

# Above this many annotators the record gives quantiles of their accuracies, not one each.
LISTED_ANNOTATORS = 1000
# Random numbers drawn at a time when choosing annotators: bounds the memory of a crowd of
# many annotators without changing a single draw (see Crowd.choose).
DRAW_CHUNK = 1 << 22


def majority(votes: Votes, num_classes: int) -> np.ndarray:
    """Most frequent vote per item (ties go to the lowest class; -1 for an item without
    votes). For statistics only: the crowd strategies aggregate for themselves."""
    counts = votes.counts(num_classes)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), NO_LABEL)


def crowd_stats(votes: Votes, y_true: np.ndarray) -> dict[str, float | int | list]:
    """What a crowd realised on items whose true labels are y_true, from the votes' triples:
    the annotations and their accuracy, each annotator's accuracy (listed up to
    LISTED_ANNOTATORS annotators, as quartiles beyond), and majority vote's accuracy."""
    n, y_true = len(votes), np.asarray(y_true)
    if n == 0 or votes.n_votes == 0:
        return {"annotations": 0}
    right = votes.label == y_true[votes.item]
    asked = votes.per_source()
    per_annotator = np.bincount(votes.source, weights=right, minlength=votes.n_sources)
    per_annotator = per_annotator[asked > 0] / asked[asked > 0]  # annotators never asked: none
    out: dict[str, float | int | list] = {
        "annotations": int(votes.n_votes),
        "annotations_per_item": float(votes.n_votes / n),
        "annotation_acc": float(right.mean()),
        "annotators_asked": int((asked > 0).sum()),
        "annotator_acc_min": float(per_annotator.min()),
        "annotator_acc_max": float(per_annotator.max()),
        "majority_vote_acc": float(np.mean(majority(votes, int(votes.label.max()) + 1) == y_true)),
    }
    if votes.n_sources <= LISTED_ANNOTATORS:
        each = np.zeros(votes.n_sources)
        each[asked > 0] = per_annotator
        out["annotator_acc"] = [round(float(a), 4) for a in each]
    else:
        quartiles = np.quantile(per_annotator, [0.25, 0.5, 0.75])
        out["annotator_acc_quartiles"] = [round(float(q), 4) for q in quartiles]
    return out


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

    def choose(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, per_item) distinct annotators per item: the first per_item of a random
        ranking of all annotators (the smallest of a uniform draw per annotator), in rank
        order. The draws are made a block of items at a time, so memory stays bounded however
        many annotators there are; the numbers drawn, and so the choice, are those of one
        (n, annotators) draw."""
        chosen = np.empty((n, self.per_item), dtype=np.int64)
        step = max(1, DRAW_CHUNK // self.annotators)
        last = self.per_item - 1
        for start in range(0, n, step):
            scores = rng.random((min(step, n - start), self.annotators))
            if self.per_item < self.annotators:  # only the per_item smallest need sorting
                smallest = np.argpartition(scores, last, axis=1)[:, : self.per_item]
            else:
                smallest = np.broadcast_to(np.arange(self.annotators), scores.shape)
            ranks = np.argsort(np.take_along_axis(scores, smallest, axis=1), axis=1)
            chosen[start : start + len(scores)] = np.take_along_axis(smallest, ranks, axis=1)
        return chosen

    def observe(self, given, x, num_classes, rng):
        y, n = given.labels, len(given)
        matrices = self.annotator_matrices(num_classes, rng)
        rows = np.repeat(np.arange(n), self.per_item)
        who = self.choose(n, rng).ravel()
        cumulative = np.cumsum(matrices[who, y[rows]], axis=1)
        u = rng.random(len(who))[:, None] * cumulative[:, -1:]
        said = np.minimum((u >= cumulative).sum(axis=1), num_classes - 1)
        votes = Votes(rows, who, said, n, self.annotators)
        return Observed("crowd", np.full(n, NO_LABEL), votes=votes)

    def cost(self, bought: Observed) -> float:
        return float(bought.votes.n_votes * self.cost_per_annotation)

    def stats(self, observed, y_true):
        return crowd_stats(observed.votes, y_true)

    def label(self) -> str:
        return f"crowd({self.per_item}of{self.annotators}@{self.accuracy:g})"
