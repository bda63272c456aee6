"""The record store: one JSON file per run under `<results_dir>/runs/`, written atomically."""

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
        partial record."""
        text = record.to_json()  # serialise first: a bad record never touches the disk
        return atomic_write(self.path(record.run_key), text, fsync=True)

    def scan(self) -> Iterator[tuple[Path, RunRecord | RecordError]]:
        """Every record file with its record, or the error that made it unreadable."""
        if not self.runs_dir.is_dir():
            return
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                yield path, RunRecord.from_json(path.read_text())
            except (OSError, RecordError, TypeError) as e:
                yield path, RecordError(f"{path}: {e}")
