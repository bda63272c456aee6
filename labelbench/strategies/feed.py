"""Minibatches for the shared loop: seeded index streams, and feeds that pair each batch of
positions with its inputs, from memory or streamed from disk.

Two data paths, one contract. Inputs that fit are one tensor on the training device and a
batch is an index slice of it (no DataLoader, no collation: the fast path for the small
data most runs use). Inputs that stay on disk (a LazyInputs) are read by DataLoader
workers, which decode the batches the stream will ask for next, in pinned memory on a
GPU; the training process moves each batch to the device and scales it to float32 there.
Either way the positions come from the same seeded MinibatchStream, so both paths train on
the same items in the same order, and a checkpoint holds the stream's position at the
last batch *consumed* (not the batches prefetched), so a resumed fit continues exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from labelbench.data.lazy import EVAL_BATCH, LazyInputs, eval_rows


class MinibatchStream:
    """Endless seeded minibatches of indices into `n` items: a fresh permutation every pass,
    cut into `batch_size` pieces (the last one may be smaller), like a shuffling DataLoader
    but as index tensors already on `device`. With `replacement`, every batch is
    `batch_size` independent uniform draws instead (USB's labeled sampler: full batches
    from however few labels).

    Under DDP every process draws the same permutation and keeps its share of each batch
    (`rank::world_size`), so the processes together see each global batch once, and no
    item twice within a pass.

    Its state (`state_dict`) is where it stands: the generator's state before the current
    permutation and how many of its batches were drawn (with replacement: the generator's
    state), a few kilobytes whatever `n`."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        replacement: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError("cannot draw minibatches from an empty set")
        self.n, self.batch_size, self.device = n, batch_size, device
        self.replacement = replacement
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self._batches: list[Tensor] = []  # the current permutation, cut into batches
        self._before = self.generator.get_state()  # the generator before drawing it
        self._taken = 0  # its batches drawn so far

    def __iter__(self) -> MinibatchStream:
        return self

    def __next__(self) -> Tensor:
        if self.replacement:
            batch = torch.randint(self.n, (self.batch_size,), generator=self.generator)
            batch = batch.to(self.device)
        else:
            if self._taken == len(self._batches):
                self._before = self.generator.get_state()
                perm = torch.randperm(self.n, generator=self.generator).to(self.device)
                self._batches = list(perm.split(self.batch_size))  # one copy to the device a pass
                self._taken = 0
            batch = self._batches[self._taken]
            self._taken += 1
        if self.world_size > 1 and len(batch) >= self.world_size:
            batch = batch[self.rank :: self.world_size]
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Enough to continue with exactly the batches an uninterrupted stream would draw."""
        if self.replacement or self._taken == len(self._batches):
            return {"generator": self.generator.get_state(), "taken": 0}
        return {"generator": self._before, "taken": self._taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._batches, self._taken = [], 0
        for _ in range(state["taken"]):  # redraw the permutation; skip what was drawn
            next(self)


class Feed:
    """(positions, inputs) minibatches: `stream` draws positions into `rows` (dataset
    indices of the items fed) and the inputs of those rows come from `x`, a tensor on the
    training device or a LazyInputs read by DataLoader workers. Inputs arrive as float32
    on `device` either way (uint8 images are scaled there), with their positions."""

    def __init__(
        self, stream: MinibatchStream, rows: Tensor, x: Tensor | LazyInputs, device: torch.device
    ) -> None:
        self.stream, self.x, self.device = stream, x, device
        self.lazy = isinstance(x, LazyInputs)
        self.workers: int | None = None  # DataLoader workers (None: the LazyInputs' setting)
        self.rows = rows.cpu() if self.lazy else rows.to(self.device)
        self._state = stream.state_dict()  # where the stream stood after the last batch fed
        self._ahead: deque[tuple[Tensor, dict[str, Any]]] = deque()
        self._loaded: Iterator[Tensor] | None = None

    @property
    def batch_size(self) -> int:
        return self.stream.batch_size

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        if not self.lazy:
            pick = next(self.stream)
            return pick, self.x[self.rows[pick]]
        if self._loaded is None:
            pin = self.device.type == "cuda"
            self._loaded = self.x.loader(self._positions(), pin_memory=pin, workers=self.workers)
        batch = next(self._loaded)
        pick, self._state = self._ahead.popleft()
        x = self.x.as_float(batch.to(self.device, non_blocking=True))
        return pick.to(self.device), x

    def _positions(self) -> Iterator[list[int]]:
        """The rows of the batches the stream draws, for the DataLoader, each one's
        positions and the stream's state after it queued for the consumer (the
        DataLoader runs ahead of what is consumed)."""
        while True:
            pick = next(self.stream)
            self._ahead.append((pick, self.stream.state_dict()))
            yield self.rows[pick].tolist()

    def state_dict(self) -> dict[str, Any]:
        return self._state if self.lazy else self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()
        self.stream.load_state_dict(state)
        self._state = self.stream.state_dict()

    def close(self) -> None:
        """Stop the workers and drop what they read ahead: the stream goes back to the last
        batch consumed, and a fresh loader starts from there at the next batch."""
        if self._loaded is not None:
            self._loaded, self._ahead = None, deque()
            self.stream.load_state_dict(self._state)


def share_workers(feeds: list[Feed]) -> None:
    """Split the streaming workers of one run among its feeds from disk, by the images each
    draws a step (FixMatch's unlabeled feed, 7x the labeled one, gets most), at least one
    each: a run starts its `loader.workers` processes, not that many per feed."""
    lazy = [f for f in feeds if f.lazy]
    if not lazy:
        return
    total = lazy[0].x.workers()
    sizes = [f.batch_size for f in lazy]
    for feed, size in zip(lazy, sizes, strict=True):
        feed.workers = max(1, int(total * size / sum(sizes))) if total else 0


def input_batches(
    x: Tensor | LazyInputs, rows: Tensor, device: torch.device, size: int = EVAL_BATCH
) -> Iterator[Tensor]:
    """The inputs of `rows`, in order, `size` at a time (fewer for large items: eval_rows),
    as float32 on `device`: slices of an in-memory tensor, or batches DataLoader workers
    read from disk."""
    size = eval_rows(x.item_shape if isinstance(x, LazyInputs) else tuple(x.shape[1:]), size)
    if isinstance(x, LazyInputs):
        for batch in x[rows.cpu().numpy()].batches(size, raw=True):
            yield x.as_float(batch.to(device))
        return
    rows = rows.to(x.device)
    for i in range(0, len(rows), size):
        yield x[rows[i : i + size]]
