"""Weak supervision: labeling functions (LFs) written from a small labeled dev sample vote
on every pool item, or abstain. LF votes are free; authoring an LF has a stated cost.

The LFs are generated from the data, as a programmer with a few labeled examples might
write them: each LF targets one class (the classes in turn) and votes for it where its rule
fires, abstaining elsewhere.
- `prototype`: the class means of the dev sample on a random subset of `features` input
  features; the LF votes for its class where that class's mean is the nearest one by a
  relative `margin` ((d2 - d1) / d2 >= margin for the nearest and second-nearest means).
- `threshold`: one input feature and a threshold ("pixel 27 above 8"), chosen among
  `features` random features to be the most precise rule for its class on the dev sample.

The same fitted LFs also vote on the validation items (`observe_val_votes`), so that their
accuracy can be measured on the gold dev set (`lf_analysis`, Snorkel's LF analysis)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_int, check_number
from labelbench.labels.pool import NO_LABEL, Observed
from labelbench.labels.regime import Regime
from labelbench.labels.votes import Votes, as_votes

FAMILIES = ("prototype", "threshold")
Rule = Callable[[np.ndarray], np.ndarray]  # inputs (n, features) -> (n,) bool: the LF fires


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
        self.rules: list[tuple[int, Rule]] | None = None  # (class, rule) per LF, by observe

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
        write = self._prototype if self.family == "prototype" else self._threshold
        # Kept so the same LFs can vote on the validation items (observe_val_votes).
        self.rules = [
            (j % num_classes, write(x[dev], y[dev], j % num_classes, rng)) for j in range(self.lfs)
        ]
        return Observed("weak", np.full(len(y), NO_LABEL), votes=self.apply(x))

    def apply(self, x: np.ndarray) -> Votes:
        """The votes of the LFs fitted by the last `observe` on inputs x (LF j is source j)."""
        if self.rules is None:
            raise ValueError("the labeling functions are written by observe; call it first")
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        fired = [np.flatnonzero(fires(x)) for _, fires in self.rules]
        return Votes(
            np.concatenate([np.zeros(0, dtype=np.int64), *fired]),
            np.repeat(np.arange(len(fired)), [len(f) for f in fired]),
            np.repeat([target for target, _ in self.rules], [len(f) for f in fired]),
            len(x),
            len(self.rules),
        )

    def observe_val_votes(self, x: np.ndarray) -> Votes:
        return self.apply(x)

    def _prototype(self, x_dev, y_dev, target, rng) -> Rule:
        feats = rng.choice(x_dev.shape[1], self.features, replace=False)
        present = np.unique(y_dev)
        means = np.stack([x_dev[y_dev == c][:, feats].mean(axis=0) for c in present])
        margin = self.margin

        def fires(x: np.ndarray) -> np.ndarray:
            dist = ((x[:, None, feats] - means[None]) ** 2).sum(axis=2)
            if len(present) < 2:
                return present[dist.argmin(axis=1)] == target
            d1, d2 = np.sort(dist, axis=1)[:, :2].T
            sure = (d2 - d1) >= margin * d2
            return (present[dist.argmin(axis=1)] == target) & sure

        return fires

    def _threshold(self, x_dev, y_dev, target, rng) -> Rule:
        best, best_key = None, (-1.0, 0)
        is_target = y_dev == target
        for f in rng.choice(x_dev.shape[1], self.features, replace=False):
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
            return lambda x: np.zeros(len(x), dtype=bool)
        f, t, above = best
        return lambda x: x[:, f] > t if above else x[:, f] < t

    def cost(self, bought: Observed) -> float:
        return float(self.lfs * self.cost_per_lf)  # votes are free; writing the LFs is not

    def stats(self, observed, y_true):
        votes, y_true = observed.votes, np.asarray(y_true)
        if len(votes) == 0:
            return {"lfs": self.lfs}
        analysis = lf_analysis(votes)
        accuracy = _accuracy(votes, y_true)
        return {
            "lfs": self.lfs,
            "lf_coverage": float(np.mean(analysis["lf_coverage"])),
            "lf_accuracy": float(np.nanmean(accuracy)) if votes.n_votes else 0.0,
            "covered": analysis["coverage"],
            "overlap": analysis["overlap"],
            "conflict": analysis["conflict"],
            "lf_coverage_each": [round(c, 4) for c in analysis["lf_coverage"]],
            "lf_accuracy_each": [None if np.isnan(a) else round(float(a), 4) for a in accuracy],
        }

    def label(self) -> str:
        return f"weak({self.lfs} {self.family})"


def _accuracy(votes: Votes, y: np.ndarray) -> np.ndarray:
    """(sources,) the share of each source's votes that equal y; NaN for a silent source."""
    right = np.bincount(
        votes.source, weights=votes.label == np.asarray(y)[votes.item], minlength=votes.n_sources
    )
    fired = votes.per_source()
    return np.divide(right, fired, out=np.full(votes.n_sources, np.nan), where=fired > 0)


