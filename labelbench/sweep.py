"""Sweep bookkeeping: a Hydra callback that counts outcomes and sets the exit code."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("labelbench")


class SweepSummary(Callback):
    """Prints 'sweep: N runs: ok A, failed B, skipped C, invalid D' after a multirun and exits
    non-zero when any run failed or was invalid (the other runs still ran)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        ok = job_return.status == JobStatus.COMPLETED
        self.outcomes[job_return.return_value if ok else "crashed"] += 1

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        n = sum(self.outcomes.values())
        kinds = ("ok", "failed", "skipped", "invalid", "crashed")
        counts = ", ".join(
            f"{k} {self.outcomes[k]}" for k in kinds if self.outcomes[k] or k in kinds[:3]
        )
        log.info("sweep: %d runs: %s", n, counts)
        if self.outcomes["failed"] or self.outcomes["invalid"] or self.outcomes["crashed"]:
            sys.exit(1)
