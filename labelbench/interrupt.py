"""Stop signals during a run: SIGTERM (a cluster's preemption or `scancel`), SIGINT (Ctrl-C)
and SIGUSR2 (the warning SLURM sends before a time limit, where submitit asks for it).

A network fit polls for them at its safe points (the end of each chunk of steps, after its
validation: where checkpoints are made), saves its checkpoint there and stops with
RunInterrupted; the run writes no record and exits non-zero with one line, and the same
command again resumes from the checkpoint. Anything else (loading data, a classical fit)
stops at once. The handler that was there before is given the signal afterwards: under
submitit that requeues the job (SIGUSR2) or notes the signal (SIGTERM, after which SLURM
requeues a preempted job itself).

Light: the standard library only.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class RunInterrupted(BaseException):
    """A run stopped by a signal. A BaseException, like KeyboardInterrupt: nothing on its way
    out (Lightning, Hydra's job runner, submitit's result pickling) may record it as the run's
    failure, since the run is not over."""

    def __init__(self, signum: int, checkpoint: Path | None = None, step: int | None = None):
        super().__init__(signum, checkpoint, step)
        self.signum, self.checkpoint, self.step = signum, checkpoint, step

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class StopSignals:
    """While entered (in the main thread): the stop signals are caught. The first one is
    noted (`pending`); if no fit polls for it (`polling` is 0), RunInterrupted is raised at
    once. A second Ctrl-C while waiting for the safe point stops at once too."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.polling = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        global _current
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self.handle)
        _current = self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _current
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        _current = None

    def handle(self, signum: int, frame: Any) -> None:
        again = self.pending is not None
        self.pending = self.pending or signum
        if not self.polling or (again and signum == signal.SIGINT):
            raise RunInterrupted(self.pending)

    def catch(self, signum: int) -> None:
        """Take `signum` back from whoever replaced this handler (Lightning's fit installs
        its own SIGTERM handler, which would stop the fit before its checkpoint is made)."""
        if signum in self.previous and threading.current_thread() is threading.main_thread():
            signal.signal(signum, self.handle)


def hand_on(signum: int) -> None:
    """Give `signum` to the handler in place now (the one a StopSignals restored on exit) if
    it is a program's own function: submitit's requeues the job and exits. Python's Ctrl-C
    default (a KeyboardInterrupt traceback) and the system's defaults are skipped: the run
    has already said why it stopped."""
    handler = signal.getsignal(signum)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signum, None)


_current: StopSignals | None = None


def current() -> StopSignals | None:
    """The StopSignals of the run going on in this process, if any."""
    return _current
