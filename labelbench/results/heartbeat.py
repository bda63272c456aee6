"""A running run's heartbeat: `<results_dir>/running/<run_key>.json`, rewritten every
`every_s` seconds while the run runs and removed when it ends, so that `labelbench status`
tells running runs (a fresh beat) from runs that died without a word (a stale one).

Light: the standard library and the atomic writer only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from labelbench.results.atomic import atomic_write

FOLDER = "running"
EVERY_S_ENV = "LABELBENCH_HEARTBEAT_S"  # seconds between beats (default EVERY_S)
EVERY_S = 30.0


def beat_path(results_dir: str | os.PathLike, run_key: str) -> Path:
    return Path(results_dir) / FOLDER / f"{run_key}.json"


class Heartbeat:
    """While entered: the run's heartbeat file, refreshed by a daemon thread. A beat that
    cannot be written (a full disk) is skipped: the run matters more than its heartbeat."""

    def __init__(self, results_dir: str | os.PathLike, run_key: str, about: dict[str, Any]):
        from labelbench.provenance import utc_now

        self.path = beat_path(results_dir, run_key)
        self.every_s = float(os.environ.get(EVERY_S_ENV) or EVERY_S)
        self.content = {
            "run_key": run_key,
            **about,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "started": utc_now(),
            "every_s": self.every_s,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        from labelbench.provenance import utc_now

        with contextlib.suppress(OSError):
            atomic_write(self.path, json.dumps({**self.content, "beat": utc_now()}, indent=1))

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._run, name="labelbench-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)
