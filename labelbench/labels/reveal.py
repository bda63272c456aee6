"""From ground truth to a LabelPool: the regime produces observed labels, the budget picks
which pool items are revealed. Depends only on (task, split_seed, regime, budget, seed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from labelbench.data.task import TaskData
from labelbench.labels.budget import Budget, reveal_order
from labelbench.labels.pool import LabelPool
from labelbench.labels.regime import Regime

# Independent random streams per purpose, so that e.g. changing the regime's draws never
# moves which items are revealed.
_STREAM_POOL_ORDER, _STREAM_VAL_ORDER, _STREAM_REGIME = 1, 2, 3


def _rng(seed: int, split_seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, split_seed, stream]))


@dataclass(frozen=True)
class LabelAccounting:
    """What the labels cost and how good they were; goes into the run record."""

    budget: str  # the budget's table label: '20', '4/class', 'full'
    budget_size: int  # labels the budget pays for
    count: int  # revealed pool items
    val_count: int  # labeled validation items
    val_paid: bool
    cost: float
    noise_rate: float  # share of revealed items whose observed label is wrong
    indices: list[int]  # revealed dataset indices, in reveal order

    def to_dict(self) -> dict:
        return asdict(self)


def reveal(
    task: TaskData, regime: Regime, budget: Budget, seed: int, split_seed: int
) -> tuple[LabelPool, LabelAccounting]:
    """Reveal the budget's share of the pool under the regime. Raises ConfigError when the
    budget does not fit the pool."""
    pool, val = task.split.pool, task.split.val
    k = task.num_classes
    y_pool, y_val = task.y[pool], task.y[val]
    n_train, n_val = budget.split_sizes(y_pool, k)

    # Annotators label every item once, up front, so an item's observed label does not
    # depend on the budget; the budget only decides which of them are bought.
    rng = _rng(seed, split_seed, _STREAM_REGIME)
    observed_pool = regime.observe(y_pool, k, rng)
    observed_val = regime.observe(y_val, k, rng)

    order = reveal_order(y_pool, k, _rng(seed, split_seed, _STREAM_POOL_ORDER), budget.balanced)
    revealed = order[:n_train]
    if n_val is None:
        val_pos = np.arange(len(val))
    else:
        val_order = reveal_order(
            y_val, k, _rng(seed, split_seed, _STREAM_VAL_ORDER), budget.balanced
        )
        val_pos = val_order[: min(n_val, len(val))]

    label_pool = LabelPool(
        indices=pool[revealed],
        labels=observed_pool[revealed],
        unlabeled=np.setdiff1d(pool, pool[revealed]),
        val_indices=val[val_pos],
        val_labels=observed_val[val_pos],
        num_classes=k,
    )
    paid_val = len(val_pos) if budget.val_paid else 0
    accounting = LabelAccounting(
        budget=budget.label(),
        budget_size=n_train + (n_val or 0),
        count=len(revealed),
        val_count=len(val_pos),
        val_paid=budget.val_paid,
        cost=regime.cost(len(revealed) + paid_val),
        noise_rate=float(np.mean(observed_pool[revealed] != y_pool[revealed]))
        if len(revealed)
        else 0.0,
        indices=[int(i) for i in pool[revealed]],
    )
    return label_pool, accounting
