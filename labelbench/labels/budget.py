"""Label budgets: how many pool items get labels, and in which order they are revealed.

Every budget reveals a prefix of one seeded *reveal order* over the pool. The order depends
only on the pool's labels and the seed, so budgets are nested (the 20 labels of seed 0 are
among its 50) and every strategy and model sees the same items.
"""

from __future__ import annotations

import math

import numpy as np

from labelbench.config import ConfigError


def reveal_order(
    y: np.ndarray, num_classes: int, rng: np.random.Generator, balanced: bool
) -> np.ndarray:
    """Positions into `y` in the order they would be labeled.

    balanced: round-robin over classes (class order shuffled each round), each class in a
    shuffled order, so any prefix is as class-balanced as the classes allow.
    random: one uniform permutation."""
    if not balanced:
        return rng.permutation(len(y))
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(num_classes)]
    depth = max((len(p) for p in per_class), default=0)
    order = []
    for r in range(depth):
        for c in rng.permutation(num_classes):
            if r < len(per_class[c]):
                order.append(per_class[c][r])
    return np.asarray(order, dtype=np.int64)


class Budget:
    """Base budget.

    balanced: reveal class-balanced (the usual "N labels, balanced" protocol) or at random.
    val_paid: if true, validation labels come out of the budget (`val_share` of it, drawn
    from the validation split); if false, the whole validation split is labeled for free.
    The record says which."""

    def __init__(
        self, balanced: bool = True, val_paid: bool = False, val_share: float = 0.2
    ) -> None:
        if not 0 < val_share < 1:
            raise ConfigError(f"val_share={val_share} is outside (0, 1)")
        self.balanced = bool(balanced)
        self.val_paid = bool(val_paid)
        self.val_share = float(val_share)

    def size(self, y_pool: np.ndarray, num_classes: int, per_item: int = 1) -> int:
        """Labels the budget pays for (train plus, when paid, validation). A pool item takes
        `per_item` of them (a crowd regime's annotations per item)."""
        raise NotImplementedError

    def label(self) -> str:
        """Short name for tables: '20', '4/class', '10%', 'full'."""
        raise NotImplementedError

    def split_sizes(
        self, y_pool: np.ndarray, num_classes: int, per_item: int = 1
    ) -> tuple[int, int | None]:
        """(train labels, validation labels or None for the free, whole validation split)."""
        total = self.size(y_pool, num_classes, per_item)
        if not self.val_paid:
            return total, None
        n_val = max(1, round(self.val_share * total))
        if total - n_val < 1:
            raise ConfigError(
                f"val_paid=true with val_share={self.val_share} leaves no training labels out of"
                f" {total}; raise the budget or lower val_share"
            )
        return total - n_val, n_val


class Total(Budget):
    """A fixed number of labels in total."""

    def __init__(self, total: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(total, int) or total < 1:
            raise ConfigError(f"total={total} must be a positive integer")
        self.total = total

    def size(self, y_pool, num_classes, per_item=1):
        most = len(y_pool) * per_item
        if self.total > most:
            unit = "items" if per_item == 1 else f"items x {per_item} annotations"
            raise ConfigError(
                f"total={self.total} is larger than the pool ({len(y_pool)} {unit});"
                f" allowed: 1..{most}"
            )
        return self.total

    def label(self):
        return str(self.total)


class PerClass(Budget):
    """The same number of labels for every class (always balanced)."""

    def __init__(self, per_class: int, **kwargs) -> None:
        kwargs["balanced"] = True
        super().__init__(**kwargs)
        if not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(f"per_class={per_class} must be a positive integer")
        self.per_class = per_class

    def size(self, y_pool, num_classes, per_item=1):
        counts = np.bincount(y_pool, minlength=num_classes) * per_item
        smallest = int(counts.argmin())
        if self.per_class > counts[smallest]:
            unit = "items" if per_item == 1 else "annotations"
            raise ConfigError(
                f"per_class={self.per_class} is larger than the smallest class in the pool"
                f" (class {smallest}: {counts[smallest]} {unit}); allowed: 1..{counts[smallest]}"
            )
        return self.per_class * num_classes

    def label(self):
        return f"{self.per_class}/class"


class Fraction(Budget):
    """A fraction of the pool, rounded up to at least one label."""

    def __init__(self, fraction: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not 0 < fraction <= 1
        ):
            raise ConfigError(f"fraction={fraction} is outside (0, 1]")
        self.fraction = float(fraction)

    def size(self, y_pool, num_classes, per_item=1):
        return max(1, math.ceil(self.fraction * len(y_pool) * per_item - 1e-9))

    def label(self):
        return (
            f"{self.fraction:.0%}"
            if self.fraction * 100 == int(self.fraction * 100)
            else f"{self.fraction:g}"
        )


class Full(Budget):
    """Every pool item is labeled."""

    def size(self, y_pool, num_classes, per_item=1):
        return len(y_pool) * per_item

    def label(self):
        return "full"
