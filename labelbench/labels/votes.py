"""Votes: what many sources (crowd annotators, labeling functions) said about items, held as
sparse (item, source, label) triples.

A crowd of 5,000 annotators who each label a few hundred of 100,000 items gives 300,000
votes; a dense (items, annotators) matrix of them would hold 500 million cells, nearly all
"no vote". So votes travel as triples everywhere (the regimes' annotations, the LabelPool,
active learning's purchases, the aggregations, the record's statistics), and a dense
(items, sources) matrix is made only on request (`dense`), where a caller needs one and it
is small: a handful of labeling functions, Snorkel's LabelModel, a test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NO_VOTE = -1  # in a dense view: the source gave no vote on the item (not asked, abstained)


def _frozen(a: Any) -> np.ndarray:
    a = np.array(a, dtype=np.int64).reshape(-1)  # a private copy, so no caller can mutate it
    a.setflags(write=False)
    return a


class Votes:
    """`n_items` items, `n_sources` sources, and one vote per (item, source) pair at most:
    source `source[v]` gave item `item[v]` the class `label[v]`. Pairs without a triple gave
    no vote. The triples are kept sorted by item, then source (so two Votes of the same
    votes are equal however they were built); the arrays are read-only int64.

    Item and source ids are row and column numbers, 0-based: the items of whatever the Votes
    annotate (a pool's revealed items, in their order), the sources as the regime numbers
    them. Raises ValueError for an id out of range, a negative label, or two votes of one
    source on one item."""

    __slots__ = ("_starts", "item", "label", "n_items", "n_sources", "source")
    __hash__ = None  # mutable-looking container semantics: compare, do not hash

    def __init__(self, item: Any, source: Any, label: Any, n_items: int, n_sources: int) -> None:
        item, source, label = (
            np.asarray(a, dtype=np.int64).reshape(-1) for a in (item, source, label)
        )
        if not (len(item) == len(source) == len(label)):
            raise ValueError(
                f"item, source and label need one entry per vote; got {len(item)}, {len(source)}"
                f" and {len(label)}"
            )
        n_items, n_sources = int(n_items), int(n_sources)
        if n_items < 0 or n_sources < 0:
            raise ValueError(f"n_items={n_items}, n_sources={n_sources} must be >= 0")
        for name, ids, bound in (("item", item, n_items), ("source", source, n_sources)):
            if len(ids) and (ids.min() < 0 or ids.max() >= bound):
                bad = int(ids.min() if ids.min() < 0 else ids.max())
                raise ValueError(f"{name} {bad} is out of range; allowed: 0..{bound - 1}")
        if len(label) and label.min() < 0:
            raise ValueError(f"label {int(label.min())} is not a class; classes are 0, 1, ...")
        key = item * max(n_sources, 1) + source
        if len(key) > 1 and not (np.diff(key) > 0).all():  # not already in canonical order
            order = np.argsort(key, kind="stable")
            item, source, label, key = item[order], source[order], label[order], key[order]
            twice = np.flatnonzero(np.diff(key) == 0)
            if len(twice):
                v = twice[0]
                raise ValueError(
                    f"source {int(source[v])} votes twice on item {int(item[v])}; one vote per"
                    " (item, source) pair"
                )
        item, source, label = _frozen(item), _frozen(source), _frozen(label)
        # Where each item's votes start (CSR row pointers): item i's are [starts[i], starts[i+1]).
        starts = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(item, minlength=n_items), out=starts[1:])
        starts.setflags(write=False)
        for name, value in (
            ("item", item),
            ("source", source),
            ("label", label),
            ("n_items", n_items),
            ("n_sources", n_sources),
            ("_starts", starts),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Votes are read-only; {name} cannot be set")

    def __reduce__(self) -> tuple:
        # Pickled (a LabelPool sent to a worker, deep-copied) as the constructor's arguments.
        return Votes, (self.item, self.source, self.label, self.n_items, self.n_sources)

    @classmethod
    def from_dense(cls, matrix: Any) -> Votes:
        """From an (items, sources) matrix: a class per cell, -1 where no vote."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"a vote matrix must be (items, sources), got shape {matrix.shape}")
        if matrix.size and matrix.min() < NO_VOTE:
            raise ValueError(
                f"a vote matrix holds {int(matrix.min())}; classes are 0, 1, ... and -1 no vote"
            )
        item, source = np.nonzero(matrix != NO_VOTE)
        return cls(item, source, matrix[item, source], *matrix.shape)

    @classmethod
    def empty(cls, n_items: int, n_sources: int) -> Votes:
        """No votes at all on n_items items from n_sources sources."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, n_items, n_sources)

    @property
    def shape(self) -> tuple[int, int]:
        """(items, sources): the shape of the dense view."""
        return self.n_items, self.n_sources

    @property
    def n_votes(self) -> int:
        return len(self.label)

    def __len__(self) -> int:
        return self.n_items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Votes):
            return NotImplemented
        return self.shape == other.shape and all(
            np.array_equal(getattr(self, a), getattr(other, a)) for a in ("item", "source", "label")
        )

    def __repr__(self) -> str:
        return f"Votes({self.n_votes} votes on {self.n_items} items from {self.n_sources} sources)"

    def dense(self) -> np.ndarray:
        """The (items, sources) matrix, -1 where no vote. Only for small matrices: it holds
        items x sources cells whatever the number of votes."""
        out = np.full(self.shape, NO_VOTE, dtype=np.int64)
        out[self.item, self.source] = self.label
        return out

    def take(self, positions: Any) -> Votes:
        """The votes on the items at `positions`, in that order: item positions[r] becomes
        item r. Costs the number of votes taken, not items x sources."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        if len(positions) and (positions.min() < 0 or positions.max() >= self.n_items):
            raise ValueError(f"positions must be items 0..{self.n_items - 1}")
        rows, picks = gather(self._starts[positions], self.per_item()[positions])
        return Votes(rows, self.source[picks], self.label[picks], len(positions), self.n_sources)

    def per_item(self) -> np.ndarray:
        """(items,) how many votes each item has."""
        return np.diff(self._starts)

    def per_source(self) -> np.ndarray:
        """(sources,) how many votes each source gave."""
        return np.bincount(self.source, minlength=self.n_sources)

    def has_vote(self) -> np.ndarray:
        """(items,) bool: the items at least one source voted on."""
        return self.per_item() > 0

    def counts(self, num_classes: int) -> np.ndarray:
        """(items, classes) int64: how many sources voted for each class."""
        self.check_classes(num_classes)
        flat = np.bincount(
            self.item * num_classes + self.label, minlength=self.n_items * num_classes
        )
        return flat.reshape(self.n_items, num_classes)

    def check_classes(self, num_classes: int) -> None:
        """ValueError unless every vote is a class 0..num_classes-1."""
        if self.n_votes and self.label.max() >= num_classes:
            raise ValueError(
                f"votes must be classes 0..{num_classes - 1} or {NO_VOTE} (no vote); one is"
                f" {int(self.label.max())}"
            )


def gather(first: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For row r's entries at [first[r], first[r] + sizes[r]) of item-sorted arrays: each
    entry's row, and its position in those arrays, rows in order. Whole arrays, no loop."""
    rows = np.repeat(np.arange(len(first)), sizes)
    # The v-th entry gathered: first[its row] + its rank among that row's entries.
    offsets = np.cumsum(sizes) - sizes
    return rows, first[rows] + np.arange(len(rows)) - offsets[rows]


def as_votes(votes: Votes | Any) -> Votes:
    """Votes as they are, or an (items, sources) matrix (-1 = no vote) made into Votes."""
    return votes if isinstance(votes, Votes) else Votes.from_dense(votes)
