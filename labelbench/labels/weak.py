"""Weak supervision: labeling functions (LFs) written from a small labeled dev sample vote
on every pool item, or abstain. LF votes are free; authoring an LF has a stated cost.

The LFs are generated from the data, as a programmer with a few labeled examples might
write them: each LF targets one class (the classes in turn) and votes for it where its rule
fires, abstaining elsewhere.
- `prototype`: the class means of the dev sample on a random subset of `features` input
  features; the LF votes for its class where that class's mean is the nearest one by a
  relative `margin` ((d2 - d1) / d2 >= margin for the nearest and second-nearest means).
- `threshold`: one input feature and a threshold ("pixel 27 above 8"), chosen among
  `features` random features to be the most precise rule for its class on the dev sample."""

from __future__ import annotations

import numpy as np

from labelbench.config import ConfigError, check_int, check_number
from labelbench.labels.pool import NO_LABEL, Observed
from labelbench.labels.regime import Regime

FAMILIES = ("prototype", "threshold")


class Weak(Regime):
    """`lfs` labeling functions of one `family`, fitted on `dev_per_class` labeled items per
    class drawn from the pool. Every revealed item gets a vote vector (-1 = abstain); the
    cost is `cost_per_lf` per LF, whatever the number of items."""

    name = "weak"
    kind = "weak"

    def __init__(
        self,
        lfs: int = 20,
        family: str = "prototype",
        features: int = 16,
        margin: float = 0.2,
        dev_per_class: int = 5,
        cost_per_lf: float = 10.0,
    ) -> None:
        self.lfs = check_int("lfs", lfs, least=1)
        if family not in FAMILIES:
            raise ConfigError(f"family={family!r} is not one of {', '.join(FAMILIES)}")
        self.family = family
        self.features = check_int("features", features, least=1)
        self.margin = check_number("margin", margin, "[0, 1)")
        self.dev_per_class = check_int("dev_per_class", dev_per_class, least=1)
        self.cost_per_lf = check_number("cost_per_lf", cost_per_lf)

    def observe(self, given, x, num_classes, rng):
        if x is None:
            raise ValueError("labeling functions need the items' inputs")
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if self.features > x.shape[1]:
            raise ConfigError(
                f"features={self.features} is more than the {x.shape[1]} input features;"
                f" allowed: 1..{x.shape[1]}"
            )
        y = given.labels
        dev = np.concatenate(
            [
                rng.permutation(np.flatnonzero(y == c))[: self.dev_per_class]
                for c in range(num_classes)
            ]
        )
        rule = self._prototype if self.family == "prototype" else self._threshold
        votes = np.full((len(y), self.lfs), NO_LABEL, dtype=np.int64)
        for j in range(self.lfs):
            target = j % num_classes
            fires = rule(x, x[dev], y[dev], target, num_classes, rng)
            votes[fires, j] = target
        return Observed("weak", np.full(len(y), NO_LABEL), votes=votes)

    def _prototype(self, x, x_dev, y_dev, target, num_classes, rng) -> np.ndarray:
        feats = rng.choice(x.shape[1], self.features, replace=False)
        present = np.unique(y_dev)
        means = np.stack([x_dev[y_dev == c][:, feats].mean(axis=0) for c in present])
        dist = ((x[:, None, feats] - means[None]) ** 2).sum(axis=2)
        if len(present) < 2:
            return present[dist.argmin(axis=1)] == target
        d1, d2 = np.sort(dist, axis=1)[:, :2].T
        sure = (d2 - d1) >= self.margin * d2
        return (present[dist.argmin(axis=1)] == target) & sure

    def _threshold(self, x, x_dev, y_dev, target, num_classes, rng) -> np.ndarray:
        best, best_key = None, (-1.0, 0)
        is_target = y_dev == target
        for f in rng.choice(x.shape[1], self.features, replace=False):
            values = x_dev[:, f]
            for t in np.unique(values):
                for above in (True, False):
                    fires = values > t if above else values < t
                    support = int(fires.sum())
                    if support < self.dev_per_class:  # as many as the class has
                        continue
                    key = (float(is_target[fires].mean()), support)  # precision, then support
                    if key > best_key:
                        best, best_key = (f, t, above), key
        if best is None:  # no rule fires often enough on the dev sample: the LF abstains
            return np.zeros(len(x), dtype=bool)
        f, t, above = best
        return x[:, f] > t if above else x[:, f] < t

    def cost(self, n_items: int) -> float:
        return float(self.lfs * self.cost_per_lf)  # votes are free; writing the LFs is not

    def stats(self, observed, y_true):
        votes, y_true = observed.votes, np.asarray(y_true)
        if len(votes) == 0:
            return {"lfs": self.lfs}
        fired = votes >= 0
        per_item = fired.sum(axis=1)
        coverage = fired.mean(axis=0)
        correct = (votes == y_true[:, None]) & fired
        accuracy = np.divide(
            correct.sum(axis=0),
            fired.sum(axis=0),
            out=np.full(self.lfs, np.nan),
            where=fired.any(axis=0),
        )
        distinct = np.array([len(set(row[row >= 0])) for row in votes])
        return {
            "lfs": self.lfs,
            "lf_coverage": float(coverage.mean()),
            "lf_accuracy": float(np.nanmean(accuracy)) if fired.any() else 0.0,
            "covered": float(np.mean(per_item > 0)),
            "overlap": float(np.mean(per_item > 1)),
            "conflict": float(np.mean(distinct > 1)),
            "lf_coverage_each": [round(float(c), 4) for c in coverage],
            "lf_accuracy_each": [None if np.isnan(a) else round(float(a), 4) for a in accuracy],
        }

    def label(self) -> str:
        return f"weak({self.lfs} {self.family})"
