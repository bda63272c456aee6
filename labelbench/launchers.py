"""Launcher checks: a Hydra callback that stops a SLURM sweep before anything is submitted
when this machine cannot submit to SLURM (no sbatch, or no controller answering)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("labelbench")

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def launcher_target(config: DictConfig) -> str:
    """The `_target_` of the configured Hydra launcher ('' when there is none)."""
    try:
        return str(config.hydra.launcher._target_)
    except Exception:  # a config without Hydra's node (tests composing by hand)
        return ""


def missing_sbatch() -> str | None:
    """Why SLURM jobs cannot be submitted from here, or None when `sbatch` is on PATH."""
    if shutil.which("sbatch") is None:
        return (
            "not found; run on a SLURM login node, or bring up the local test cluster with "
            "scripts/slurm/up.sh, or use launcher=local or launcher=joblib"
        )
    return None


def controller_problem(timeout: float = 30) -> str | None:
    """Why the SLURM controller does not answer `scontrol ping`, or None when one is up
    (or when there is no scontrol to ask: then sbatch reports for itself)."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        out = subprocess.run(
            [scontrol, "ping"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"scontrol ping: {e}"
    text = (out.stdout + out.stderr).strip()
    if " is UP" in text:  # the primary or a backup controller answers
        return None
    # The last line says why ('... is DOWN', 'fatal: Could not establish a configuration
    # source'); the '** RESTORE SLURMCTLD DAEMON TO SERVICE **' banner after it does not.
    lines = [line.strip() for line in text.splitlines() if "**" not in line and line.strip()]
    return lines[-1] if lines else f"scontrol ping: exit status {out.returncode}"


def fail(message: str) -> NoReturn:
    """One line on stderr and exit 2, as labelbench-run does for every bad input."""
    print(f"labelbench-run: error: {message}", file=sys.stderr)
    sys.exit(2)


class LauncherCheck(Callback):
    """Before a sweep with `launcher=slurm`: exit 2 with one line on stderr unless `sbatch` is
    on PATH and a SLURM controller answers, so nothing is half-submitted. Without `-m` no
    launcher is used: say so rather than ignore `launcher=slurm` silently."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if launcher_target(config) != SLURM_LAUNCHER:
            return
        problem = missing_sbatch()
        if problem:
            fail(f"launcher=slurm needs SLURM's sbatch on PATH ({problem})")
        problem = controller_problem()
        if problem:
            conf = os.environ.get("SLURM_CONF", "unset")
            fail(
                f"launcher=slurm: no SLURM controller answers ({problem}); SLURM_CONF={conf} "
                "(scripts/slurm/up.sh prints the one for the local test cluster)"
            )

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if launcher_target(config) == SLURM_LAUNCHER:
            log.warning("launcher=slurm applies to sweeps (-m); this single run runs here")
