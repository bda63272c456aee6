"""Labels: regimes (what annotators give), budgets (which items are bought) and the
LabelPool that strategies learn from. The heart of the project."""

from labelbench.labels.budget import Budget, Fraction, Full, PerClass, Total, reveal_order
from labelbench.labels.crowd import Crowd
from labelbench.labels.imbalance import LabelShift, LongTail
from labelbench.labels.label_file import LabelFile
from labelbench.labels.noise import Asymmetric, Instance, PairFlip, Symmetric, Transition
from labelbench.labels.partial import Complementary, Partial
from labelbench.labels.pool import LabelPool, Observed
from labelbench.labels.regime import Clean, Regime, Stack
from labelbench.labels.reveal import (
    Annotations,
    LabelAccounting,
    Labeler,
    annotate,
    reveal,
    shape,
)
from labelbench.labels.vote_file import VoteFile
from labelbench.labels.weak import Weak

__all__ = [
    "Annotations",
    "Asymmetric",
    "Budget",
    "Clean",
    "Complementary",
    "Crowd",
    "Fraction",
    "Full",
    "Instance",
    "LabelAccounting",
    "LabelFile",
    "LabelPool",
    "LabelShift",
    "Labeler",
    "LongTail",
    "Observed",
    "PairFlip",
    "Partial",
    "PerClass",
    "Regime",
    "Stack",
    "Symmetric",
    "Total",
    "Transition",
    "VoteFile",
    "Weak",
    "annotate",
    "reveal",
    "reveal_order",
    "shape",
]
