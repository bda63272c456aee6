"""Sweep bookkeeping across launchers: each job leaves an outcome file in its Hydra output
folder, and a callback in the submitting process watches them, prints a progress line
with an ETA, then the summary, and sets the exit code.

Outcome files rather than in-process counters, because only the basic launcher runs jobs
in the submitting process: joblib workers and SLURM jobs report through the file system.
The callback travels into every job (the launchers pickle it), carrying the sweep's id,
so a job's file says which sweep it belongs to even when sweeps share a folder.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from labelbench.overrides import BASIC_SWEEPER
from labelbench.results.atomic import atomic_write

log = logging.getLogger("labelbench")

OUTCOME_FILE = "labelbench-outcome.json"
KINDS = ("ok", "failed", "skipped", "invalid")
# A tuning trial that failed (diverged, ran out of memory ...) is a result of the study,
# which goes on without it: counted apart, it does not fail the sweep.
FAILED_TRIAL = "failed trial"


def write_outcome(output_dir: str | os.PathLike, outcome: str, sweep_id: str) -> None:
    """Leave this job's outcome next to its Hydra files (atomically)."""
    record = {"outcome": outcome, "sweep": sweep_id, "finished": time.time()}
    atomic_write(Path(output_dir) / OUTCOME_FILE, json.dumps(record))


def count_jobs(config: DictConfig) -> int | None:
    """Jobs in this sweep: the product of the sweep sizes of the command-line overrides and
    `hydra.sweeper.params` (the command line wins on a shared key). None if unknown (the
    tuning sweeper decides its trials as it goes)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    try:
        parser = OverridesParser.create()
        cli = parser.parse_overrides(list(config.hydra.overrides.task))
        keys = {o.get_key_element() for o in cli}
        params = config.hydra.sweeper.get("params") or {}
        extra = parser.parse_overrides([f"{k}={v}" for k, v in params.items() if k not in keys])
        total = 1
        for override in (*cli, *extra):
            if override.is_sweep_override():
                total *= len(list(override.sweep_string_iterator()))
        return total
    except Exception:  # glob sweeps and other forms we cannot expand without the loader
        return None


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


class SweepSummary(Callback):
    """Progress line 'sweep: 5/24 done (ok 4, failed 0, skipped 1, invalid 0), ETA 1m10s'
    while a multirun goes on, the summary 'sweep: N runs: ok A, failed B, skipped C' at the
    end, and a non-zero exit when any run failed, was invalid or left no outcome (the other
    runs still ran)."""

    def __init__(self, poll_s: float = 2.0) -> None:
        self.poll_s = poll_s
        self.sweep_dir: Path | None = None
        self.sweep_id: str | None = None
        self.started = 0.0
        self.total: int | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # joblib and submitit pickle the callbacks into every job: leave the watcher behind.
        return {k: v for k, v in self.__dict__.items() if k not in ("_stop", "_watcher")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _stop=threading.Event(), _watcher=None)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.sweep_id = uuid.uuid4().hex
        self.started = time.time()
        self.total = count_jobs(config)
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="labelbench-sweep", daemon=True)
        self._watcher.start()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In the job's process: record its outcome for the submitting process to count."""
        if self.sweep_id is None:  # a single run, or a DDP helper process
            return
        ok = job_return.status == JobStatus.COMPLETED
        outcome = job_return.return_value if ok else "crashed"
        if outcome == "failed" and config.get("tune", {}).get("trial") is not None:
            outcome = FAILED_TRIAL
        if outcome != "helper":
            write_outcome(config.hydra.runtime.output_dir, outcome, self.sweep_id)

    def tally(self) -> Counter[str]:
        """Outcomes written by this sweep's jobs."""
        counts: Counter[str] = Counter()
        if self.sweep_dir is None or not self.sweep_dir.is_dir():
            return counts
        for path in self.sweep_dir.rglob(OUTCOME_FILE):
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(found, dict) and found.get("sweep") == self.sweep_id:
                counts[found.get("outcome", "crashed")] += 1
        return counts

    def progress_line(self, counts: Counter[str]) -> str:
        done = sum(counts.values())
        of = f"/{self.total}" if self.total else ""
        kinds = ", ".join(f"{k} {counts[k]}" for k in KINDS)
        if counts[FAILED_TRIAL]:
            kinds += f", {FAILED_TRIAL}s {counts[FAILED_TRIAL]}"
        line = f"sweep: {done}{of} done ({kinds})"
        if self.total and 0 < done < self.total:
            elapsed = time.time() - self.started
            line += f", ETA {_duration(elapsed / done * (self.total - done))}"
        return line

    def _watch(self) -> None:
        seen = -1
        while not self._stop.wait(self.poll_s):
            counts = self.tally()
            if sum(counts.values()) != seen:
                seen = sum(counts.values())
                log.info(self.progress_line(counts))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        counts = self.tally()
        missing = (self.total or 0) - sum(counts.values())
        kinds = ", ".join(f"{k} {counts[k]}" for k in KINDS[:3]) + (
            f", invalid {counts['invalid']}" if counts["invalid"] else ""
        )
        if counts[FAILED_TRIAL]:
            kinds += f", {FAILED_TRIAL}s {counts[FAILED_TRIAL]}"
        if counts["crashed"]:
            kinds += f", crashed {counts['crashed']}"
        if missing > 0:
            kinds += f", no outcome {missing} (crashed or killed)"
        log.info(
            "sweep: %d runs: %s (%s)",
            self.total or sum(counts.values()),
            kinds,
            _duration(time.time() - self.started),
        )
        if counts["failed"] or counts["invalid"] or counts["crashed"] or missing > 0:
            sys.exit(1)
