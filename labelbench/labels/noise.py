"""Noisy annotators: observed labels that are sometimes wrong, by a stated rate or a
transition matrix T[true, observed]. Evaluation always uses the clean test labels.

`symmetric` and `pairflip` corrupt exactly round(rate x n) of the n items they annotate
(chosen at random), so the realised rate over a pool is the configured one up to rounding;
`transition` draws every item's label from its row of T."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelbench.config import ConfigError, check_number
from labelbench.labels.pool import Observed
from labelbench.labels.regime import Regime


def _flip_exactly(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask with exactly round(rate * n) True entries at random positions."""
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: round(rate * n)]] = True
    return mask


class Symmetric(Regime):
    """With probability `rate` an item's label is replaced by one of the other classes,
    uniformly. The true class stays the most likely observation only while
    rate < 1 - 1/K; a higher rate is refused."""

    name = "symmetric"

    def __init__(self, rate: float) -> None:
        self.rate = check_number("rate", rate, "[0, 1)")

    def check(self, num_classes: int) -> None:
        limit = 1 - 1 / num_classes
        if self.rate >= limit:
            raise ConfigError(
                f"rate={self.rate:g} makes a wrong class as likely as the true one with"
                f" {num_classes} classes; allowed: [0, {limit:.4g})"
            )

    def observe(self, given, x, num_classes, rng) -> Observed:
        y = np.array(given.labels, dtype=np.int64, copy=True)
        flip = _flip_exactly(len(y), self.rate, rng)
        offset = rng.integers(1, num_classes, size=len(y))  # never 0: always another class
        y[flip] = (y[flip] + offset[flip]) % num_classes
        return Observed.of_labels(y)

    def label(self) -> str:
        return f"symmetric({self.rate:g})"


class PairFlip(Regime):
    """With probability `rate` class i is observed as its pair: `pairs[i]`, or i + 1 (mod K)
    when `pairs` is not given. A rate of 0.5 or more would make the pair the likelier
    observation and is refused."""

    name = "pairflip"

    def __init__(self, rate: float, pairs: Sequence[int] | None = None) -> None:
        self.rate = check_number("rate", rate, "[0, 0.5)")
        self.pairs = None if pairs is None else [int(p) for p in pairs]

    def check(self, num_classes: int) -> None:
        if self.pairs is None:
            return
        if len(self.pairs) != num_classes or not all(0 <= p < num_classes for p in self.pairs):
            raise ConfigError(
                f"pairs={self.pairs} must list one class in 0..{num_classes - 1} for each of"
                f" the {num_classes} classes"
            )
        if any(p == i for i, p in enumerate(self.pairs)):
            raise ConfigError(f"pairs={self.pairs} maps a class onto itself; pairs must differ")

    def observe(self, given, x, num_classes, rng) -> Observed:
        y = np.array(given.labels, dtype=np.int64, copy=True)
        pairs = np.asarray(
            self.pairs if self.pairs is not None else (np.arange(num_classes) + 1) % num_classes
        )
        flip = _flip_exactly(len(y), self.rate, rng)
        y[flip] = pairs[y[flip]]
        return Observed.of_labels(y)

    def label(self) -> str:
        return f"pairflip({self.rate:g})"


class Transition(Regime):
    """Each item's label is drawn from row `true` of the row-stochastic matrix
    `matrix[true][observed]` (K x K)."""

    name = "transition"

    def __init__(self, matrix: Sequence[Sequence[float]]) -> None:
        try:
            self.matrix = np.array([[float(v) for v in row] for row in matrix])
        except (TypeError, ValueError):
            raise ConfigError(f"matrix={matrix} must be a K x K table of numbers") from None
        t = self.matrix
        if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
            raise ConfigError(f"matrix has shape {t.shape}; it must be square, K x K with K >= 2")
        if not np.isfinite(t).all() or (t < 0).any():
            raise ConfigError("matrix has negative or non-finite entries; allowed: [0, 1]")
        sums = t.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1) > 1e-6)
        if bad.size:
            raise ConfigError(
                f"matrix row {int(bad[0])} sums to {sums[bad[0]]:g}; every row must sum to 1"
                " (row-stochastic)"
            )

    def check(self, num_classes: int) -> None:
        k = self.matrix.shape[0]
        if k != num_classes:
            raise ConfigError(
                f"matrix is {k} x {k} but the dataset has {num_classes} classes; it must be"
                f" {num_classes} x {num_classes}"
            )

    def observe(self, given, x, num_classes, rng) -> Observed:
        y = np.asarray(given.labels, dtype=np.int64)
        cumulative = np.cumsum(self.matrix, axis=1)[y]
        u = rng.random(len(y))[:, None] * cumulative[:, -1:]  # rows sum to 1 up to rounding
        return Observed.of_labels(np.minimum((u >= cumulative).sum(axis=1), num_classes - 1))

    def label(self) -> str:
        diagonal = float(np.mean(np.diag(self.matrix)))
        return f"transition({1 - diagonal:.2g})"  # the mean flip rate