def lf_analysis(
    votes: Votes | np.ndarray,
    val_votes: Votes | np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Snorkel's LF analysis (snorkel.labeling.LFAnalysis, the same definitions) of the LFs'
    votes (sparse triples, or an (items, LFs) matrix with -1 = abstain). Per LF, lists with
    one entry per LF: `lf_coverage` the share of the items it votes on; `lf_overlap` the
    share of the items it votes on with another LF voting too; `lf_conflict` the share of
    the items it votes on with another LF voting a different class (all three over all
    items, as Snorkel's). Overall: `coverage`, `overlap`, `conflict`, the share of items
    with a vote, with two or more, with two different classes. With the LFs' votes on
    labeled validation items (the gold dev set): `lf_val_acc`, the share of each LF's votes
    there that are right (None for an LF that never votes there, where Snorkel's
    lf_empirical_accuracies gives 0), and `val_acc`, their mean over the LFs that voted
    (None if none did)."""
    votes = as_votes(votes)
    n, m = votes.shape
    per_item = votes.per_item()
    # Two different classes among an item's votes: one of its votes differs from its largest.
    top = np.full(n, NO_LABEL)
    np.maximum.at(top, votes.item, votes.label)
    differs = votes.label != top[votes.item]
    conflicted = np.bincount(votes.item, weights=differs, minlength=n) > 0
    share = 1.0 / max(n, 1)

    def per_lf(on: np.ndarray) -> list[float]:  # per LF: its votes on items where `on` holds
        counts = np.bincount(votes.source, weights=on[votes.item], minlength=m)
        return [float(c) for c in counts * share]

    out: dict[str, Any] = {
        "items": int(n),
        "lfs": int(m),
        "coverage": float(np.mean(per_item > 0)) if n else 0.0,
        "overlap": float(np.mean(per_item > 1)) if n else 0.0,
        "conflict": float(np.mean(conflicted)) if n else 0.0,
        "lf_coverage": [float(c) for c in votes.per_source() * share],
        "lf_overlap": per_lf(per_item > 1),
        "lf_conflict": per_lf(conflicted),
    }
    if val_votes is not None:
        val_votes = as_votes(val_votes)
        if val_labels is None or len(val_labels) != len(val_votes) or val_votes.n_sources != m:
            raise ValueError("val_votes need one label per row and one column per LF")
        accuracy = _accuracy(val_votes, val_labels)
        voted = ~np.isnan(accuracy)
        out["val_items"] = len(val_votes)
        out["lf_val_acc"] = [
            float(a) if ok else None for a, ok in zip(accuracy, voted, strict=True)
        ]
        out["val_acc"] = float(accuracy[voted].mean()) if voted.any() else None
    return out


def format_lf_analysis(analysis: dict[str, Any]) -> str:
    """One compact table of `lf_analysis`: a row per LF and an `all` row."""

    def cell(v: float | None) -> str:
        return f"{v:8.3f}" if v is not None else "       -"

    val = analysis.get("lf_val_acc")
    head = f"{'lf':>4} {'coverage':>8} {'overlap':>8} {'conflict':>8}" + (
        f" {'val_acc':>8}" if val is not None else ""
    )
    rows = [
        f"LF analysis: {analysis['lfs']} LFs on {analysis['items']} items"
        + (f", accuracy on {analysis['val_items']} validation items" if val is not None else ""),
        head,
    ]
    columns = [analysis["lf_coverage"], analysis["lf_overlap"], analysis["lf_conflict"]]
    for j in range(analysis["lfs"]):
        cells = [cell(c[j]) for c in columns] + ([cell(val[j])] if val is not None else [])
        rows.append(f"{j:>4} " + " ".join(cells))
    total = [analysis["coverage"], analysis["overlap"], analysis["conflict"]]
    total += [analysis["val_acc"]] if val is not None else []
    rows.append(f"{'all':>4} " + " ".join(cell(v) for v in total))
    return "\n".join(rows)
