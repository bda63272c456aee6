"""The record store: one JSON file per run under `<results_dir>/runs/`, written atomically;
and the `error` a failed record gives for an exception."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from labelbench.results.atomic import atomic_write
from labelbench.results.record import RecordError, RunRecord


class RecordStore:
    """`results/runs/<run_key>.json`. The source of truth for every aggregate."""

    def __init__(self, results_dir: str | os.PathLike) -> None:
        self.root = Path(results_dir)
        self.runs_dir = self.root / "runs"

    def path(self, run_key: str) -> Path:
        return self.runs_dir / f"{run_key}.json"

    def read(self, run_key: str) -> RunRecord | None:
        """The record of `run_key`, or None if there is none or it cannot be read."""
        try:
            return RunRecord.from_json(self.path(run_key).read_text())
        except (OSError, RecordError, TypeError):
            return None

    def is_ok(self, run_key: str) -> bool:
        record = self.read(run_key)
        return record is not None and record.status == "ok"

    def write(self, record: RunRecord) -> Path:
        """Write atomically: a temp file in the same folder, fsync, then rename over the
        target. A crash at any point leaves either the old file or the new one, never a
        partial record. A write that fails (a full disk ...) raises WriteError naming the
        record's path and why, and leaves no file."""
        text = record.to_json()  # serialise first: a bad record never touches the disk
        return atomic_write(self.path(record.run_key), text, fsync=True, what="the run record")

    def scan(self) -> Iterator[tuple[Path, RunRecord | RecordError]]:
        """Every record file with its record, or the error that made it unreadable."""
        if not self.runs_dir.is_dir():
            return
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                yield path, RunRecord.from_json(path.read_text())
            except (OSError, RecordError, TypeError) as e:
                yield path, RecordError(f"{path}: {e}")


# What an allocator says when memory runs out, in the RuntimeError torch raises for it:
# the CPU allocator (Linux, Windows), a GPU's (CUDA, MPS, XPU), cuBLAS on a full GPU.
OOM_SIGNS = ("can't allocate memory", "not enough memory", "out of memory", "ALLOC_FAILED")
OOM_HINT = "lower strategy.batch_size or the model's size, or give the run more memory"


def out_of_memory(error: BaseException) -> str | None:
    """'GPU' or 'CPU' if `error` says memory ran out (a MemoryError, torch's
    OutOfMemoryError, an allocator's RuntimeError), else None. By name and message: the
    record store imports no torch."""
    message = str(error)
    if not (
        isinstance(error, MemoryError)
        or type(error).__name__ == "OutOfMemoryError"  # torch.OutOfMemoryError: CUDA, XPU
        or (isinstance(error, RuntimeError) and any(s in message for s in OOM_SIGNS))
    ):
        return None
    gpu = type(error).__name__ == "OutOfMemoryError" or any(
        s in message for s in ("CUDA", "CUBLAS", "MPS", "XPU", "GPU")
    )
    return "GPU" if gpu else "CPU"


def error_of(error: BaseException) -> dict[str, str]:
    """The `error` of a failed record for `error`: its type and message. Memory that ran out is named as such, with what to lower, whatever raised it (type
    OutOfMemoryError, the original type and message kept in the message); a file that
    could not be written (WriteError) says which, where and why already."""
    message = str(error).strip() or type(error).__name__
    device = out_of_memory(error)
    if device is None:
        return {"type": type(error).__name__, "message": message}
    return {
        "type": "OutOfMemoryError",
        "message": f"out of {device} memory; {OOM_HINT} ({type(error).__name__}: {message})",
    }
