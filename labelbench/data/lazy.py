"""Inputs that stay on disk: an ItemReader decodes one item at a time, LazyInputs is the
dataset-shaped view of them that a TaskData holds in place of an array.

Images are stored and handed over as uint8 (channels first) and become float32 in [0, 1]
(`x / 255`) where they are used: on the training device for batches of the streaming path,
on the CPU when a view is materialised. Both divide in float32, so a materialised row and a
streamed one hold the same values.

Where the inputs travel (labelbench.data.loading decides, per run): a dataset that fits is
materialised once and kept on the training device (the in-memory path); one that does not
stays a LazyInputs, and the shared training loop streams it through DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EVAL_BATCH = 1024  # rows decoded at a time for in-order passes (materialising, predicting)
# Input values in one batch of a pass that only predicts: 8 MB as float32. A network's
# activations grow with them (4096 images of 96x96 through a small CNN take over 10 GB).
EVAL_VALUES = 2**21


def eval_rows(item_shape: tuple[int, ...], most: int = EVAL_BATCH) -> int:
    """Rows per batch of a pass that only predicts: `most`, or fewer for large items, so
    that a batch holds at most EVAL_VALUES input values (4096 digits, 682 CIFAR images, 75
    STL-10 images)."""
    return max(1, min(most, EVAL_VALUES // max(1, int(np.prod(item_shape)))))


class UnreadableItem(Exception):
    """An item that cannot be read or decoded; the message names its file (or row)."""


class ItemReader:
    """Reads the items of a dataset one at a time: what DataLoader workers run, so it must
    pickle cheaply (keep per-item data in numpy arrays, not Python lists, so that forked
    workers do not copy them by touching reference counts).

    `item_shape`: the shape of one decoded item ((channels, height, width) for images).
    `dtype`: uint8 for images (scaled by 1/255 when used), float32 otherwise."""

    item_shape: tuple[int, ...] = ()
    dtype: Any = np.uint8

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> np.ndarray:
        """Item `i`, decoded: an array of `item_shape` and `dtype`. Raises UnreadableItem
        naming the file when it cannot be read or decoded, or has another shape."""
        raise NotImplementedError

    def where(self, i: int) -> str:
        """Where item `i` comes from (its path, or its row of a table), for messages."""
        return f"item {i}"

    def fingerprint(self) -> str:
        """A hash of what the items are (file names, sizes and times, or a table's
        fingerprint): what the embedding cache keys an encoded copy by."""
        raise NotImplementedError


class _Items:
    """A torch map-style Dataset over a reader (built in `LazyInputs.loader`): item i as a
    tensor. Defined without subclassing torch's Dataset so this module imports no torch."""

    def __init__(self, reader: ItemReader) -> None:
        self.reader = reader

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.reader.read(int(i))))


def _worker_error(e: BaseException) -> UnreadableItem | None:
    """An UnreadableItem raised in a DataLoader worker comes back wrapped in a message of
    several lines (the worker's traceback); its last line is the original message."""
    text = str(e)
    marker = f"{UnreadableItem.__module__}.{UnreadableItem.__name__}: "
    if marker not in text:
        return None
    last = text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return UnreadableItem(last)


@dataclass(frozen=True)
class Streaming:
    """How a LazyInputs is read: DataLoader workers, batches each worker prepares ahead,
    and whether batches go to pinned memory (for an asynchronous copy to a GPU)."""

    workers: int = 4
    prefetch: int = 2


