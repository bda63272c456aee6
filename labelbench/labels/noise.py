"""Noisy annotators: observed labels that are sometimes wrong, by a stated rate or a
transition matrix T[true, observed], or by a rate that depends on the item itself.
Evaluation always uses the clean test labels.

`symmetric` and `pairflip` corrupt exactly round(rate x n) of the n items they annotate
(chosen at random), so the realised rate over a pool is the configured one up to rounding;
`asymmetric` does so per class it maps; `transition` draws every item's label from its row
of T; `instance` draws every item's label from its own row, which depends on its inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


# The asymmetric-noise protocol of Patrini et al. 2017 (giorgiop/loss-correction noise.py:
# noisify_cifar10_asymmetric, noisify_mnist_asymmetric), used since by DivideMix
# (dataloader_cifar.py, `transition`) and most noisy-label benchmarks: the class an item of
# each source class is mistaken for. Classes not listed keep their labels.
CLASS_MAPS: dict[str, dict[int, int]] = {
    # truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
    # 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1
    "mnist": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
}


def _class_map(value: str | Mapping) -> tuple[str, dict[int, int]]:
    """(name, {source: target}) of a built-in map's name or a given mapping, whose name is
    written as on the command line: '{0:1,2:3}'."""
    if isinstance(value, str):
        if value not in CLASS_MAPS:
            raise ConfigError(
                f"map={value} is not a built-in class map; allowed: {', '.join(CLASS_MAPS)},"
                " or a mapping {source_class:target_class}"
            )
        return value, dict(CLASS_MAPS[value])
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"map={value} must name a built-in class map ({', '.join(CLASS_MAPS)}) or be a"
            " non-empty mapping {source_class:target_class}"
        )
    shown = "{" + ",".join(f"{s}:{t}" for s, t in value.items()) + "}"
    pairs = {}
    for source, target in value.items():
        if any(
            isinstance(v, bool) or not isinstance(v, int | np.integer) for v in (source, target)
        ):
            raise ConfigError(
                f"map={shown} has the entry {source!r}:{target!r}; classes must be integers"
            )
        if source == target:
            raise ConfigError(
                f"map={shown} maps class {source} onto itself; a class must map to another one"
            )
        pairs[int(source)] = int(target)
    return shown, pairs


class Asymmetric(Regime):
    """Class-dependent noise between similar classes (Patrini et al. 2017): an item of class
    c in `map` is observed as map[c] with probability `rate` (exactly round(rate x n_c) of
    the n_c items of class c, at random); other classes keep their labels. `map` names a
    built-in map (CLASS_MAPS: cifar10, mnist) or is one, {source_class: target_class}.
    Items flip by the labels they are given, so a cat observed as a dog is not flipped back."""

    name = "asymmetric"

    def __init__(self, rate: float, map: str | Mapping[int, int] = "cifar10") -> None:
        self.rate = check_number("rate", rate, "[0, 1)")
        self.map_name, self.map = _class_map(map)

    def check(self, num_classes: int) -> None:
        outside = sorted({c for pair in self.map.items() for c in pair if not 0 <= c < num_classes})
        if outside:
            raise ConfigError(
                f"map={self.map_name} names class {outside[0]}, outside 0..{num_classes - 1}"
                f" (the dataset has {num_classes} classes)"
            )

    def observe(self, given, x, num_classes, rng) -> Observed:
        given_labels = np.asarray(given.labels, dtype=np.int64)
        y = given_labels.copy()
        for source in sorted(self.map):
            members = np.flatnonzero(given_labels == source)
            y[members[_flip_exactly(len(members), self.rate, rng)]] = self.map[source]
        return Observed.of_labels(y)

    def label(self) -> str:
        return f"asymmetric({self.map_name} {self.rate:g})"


class Instance(Regime):
    """Instance-dependent (part-dependent) noise of Xia et al. 2020: item i keeps its label
    with probability 1 - q_i, q_i drawn from N(rate, std^2) truncated to [0, 1]; otherwise
    it is observed as another class j with probability softmax_j(x_i W[y_i]) over j != y_i,
    with W ~ N(0, 1) of shape (K, d, K) and x_i the item's d inputs, flattened. The realised
    rate is the mean of the q_i: close to `rate`, a little above it near 0 (about 0.08 at
    rate 0) where the truncation cuts the normal.

    As the reference code (xiaoboxia/Part-dependent-label-noise tools.py), the inputs are
    used as the dataset gives them, not standardised (it feeds raw 0..255 pixels; image
    datasets here give 0..1, which changes only how peaked the softmax is). W is drawn once
    per run, so that validation items meet the same annotators as the pool."""

    name = "instance"

    def __init__(self, rate: float, std: float = 0.1) -> None:
        self.rate = check_number("rate", rate, "[0, 1)")
        self.std = check_number("std", std, "(0, inf)")

    def observe(self, given, x, num_classes, rng) -> Observed:
        if x is None:
            raise ValueError("instance-dependent noise needs the items' inputs")
        from scipy.stats import truncnorm

        y = np.array(given.labels, dtype=np.int64, copy=True)
        n, k = len(y), num_classes
        x = np.asarray(x).reshape(n, -1)
        low, high = (0 - self.rate) / self.std, (1 - self.rate) / self.std
        q = truncnorm.rvs(low, high, loc=self.rate, scale=self.std, size=n, random_state=rng)
        annotators = self._annotators(rng)
        p = np.zeros((n, k))
        for c in range(k):
            # W[c], class by class: the rows of one (K, d, K) draw, never all held at once
            w_c = annotators.standard_normal((x.shape[1], k))
            rows = np.flatnonzero(y == c)
            logits = x[rows].astype(np.float64) @ w_c  # a class at a time: no float64 copy of x
            logits[:, c] = -np.inf  # the flip goes to another class
            p[rows] = np.exp(logits - logits.max(axis=1, keepdims=True))
        p *= (q / p.sum(axis=1))[:, None]
        p[np.arange(n), y] += 1 - q
        cumulative = np.cumsum(p, axis=1)
        u = rng.random(n)[:, None] * cumulative[:, -1:]  # rows sum to 1 up to rounding
        return Observed.of_labels(np.minimum((u >= cumulative).sum(axis=1), k - 1))

    @staticmethod
    def _annotators(rng: np.random.Generator) -> np.random.Generator:
        """The stream W is drawn from: fixed by the seed of `rng`, not by how much of it has
        been used, so the pool and the validation items of one run share W."""
        seed = rng.bit_generator.seed_seq
        return np.random.default_rng(
            np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, 0x1D))
        )

    def observe_val_at(self, y, x, items, num_classes, rng):
        return self.observe(Observed.of_labels(y), x, num_classes, rng).labels

    def label(self) -> str:
        std = "" if self.std == 0.1 else f" std={self.std:g}"
        return f"instance({self.rate:g}{std})"
