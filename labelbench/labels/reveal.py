"""From ground truth to a LabelPool. `shape` lets the regime reshape the split (a
long-tailed pool, a shifted test split); `reveal` has the annotators label the pool and the
budget pick which items are bought. Both depend only on (task, split_seed, regime, budget,
seed): never on the strategy or the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from labelbench.config import ConfigError
from labelbench.data.task import TaskData
from labelbench.labels.budget import Budget, reveal_order
from labelbench.labels.pool import LabelPool, Observed
from labelbench.labels.regime import Regime
from labelbench.labels.votes import Votes
from labelbench.labels.weak import lf_analysis

# Independent random streams per purpose, so that e.g. changing the regime's draws never
# moves which items are revealed.
_STREAM_POOL_ORDER, _STREAM_VAL_ORDER, _STREAM_REGIME, _STREAM_SHAPE = 1, 2, 3, 4


def _rng(seed: int, split_seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, split_seed, stream]))


def shape(task: TaskData, regime: Regime, seed: int, split_seed: int) -> TaskData:
    """The task with the pool and test split the regime leaves (the same task when it
    keeps both). Raises ConfigError when nothing would be left of either, or when the
    regime cannot annotate the pool and validation items left (`Regime.check_items`)."""
    regime.check_dataset(len(task.y))
    rng = _rng(seed, split_seed, _STREAM_SHAPE)
    k = task.num_classes
    split = task.split
    pool_pick = regime.select_pool(task.y[split.pool], k, rng)
    test_pick = regime.select_test(task.y[split.test], k, rng)
    pool = split.pool if pool_pick is None else split.pool[pool_pick]
    regime.check_items(np.concatenate([pool, split.val]))
    if pool_pick is None and test_pick is None:
        return task
    test = split.test if test_pick is None else split.test[test_pick]
    for name, items in (("pool", pool), ("test split", test)):
        if len(items) == 0:
            raise ConfigError(f"{regime.label()} leaves the {name} empty")
    return replace(task, split=replace(split, pool=pool, test=test))


def _imbalance(y: np.ndarray, num_classes: int) -> float:
    """Largest class count over smallest non-empty one (1 for a balanced set)."""
    counts = np.bincount(y, minlength=num_classes)
    counts = counts[counts > 0]
    return float(counts.max() / counts.min()) if len(counts) else 1.0


@dataclass(frozen=True)
class LabelAccounting:
    """What the labels cost and how good they were; goes into the run record."""

    budget: str  # the budget's table label: '20', '4/class', 'full'
    budget_size: int  # labels the budget pays for (annotations under a crowd regime)
    count: int  # revealed pool items
    val_count: int  # labeled validation items
    val_paid: bool
    cost: float
    noise_rate: (
        float | None
    )  # share of revealed single labels that are wrong (None: no single labels)
    indices: list[int]  # revealed dataset indices, in reveal order
    regime: str = "clean"  # the regime's table label: 'symmetric(0.4)', 'longtail(10)+crowd(...)'
    kind: str = "labels"  # what the annotations are (labels.pool.KINDS)
    realised: dict[str, Any] = field(default_factory=dict)  # what the regime realised

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Annotations:
    """What the annotators answer for every pool item and every validation item, drawn once,
    up front, so an item's answer never depends on when, or whether, it is bought. Held by
    the run (it sits next to the truth); strategies get LabelPools cut from it."""

    pool: np.ndarray  # dataset indices of the pool items
    observed: Observed  # the answers, row-aligned with `pool`
    val: np.ndarray  # dataset indices of the validation items
    val_labels: np.ndarray  # their single labels, row-aligned with `val`
    num_classes: int
    val_votes: Votes | None = None  # labeling functions' votes on `val` (weak regimes)
    extra: np.ndarray | None = None  # the unlabeled-only items (Split.unlabeled)

    def label_pool(self, revealed: np.ndarray, val_positions: np.ndarray) -> LabelPool:
        """The LabelPool with the pool items at positions `revealed` bought, in that order,
        and the validation items at `val_positions`."""
        revealed = np.asarray(revealed, dtype=np.int64)
        if len(np.unique(revealed)) != len(revealed):
            raise ValueError("an item can be bought only once")
        return LabelPool.from_observed(
            indices=self.pool[revealed],
            observed=self.observed.take(revealed),
            unlabeled=np.setdiff1d(self.pool, self.pool[revealed]),
            val_indices=self.val[val_positions],
            val_labels=self.val_labels[val_positions],
            num_classes=self.num_classes,
            val_votes=None if self.val_votes is None else self.val_votes.take(val_positions),
            extra=self.extra,
        )


def annotate(task: TaskData, regime: Regime, seed: int, split_seed: int) -> Annotations:
    """The regime's answers for the task's pool and validation items (a task already `shape`d
    by the regime)."""
    pool, val = task.split.pool, task.split.val
    k = task.num_classes
    rng = _rng(seed, split_seed, _STREAM_REGIME)
    observed = regime.observe_at(Observed.of_labels(task.y[pool]), task.x[pool], pool, k, rng)
    val_labels = regime.observe_val_at(task.y[val], task.x[val], val, k, rng)
    val_votes = regime.observe_val_votes(task.x[val])  # draws nothing: the rest stays put
    val_labels = np.asarray(val_labels, dtype=np.int64)
    return Annotations(pool, observed, val, val_labels, k, val_votes, task.split.unlabeled)


class Labeler:
    """Sells labels. Holds the regime's answers for every pool item (drawn up front) and the
    budget's seeded reveal order, and hands out LabelPools of what has been bought, in the
    order it was bought, never more than the budget pays for. The run holds it, since it
    sits next to the truth; a strategy sees only the LabelPools it returns.

    A fixed budget buys the first `capacity` items of the reveal order (`buy_first`); an
    active-learning loop buys a prefix of it to start with, then the items it picks (`buy`).
    Raises ConfigError when the budget does not fit the pool."""

    def __init__(
        self, task: TaskData, regime: Regime, budget: Budget, seed: int, split_seed: int
    ) -> None:
        self.task, self.regime, self.budget = task, regime, budget
        pool, val = task.split.pool, task.split.val
        k = task.num_classes
        y_pool = task.y[pool]
        per_item = regime.annotations_per_item
        try:
            self.units, n_val = budget.split_sizes(y_pool, k, per_item)
        except ConfigError as e:
            if not len(task.split.unlabeled):
                raise
            raise ConfigError(
                f"{e} (the {len(task.split.unlabeled)} unlabeled-only items have no label to buy)"
            ) from None
        self.val_units = n_val or 0
        self.capacity = min(len(pool), self.units // per_item)  # items the budget pays for
        if self.capacity < 1:
            raise ConfigError(
                f"{budget.label()} labels buy no item when each takes {per_item} annotations;"
                f" allowed: at least {per_item}"
            )
        # Annotators label every item once, up front, so an item's annotations depend
        # neither on the budget nor on who buys it when.
        self.annotations = annotate(task, regime, seed, split_seed)
        self.order = reveal_order(
            y_pool, k, _rng(seed, split_seed, _STREAM_POOL_ORDER), budget.balanced
        )
        if n_val is None:
            self.val_positions = np.arange(len(val))
        else:
            val_order = reveal_order(
                task.y[val], k, _rng(seed, split_seed, _STREAM_VAL_ORDER), budget.balanced
            )
            self.val_positions = val_order[: min(n_val, len(val))]
        self._position = {int(i): p for p, i in enumerate(pool)}
        self._bought: list[int] = []  # positions into the pool, in the order bought

    @property
    def bought(self) -> np.ndarray:
        """Dataset indices of the items bought so far, in the order they were bought."""
        return self.task.split.pool[np.asarray(self._bought, dtype=np.int64)]

    @property
    def left(self) -> int:
        """Items the budget still pays for."""
        return self.capacity - len(self._bought)

    def buy_first(self, n: int) -> LabelPool:
        """Buy the first n items of the seeded reveal order: the items a budget of n would
        reveal, the same for every strategy. Only before anything else is bought."""
        if self._bought:
            raise ValueError("buy_first comes before any other purchase")
        return self._buy_positions(self.order[:n])

    def preview(self, n: int) -> LabelPool:
        """The LabelPool `buy_first(n)` would give, buying nothing: what a whole budget
        reveals, for checks made before an active-learning loop buys as it goes."""
        return self.annotations.label_pool(self.order[:n], self.val_positions)

    def buy(self, indices: np.ndarray) -> LabelPool:
        """Buy the pool items with these dataset indices; returns the LabelPool of everything
        bought so far."""
        positions = []
        for i in np.asarray(indices, dtype=np.int64).tolist():
            if i not in self._position:
                raise ValueError(f"item {i} is not in the pool")
            positions.append(self._position[i])
        return self._buy_positions(np.asarray(positions, dtype=np.int64))

    def _buy_positions(self, positions: np.ndarray) -> LabelPool:
        if len(positions) > self.left:
            raise ValueError(
                f"buying {len(positions)} items exceeds the budget: {self.left} of"
                f" {self.capacity} left"
            )
        fresh = set(positions.tolist())
        if len(fresh) != len(positions) or fresh & set(self._bought):
            raise ValueError("an item can be bought only once")
        self._bought += positions.tolist()
        return self.label_pool()

    def label_pool(self) -> LabelPool:
        """What has been bought so far, with the validation labels."""
        return self.annotations.label_pool(
            np.asarray(self._bought, dtype=np.int64), self.val_positions
        )

    def accounting(self) -> LabelAccounting:
        """What the purchases cost and how good their labels were, for the record."""
        task, regime, k = self.task, self.regime, self.task.num_classes
        pool, val = task.split.pool, task.split.val
        y_pool, y_val = task.y[pool], task.y[val]
        revealed = np.asarray(self._bought, dtype=np.int64)
        bought = self.annotations.observed.take(revealed)
        val_pos = self.val_positions
        noise_rate = None
        if bought.kind == "labels":
            noise_rate = float(np.mean(bought.labels != y_pool[revealed])) if len(revealed) else 0.0
        observed_val = self.annotations.val_labels
        realised = {
            "pool_size": len(pool),
            "pool_imbalance": _imbalance(y_pool, k),
            "test_size": len(task.split.test),
            "test_imbalance": _imbalance(task.y[task.split.test], k),
            "unlabeled_only": len(task.split.unlabeled),
            "val_noise_rate": float(np.mean(observed_val[val_pos] != y_val[val_pos]))
            if len(val_pos)
            else 0.0,
            **regime.stats(bought, y_pool[revealed]),
        }
        val_votes = self.annotations.val_votes
        if val_votes is not None and bought.votes is not None:  # labeling functions
            realised["lf_analysis"] = lf_analysis(
                bought.votes, val_votes.take(val_pos), observed_val[val_pos]
            )
        paid_val = len(val_pos) if self.budget.val_paid else 0
        return LabelAccounting(
            budget=self.budget.label(),
            budget_size=self.units + self.val_units,
            count=len(revealed),
            val_count=len(val_pos),
            val_paid=self.budget.val_paid,
            cost=regime.cost(bought) + paid_val,
            noise_rate=noise_rate,
            indices=[int(i) for i in pool[revealed]],
            regime=regime.label(),
            kind=bought.kind,
            realised=realised,
        )


def reveal(
    task: TaskData, regime: Regime, budget: Budget, seed: int, split_seed: int
) -> tuple[LabelPool, LabelAccounting]:
    """Reveal the budget's share of the pool under the regime (on a task already `shape`d
    by it): the first items of the seeded reveal order. Raises ConfigError when the budget
    does not fit the pool."""
    labeler = Labeler(task, regime, budget, seed, split_seed)
    return labeler.buy_first(labeler.capacity), labeler.accounting()