class LazyInputs:
    """The inputs of a dataset (or of some of its rows) kept on disk.

    Indexed like the array it stands for: `x[i]` is one item (float32); `x[rows]` (an index
    array or a slice) is a LazyInputs over those rows, read nothing; `np.asarray(x)`
    materialises every row as float32, decoding them in order through workers. `batches`
    and `loader` read rows in batches without ever holding them all."""

    def __init__(
        self,
        reader: ItemReader,
        rows: np.ndarray | None = None,
        streaming: Streaming = Streaming(),  # frozen: safe to share
    ) -> None:
        self.reader = reader
        self.rows = (
            np.arange(len(reader), dtype=np.int64)
            if rows is None
            else np.asarray(rows, dtype=np.int64)
        )
        self.streaming = streaming
        self.scale = 255.0 if np.dtype(reader.dtype) == np.uint8 else 1.0

    # -- array-like ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.reader.item_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    dtype = np.dtype(np.float32)  # of the values the rows stand for

    @property
    def nbytes(self) -> int:
        """Bytes of the rows as float32 (what materialising them takes)."""
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return self.as_float(self.reader.read(int(self.rows[key])))
        if isinstance(key, (slice, np.ndarray, list, tuple)):
            return LazyInputs(self.reader, self.rows[key], self.streaming)
        if hasattr(key, "numpy"):  # a torch tensor of positions
            return LazyInputs(self.reader, self.rows[key.cpu().numpy()], self.streaming)
        raise TypeError(f"LazyInputs cannot be indexed with {type(key).__name__}")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        start = 0
        for batch in self.batches(EVAL_BATCH, raw=True):
            out[start : start + len(batch)] = self.as_float(batch.numpy())
            start += len(batch)
        return out if dtype is None else out.astype(dtype, copy=False)

    def as_float(self, a: Any) -> Any:
        """Stored values (uint8 images) as float32 in the dataset's scale ([0, 1] for
        images); a numpy array or a torch tensor (on any device)."""
        if hasattr(a, "float"):  # a torch tensor
            return a.float().div_(self.scale) if self.scale != 1.0 else a.float()
        return a.astype(np.float32) / np.float32(self.scale)

    def value_range(self) -> tuple[float, float]:
        """The range the values can take without reading them ([0, 1] for uint8 images),
        or (-inf, inf) for float items."""
        return (0.0, 1.0) if self.scale == 255.0 else (-np.inf, np.inf)

    # -- reading in batches ----------------------------------------------------------------
    def workers(self) -> int:
        """DataLoader workers to read with: `streaming.workers`, at most the cores this
        process may run on (more would only queue up)."""
        return min(self.streaming.workers, len(os.sched_getaffinity(0)))

    def loader(
        self,
        batches: Iterable[Sequence[int]],
        *,
        pin_memory: bool = False,
        workers: int | None = None,
    ) -> Iterator[Any]:
        """Stored-dtype tensors (uint8 for images) of the given batches of positions (rows
        of this view), in order, decoded by `streaming.workers` DataLoader workers that
        each prepare `streaming.prefetch` batches ahead. `batches` may be endless. A file
        that cannot be read raises UnreadableItem naming it."""
        import torch
        from torch.utils.data import DataLoader

        workers = self.workers() if workers is None else min(workers, self.workers())
        rows = self.rows
        absolute = ([int(rows[p]) for p in batch] for batch in batches)
        loader = DataLoader(
            _Items(self.reader),
            batch_sampler=absolute,
            num_workers=workers,
            pin_memory=pin_memory,
            prefetch_factor=self.streaming.prefetch if workers else None,
            # Workers' seeds from a generator of their own: starting them must not draw
            # from the global torch RNG (dropout's), or streaming would change training.
            generator=torch.Generator().manual_seed(0),
        )
        return _reraised(iter(loader))

    def batches(self, batch_size: int, *, raw: bool = False) -> Iterator[Any]:
        """Every row in order, `batch_size` at a time, as CPU tensors: float32 (raw: the
        stored dtype)."""
        n = len(self)
        spans = (range(i, min(i + batch_size, n)) for i in range(0, n, batch_size))
        workers = min(self.workers(), max(0, (n - 1) // batch_size))  # none for one batch
        for batch in self.loader(spans, workers=workers):
            yield batch if raw else self.as_float(batch)


def _reraised(it: Iterator[Any]) -> Iterator[Any]:
    """`it` (a DataLoader's iterator), with a worker's UnreadableItem raised again as one
    line, and the workers shut down as soon as this generator ends or is let go of (not
    whenever the garbage collector gets to the loader)."""
    try:
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except Exception as e:  # a worker's error comes back with its traceback in it
                error = _worker_error(e)
                if error is None:
                    raise
                break
            yield batch
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # torch's multi-process iterator
        if shutdown is not None:
            shutdown()
    raise error from None


def is_lazy(x: Any) -> bool:
    return isinstance(x, LazyInputs)


def return_freed_memory() -> None:
    """Have glibc give large freed blocks back to the system at once: a fixed mmap threshold
    of 1 MiB (M_MMAP_THRESHOLD), instead of the dynamic one that rises to 32 MiB and then
    serves a network's mid-size activations from a heap that only grows. Predicting 3,000
    streamed 96x96 images with a small CNN raised the resident memory by 850 MB without it
    and by 14 MB with it, at the same speed. No-op where libc is not glibc."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3: M_MMAP_THRESHOLD


def place(task: Any, path: str, stream_above_mb: int, streaming: Streaming) -> Any:
    """The task with its inputs where the run's `loader` settings put them: a LazyInputs is
    materialised (decoded once, in memory) under path=memory, or under path=auto when its
    float32 size is at most `stream_above_mb`; else it stays on disk and is streamed with
    `streaming`. Inputs already in memory stay as they are."""
    from dataclasses import replace

    x = task.x
    if not is_lazy(x):
        return task
    if path == "memory" or (path == "auto" and x.nbytes <= stream_above_mb * 2**20):
        return replace(task, x=np.asarray(LazyInputs(x.reader, x.rows, streaming)))
    return_freed_memory()  # a streaming run's memory is its working set, not its history
    return replace(task, x=LazyInputs(x.reader, x.rows, streaming))
