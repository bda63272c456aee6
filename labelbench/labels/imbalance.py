"""Class imbalance: a long-tailed pool, and label shift on the test split.

Neither changes a label; they change which items exist. Validation keeps its split, so
model selection stays on the distribution the user controls; evaluation always uses the
clean labels of whichever test items remain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelbench.config import ConfigError, check_number
from labelbench.labels.regime import Regime


def _take_counts(y: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of `counts[c]` randomly chosen items of each class c."""
    keep = [rng.permutation(np.flatnonzero(y == c))[:n] for c, n in enumerate(counts)]
    return np.sort(np.concatenate(keep)).astype(np.int64)


class LongTail(Regime):
    """A long-tailed pool: class c keeps n_max x ratio^(-rank_c / (K - 1)) items, where
    n_max is the smallest class's size in the balanced pool and rank_c is the class's
    place from head (0) to tail (K - 1): by class index (`order: index`, as in CIFAR-LT) or
    in a seeded random order (`order: random`). The realised head/tail ratio is recorded."""

    name = "longtail"

    def __init__(self, ratio: float, order: str = "index") -> None:
        self.ratio = check_number("ratio", ratio, "[1, inf)")
        if order not in ("index", "random"):
            raise ConfigError(f"order={order!r} is not one of index, random")
        self.order = order

    def select_pool(self, y, num_classes, rng):
        available = np.bincount(y, minlength=num_classes)
        rank = np.arange(num_classes) if self.order == "index" else rng.permutation(num_classes)
        profile = self.ratio ** (-rank / max(num_classes - 1, 1))
        counts = np.maximum(1, np.floor(available.min() * profile + 1e-9)).astype(np.int64)
        return _take_counts(y, np.minimum(counts, available), rng)

    def label(self) -> str:
        return f"longtail({self.ratio:g})"


class LabelShift(Regime):
    """Label shift: the test split is subsampled so its class priors follow `priors`
    (explicit, one per class) or a Dirichlet(alpha) draw, keeping as many items as those
    priors allow. The pool and the labels are untouched."""

    name = "label_shift"

    def __init__(self, priors: Sequence[float] | None = None, alpha: float | None = None) -> None:
        if (priors is None) == (alpha is None):
            raise ConfigError(
                f"priors={priors} alpha={alpha}: set exactly one (explicit test priors, or a"
                " Dirichlet concentration)"
            )
        self.alpha = None if alpha is None else check_number("alpha", alpha, "(0, inf)")
        self.priors = None
        if priors is not None:
            try:
                p = np.array([float(v) for v in priors])
            except (TypeError, ValueError):
                raise ConfigError(f"priors={priors} must be a list of numbers") from None
            if (p < 0).any() or not np.isfinite(p).all() or abs(p.sum() - 1) > 1e-6:
                raise ConfigError(
                    f"priors={list(priors)} must be non-negative and sum to 1 (sum {p.sum():g})"
                )
            self.priors = p

    def check(self, num_classes: int) -> None:
        if self.priors is not None and len(self.priors) != num_classes:
            raise ConfigError(
                f"priors has {len(self.priors)} entries but the dataset has {num_classes}"
                " classes; give one per class"
            )

    def select_test(self, y, num_classes, rng):
        priors = (
            self.priors if self.priors is not None else rng.dirichlet([self.alpha] * num_classes)
        )
        available = np.bincount(y, minlength=num_classes)
        used = priors > 0
        size = np.min(available[used] / priors[used])  # the most items these priors allow
        counts = np.floor(size * priors + 1e-9).astype(np.int64)
        return _take_counts(y, counts, rng)

    def label(self) -> str:
        if self.priors is None:
            return f"label_shift(alpha={self.alpha:g})"
        return f"label_shift(max prior {self.priors.max():.2g})"
