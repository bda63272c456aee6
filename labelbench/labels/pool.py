"""What annotators gave (Observed) and everything a strategy may know about labels (LabelPool)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from labelbench.labels.votes import Votes, as_votes

# What a regime's annotations are, and so which strategies can learn from them.
KINDS = ("labels", "crowd", "weak", "partial")
NO_LABEL = -1  # in `labels`: the regime gives no single label; in `votes`: no vote (abstain)


def _readonly(a: np.ndarray | None, dtype: type) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, dtype=dtype)  # a private copy, so no caller can mutate it under us
    a.setflags(write=False)
    return a


def _votes(votes: Votes | np.ndarray | None) -> Votes | None:
    return None if votes is None else as_votes(votes)


@dataclass(frozen=True)
class Observed:
    """The annotations of n items, row-aligned with the items a regime was given.

    kind 'labels': `labels` holds one observed class per item (clean or noisy).
    kind 'crowd' / 'weak': `votes` holds what the sources (annotators, labeling functions)
    said, as sparse triples (labels.votes.Votes; an (n, sources) matrix with -1 for no vote
    is taken too and made into Votes); `labels` is all -1.
    kind 'partial': `candidates[i]` marks the classes item i may have (a candidate set; a
    complementary label is a set of all classes but one); `labels` is all -1."""

    kind: str
    labels: np.ndarray
    votes: Votes | None = None  # n items' votes, from any number of sources
    candidates: np.ndarray | None = None  # (n, num_classes) bool

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is not one of {', '.join(KINDS)}")
        object.__setattr__(self, "labels", _readonly(self.labels, np.int64))
        object.__setattr__(self, "votes", _votes(self.votes))
        object.__setattr__(self, "candidates", _readonly(self.candidates, bool))
        n = len(self.labels)
        for name in ("votes", "candidates"):
            a = getattr(self, name)
            if a is not None and (len(a.shape) != 2 or len(a) != n):
                raise ValueError(f"{name} must have one row per item ({n}), got {a.shape}")
        need = {"crowd": "votes", "weak": "votes", "partial": "candidates"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"kind={self.kind!r} needs {need}")

    @classmethod
    def of_labels(cls, labels: np.ndarray) -> Observed:
        """Single observed labels (the start of every regime: the true ones)."""
        return cls("labels", labels)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, positions: np.ndarray) -> Observed:
        """The annotations of the items at `positions`, in that order."""
        pick = np.asarray(positions, dtype=np.int64)
        return replace(
            self,
            labels=self.labels[pick],
            votes=None if self.votes is None else self.votes.take(pick),
            candidates=None if self.candidates is None else self.candidates[pick],
        )


@dataclass(frozen=True)
class LabelPool:
    """Revealed pool items with what the annotators gave, and the items still unlabeled.

    Holds observations only: the true labels of the pool are not stored here and cannot be
    reached from it. All indices are dataset indices (rows of `TaskView.x`). `kind` says what
    the annotations are (see Observed): single `labels` for kind 'labels'; `votes` for
    'crowd' and 'weak'; `candidates` for 'partial' (then `labels` is all -1). Validation
    items always carry single labels (under crowd, weak and partial regimes a gold dev set,
    as in WRENCH); under a weak regime `val_votes` also holds the labeling functions' votes
    on them, for LF analysis and model selection (None elsewhere: crowd annotators are
    asked about pool items only)."""

    indices: np.ndarray  # revealed pool items, in reveal order
    labels: np.ndarray  # observed label of each revealed item (-1: the regime gives none)
    unlabeled: np.ndarray  # pool items not revealed
    val_indices: np.ndarray  # validation items whose (observed) labels the strategy may use
    val_labels: np.ndarray
    num_classes: int
    kind: str = "labels"
    votes: Votes | None = None  # the revealed items' votes (item r: the r-th revealed)
    candidates: np.ndarray | None = None  # (revealed, num_classes) bool
    val_votes: Votes | None = None  # the sources' votes on the validation items
    # Unlabeled-only items (no label exists, none can be bought: STL-10's unlabeled split):
    # unlabeled data beside `unlabeled`, never a query candidate.
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        for name in ("indices", "labels", "unlabeled", "val_indices", "val_labels", "extra"):
            object.__setattr__(self, name, _readonly(getattr(self, name), np.int64))
        for name in ("votes", "val_votes"):
            object.__setattr__(self, name, _votes(getattr(self, name)))
        object.__setattr__(self, "candidates", _readonly(self.candidates, bool))
        if len(self.indices) != len(self.labels):
            raise ValueError("one observed label per revealed index is required")
        if len(self.val_indices) != len(self.val_labels):
            raise ValueError("one observed label per validation index is required")
        if self.val_votes is not None and (
            self.votes is None
            or self.val_votes.shape != (len(self.val_indices), self.votes.n_sources)
        ):
            raise ValueError(
                "val_votes must have one row per validation item and one column per source of votes"
            )
        if np.intersect1d(self.indices, self.unlabeled).size:
            raise ValueError("an item cannot be both revealed and unlabeled")
        if np.intersect1d(self.extra, np.concatenate([self.indices, self.unlabeled])).size:
            raise ValueError("an unlabeled-only item cannot be in the pool")
        # Validates kind and the shapes of votes and candidates.
        Observed(self.kind, self.labels, self.votes, self.candidates)

    @classmethod
    def from_observed(
        cls,
        indices: np.ndarray,
        observed: Observed,
        unlabeled: np.ndarray,
        val_indices: np.ndarray,
        val_labels: np.ndarray,
        num_classes: int,
        val_votes: np.ndarray | None = None,
        extra: np.ndarray | None = None,
    ) -> LabelPool:
        return cls(
            indices=indices,
            labels=observed.labels,
            unlabeled=unlabeled,
            val_indices=val_indices,
            val_labels=val_labels,
            num_classes=num_classes,
            kind=observed.kind,
            votes=observed.votes,
            candidates=observed.candidates,
            val_votes=val_votes,
            extra=np.zeros(0, dtype=np.int64) if extra is None else extra,
        )

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def unlabeled_data(self) -> np.ndarray:
        """Every item a strategy may learn from without its label: the unrevealed pool, then
        the unlabeled-only items."""
        return np.concatenate([self.unlabeled, self.extra])

    def class_counts(self) -> np.ndarray:
        """Observed single labels per class among the revealed items (none under crowd,
        weak and partial regimes)."""
        return np.bincount(self.labels[self.labels >= 0], minlength=self.num_classes)
