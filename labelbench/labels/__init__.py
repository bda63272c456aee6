"""Labels: regimes (what annotators give), budgets (which items are bought) and the
LabelPool that strategies learn from. The heart of the project."""

from labelbench.labels.budget import Budget, Fraction, Full, PerClass, Total, reveal_order
from labelbench.labels.noise import PairFlip, Symmetric, Transition
from labelbench.labels.pool import LabelPool
from labelbench.labels.regime import Clean, Regime
from labelbench.labels.reveal import LabelAccounting, reveal

__all__ = [
    "Budget",
    "Clean",
    "Fraction",
    "Full",
    "LabelAccounting",
    "LabelPool",
    "PairFlip",
    "PerClass",
    "Regime",
    "Symmetric",
    "Total",
    "Transition",
    "reveal",
    "reveal_order",
]
