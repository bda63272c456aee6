"""`labelbench status`: where a sweep stands, read from its results folder alone.

Counts of ok and failed records (the record cache keeps this quick over 100k runs); runs
running now (a fresh heartbeat in `running/`, or, for runs that keep none, a checkpoint
folder written in the last minutes); heartbeats that stopped (a run killed or lost); the
jobs of the Hydra sweep not started yet; the latest failures with their one-line errors;
and an ETA from the durations of the sweep's jobs that ended ok. Imports neither torch nor
Lightning, and Hydra only to count a sweep's jobs.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import sys
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from labelbench.results.table import CHOICES, load_rows

# Left in a run's checkpoint folder by a run stopped by a signal (labelbench.run.interrupted)
STOPPED_NOTE = "stopped.json"
MARKERS = ("runs", "running", "checkpoints", "hydra")  # what makes a folder a results folder
DEFAULT_EVERY_S = 30.0  # a heartbeat's refresh interval when its file names none
MISSED_BEATS = 3  # a heartbeat this many intervals old is stale: its run is killed or lost
# Runs from before heartbeats: a checkpoint folder written this recently is a run running.
CHECKPOINT_FRESH_S = 600.0
# Job folders and records this much older than the sweep's multirun.yaml still count as
# the sweep's: the submitting host's and the compute nodes' clocks differ by seconds.
CLOCK_SLACK_S = 30.0
ERROR_WIDTH = 160  # a failure's error is cut to this many characters
# the outcome file a job leaves as it ends (labelbench.sweep.OUTCOME_FILE; not imported
# from there: that module imports Hydra)
OUTCOME_FILE = "labelbench-outcome.json"
SHOW = 10  # running runs and stale heartbeats listed in the text; JSON lists them all


class StatusError(Exception):
    """Bad input (not a results folder, not a sweep folder): one line, exit code 2."""


@dataclass
class Live:
    """A run seen running (or a heartbeat that stopped): what its heartbeat says of it."""

    run_key: str
    source: str  # 'heartbeat' or 'checkpoint' (runs from before heartbeats)
    last_seen: float  # unix time of its last beat (or the file's mtime, if newer)
    choices: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    host: str | None = None
    pid: int | None = None
    slurm_job_id: str | None = None
    started: str | None = None


@dataclass
class Sweep:
    """A Hydra sweep folder: its jobs (None: unknown) and those that have started."""

    dir: str
    jobs: int | None
    started: int
    since: float | None  # mtime of multirun.yaml: when the sweep (last) began
    note: str | None = None  # why the job count is unknown
    durations: list[float] = field(default_factory=list)  # of its jobs that ended ok

    @property
    def not_started(self) -> int | None:
        return None if self.jobs is None else max(self.jobs - self.started, 0)


@dataclass
class Status:
    """Everything `labelbench status` shows, at one moment."""

    results_dir: str
    now: float
    ok: int
    failed: int
    unreadable: list[tuple[str, str]]
    unreadable_note: str | None
    running: list[Live]
    stale: list[Live]
    sweep: Sweep | None
    sweep_dir: str  # the folder looked at (may not exist)
    failures: list[dict[str, Any]]
    mean_run_s: float | None  # mean total_s of the ok runs the ETA reads
    eta_runs: int  # how many
    eta_basis: str  # 'this sweep' (its finished ok jobs) or 'all ok runs' (their records)
    eta_s: float | None

    @property
    def remaining(self) -> int:
        """Runs left: the sweep's not started (when known) plus those running."""
        not_started = self.sweep.not_started if self.sweep is not None else None
        return (not_started or 0) + len(self.running)

    def to_json(self) -> dict[str, Any]:
        sweep = None
        if self.sweep is not None:
            sweep = {**asdict(self.sweep), "not_started": self.sweep.not_started}
            sweep["finished_ok"] = len(sweep.pop("durations"))
            sweep["since"] = _iso(self.sweep.since) if self.sweep.since else None
        return {
            "results_dir": self.results_dir,
            "now": _iso(self.now),
            "ok": self.ok,
            "failed": self.failed,
            "running": len(self.running),
            "not_started": self.sweep.not_started if self.sweep else None,
            "stale": len(self.stale),
            "unreadable": len(self.unreadable),
            "unreadable_files": [{"path": p, "reason": why} for p, why in self.unreadable],
            "running_runs": [_live_json(r) for r in self.running],
            "stale_runs": [_live_json(r) for r in self.stale],
            "sweep": sweep,
            "sweep_dir": self.sweep_dir,
            "failures": self.failures,
            "eta_s": self.eta_s,
            "eta": {
                "mean_run_s": self.mean_run_s,
                "runs": self.eta_runs,
                "basis": self.eta_basis,
                "remaining": self.remaining,
            },
        }


def _live_json(live: Live) -> dict[str, Any]:
    return {**asdict(live), "last_seen": _iso(live.last_seen)}


def check_results(results_dir: str | os.PathLike) -> Path:
    """`results_dir` as a path, if it is a results folder; else StatusError naming it."""
    path = Path(results_dir)
    if not path.is_dir():
        raise StatusError(f"{path}: no such folder (give the results folder of a sweep)")
    if not any((path / m).is_dir() for m in MARKERS):
        raise StatusError(
            f"{path} is not a results folder (no runs/, running/, checkpoints/ or hydra/ in it)"
        )
    return path


def check_sweep(sweep_dir: str | os.PathLike) -> Path:
    """A sweep folder the user named: it must hold the multirun.yaml Hydra leaves there."""
    path = Path(sweep_dir)
    if not path.is_dir():
        raise StatusError(f"--sweep {path}: no such folder")
    if not (path / "multirun.yaml").is_file():
        raise StatusError(f"--sweep {path}: no multirun.yaml in it (not a Hydra sweep folder)")
    return path


def gather(
    results_dir: str | os.PathLike,
    sweep_dir: str | os.PathLike | None = None,
    failures: int = 5,
    use_cache: bool = True,
    now: float | None = None,
) -> Status:
    """The status of the results folder (checked first) and of its Hydra sweep folder
    (`sweep_dir`, checked when given; default `<results_dir>/hydra/sweep`, if there)."""
    results = check_results(results_dir)
    sweep_path = check_sweep(sweep_dir) if sweep_dir is not None else results / "hydra" / "sweep"
    now = time.time() if now is None else now

    loaded = load_rows(results, use_cache=use_cache)
    records: dict[str, dict[str, Any]] = {}
    ok: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for row in loaded.rows:
        records[row["run_key"]] = row
        (ok if row["status"] == "ok" else failed).append(row)

    running, stale, beating = _heartbeats(results / "running", records, now)
    running += _checkpoint_runs(results / "checkpoints", records, beating, now)
    sweep = read_sweep(sweep_path) if sweep_path.is_dir() else None

    # The ETA reads this sweep's finished jobs (their wall time, from the job folders);
    # until one has finished, every ok record's (device-)seconds: rows carry them, and
    # reading 100k records' timings, or even their mtimes, would cost seconds.
    durations = sweep.durations if sweep is not None else []
    basis = "this sweep"
    if not durations:
        basis = "all ok runs"
        durations = [s for r in ok if (s := _device_s(r)) is not None]
    # the newest failures: only the failed records' mtimes are read
    dated = [(_mtime(r["path"]), r) for r in failed] if failures else []
    status = Status(
        results_dir=str(results.absolute()),
        now=now,
        ok=len(ok),
        failed=len(failed),
        unreadable=loaded.problems,
        unreadable_note=loaded.problem_summary(),
        running=sorted(running, key=lambda r: -r.last_seen),
        stale=sorted(stale, key=lambda r: -r.last_seen),
        sweep=sweep,
        sweep_dir=str(sweep_path.absolute()),
        failures=[_failure(row, m) for m, row in heapq.nlargest(failures, dated, key=_first)],
        mean_run_s=sum(durations) / len(durations) if durations else None,
        eta_runs=len(durations),
        eta_basis=basis,
        eta_s=None,
    )
    if status.mean_run_s is not None:
        status.eta_s = status.mean_run_s * status.remaining / max(len(status.running), 1)
    return status


def _first(item: tuple[float, Any]) -> float:
    return item[0]


def _mtime(path: str | os.PathLike) -> float:
    """A file's mtime; 0 (long ago) if it is gone."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _device_s(row: dict[str, Any]) -> float | None:
    """A row's seconds on its devices (timings.total_s x the device count: total_s itself
    for the usual run on one device)."""
    cpu, gpu = row.get("cpu_s"), row.get("gpu_s")
    return None if cpu is None and gpu is None else (cpu or 0.0) + (gpu or 0.0)


def _time(value: Any) -> float | None:
    """Unix time of an ISO timestamp ('...Z' or with an offset; naive read as UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _heartbeats(
    folder: Path, records: dict[str, dict[str, Any]], now: float
) -> tuple[list[Live], list[Live], set[str]]:
    """(running, stale, every run key with a heartbeat file). A heartbeat is fresh when its
    last beat, or the file's mtime, is within MISSED_BEATS intervals of now. One whose run
    has a record written after the heartbeat's start is neither: the run finished between
    the two reads (a record from before it is an earlier attempt's: a failed run rerun)."""
    running: list[Live] = []
    stale: list[Live] = []
    keys: set[str] = set()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return running, stale, keys
    for entry in entries:
        # atomic_write's temp files are '.<name>.<random>.tmp'
        if not entry.name.endswith(".json") or entry.name.startswith("."):
            continue
        try:
            mtime = entry.stat().st_mtime
            data = orjson.loads(Path(entry.path).read_bytes())
        except FileNotFoundError:  # the run ended since the listing
            continue
        except (OSError, orjson.JSONDecodeError):
            data = {}  # unreadable: its name and mtime still say which run and when
        data = data if isinstance(data, dict) else {}
        key = data.get("run_key") if isinstance(data.get("run_key"), str) else entry.name[:-5]
        keys.add(key)
        started = _time(data.get("started"))
        if key in records and _mtime(records[key]["path"]) >= (started or 0.0):
            continue
        every = data.get("every_s")
        every = float(every) if _number(every) and every > 0 else DEFAULT_EVERY_S
        last = max(mtime, _time(data.get("beat")) or 0.0)
        live = Live(
            run_key=key,
            source="heartbeat",
            last_seen=last,
            choices={k: str(v) for k, v in (data.get("choices") or {}).items()}
            if isinstance(data.get("choices"), dict)
            else {},
            seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
            host=str(data["host"]) if data.get("host") is not None else None,
            pid=data.get("pid") if isinstance(data.get("pid"), int) else None,
            slurm_job_id=str(data["slurm_job_id"]) if data.get("slurm_job_id") else None,
            started=data.get("started") if isinstance(data.get("started"), str) else None,
        )
        (running if now - last <= MISSED_BEATS * every else stale).append(live)
    return running, stale, keys


def _newest_mtime(folder: str) -> float:
    """The newest mtime of a folder and what it holds, two levels down: checkpoints are
    rewritten in place, which moves the file's mtime, not its folder's."""
    newest = 0.0
    stack = [(folder, 0)]
    while stack:
        path, depth = stack.pop()
        try:
            newest = max(newest, os.stat(path).st_mtime)
            if depth < 2 and os.path.isdir(path):
                stack += [(e.path, depth + 1) for e in os.scandir(path)]
        except OSError:
            continue
    return newest


def _checkpoint_runs(
    folder: Path, records: dict[str, dict[str, Any]], beating: set[str], now: float
) -> list[Live]:
    """Runs from before heartbeats: a checkpoint folder written in the last
    CHECKPOINT_FRESH_S, of a run with no heartbeat and no record newer than it (a failed
    run keeps its checkpoints to resume from; an ok run is never run again)."""
    found: list[Live] = []
    try:
        entries = [e for e in os.scandir(folder) if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        key = entry.name
        row = records.get(key)
        if key in beating or (row is not None and row["status"] == "ok"):
            continue
        newest = _newest_mtime(entry.path)
        if now - newest > CHECKPOINT_FRESH_S or (row is not None and _mtime(row["path"]) >= newest):
            continue
        if _mtime(os.path.join(entry.path, STOPPED_NOTE)) >= newest:
            continue  # stopped by a signal after its last checkpoint: resumable, not running
        found.append(
            Live(
                run_key=key,
                source="checkpoint",
                last_seen=newest,
                choices={k: row[k] for k in CHOICES} if row else {},
                seed=row["seed"] if row else None,
            )
        )
    return found


def read_sweep(sweep_dir: Path) -> Sweep:
    """The sweep's job count from its multirun.yaml (labelbench.sweep.count_jobs; None for
    a sweeper that decides its jobs as it goes) and the job folders started since it was
    written: those whose `.hydra/` Hydra wrote then. Folders of an earlier launch of the
    same sweep (rerun to resume) are older and do not count."""
    multirun = sweep_dir / "multirun.yaml"
    try:
        since: float | None = multirun.stat().st_mtime
    except OSError:
        since = None
    jobs, note = None, "no multirun.yaml in the sweep folder"
    if since is not None:
        try:
            from omegaconf import OmegaConf

            from labelbench.sweep import count_jobs

            jobs = count_jobs(OmegaConf.load(multirun))
            note = None if jobs is not None else "its sweeper decides the jobs as it goes"
        except Exception as e:  # a damaged file: say so, count what can be counted
            note = f"multirun.yaml unreadable ({type(e).__name__})"
    floor = since - CLOCK_SLACK_S if since is not None else -math.inf
    jobs_seen = [(start, job) for start, job in _job_folders(sweep_dir) if start >= floor]
    return Sweep(
        dir=str(sweep_dir.absolute()),
        jobs=jobs,
        started=len(jobs_seen),
        since=since,
        note=note,
        durations=[d for start, job in jobs_seen if (d := _ok_duration(job, start)) is not None],
    )


def _job_folders(sweep_dir: Path) -> list[tuple[float, str]]:
    """(start, folder) of each job folder (one holding `.hydra/`) under `sweep_dir`; the
    start is the mtime of its .hydra/overrides.yaml, which Hydra writes as a job starts."""
    found = []
    for root, dirs, _ in os.walk(sweep_dir):
        if ".hydra" in dirs:
            hydra = os.path.join(root, ".hydra")
            for path in (os.path.join(hydra, "overrides.yaml"), hydra):
                with suppress(OSError):
                    found.append((os.stat(path).st_mtime, root))
                    break
            dirs[:] = []  # a job's folder holds no other job
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return found


def _ok_duration(job: str, start: float) -> float | None:
    """Seconds from a job's start to the outcome file it left when it ended ok; None for a
    job still running, one that failed or was skipped, or an earlier launch's outcome."""
    try:
        outcome = orjson.loads(Path(job, OUTCOME_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(outcome, dict) or outcome.get("outcome") != "ok":
        return None
    finished = outcome.get("finished")
    if not _number(finished) or finished < start:
        return None
    return finished - start


def one_line(error: str | None, width: int = ERROR_WIDTH) -> str:
    """'Type: message', its first line, cut to `width` characters."""
    text = (error or "").strip().split("\n", 1)[0].rstrip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _failure(row: dict[str, Any], mtime: float) -> dict[str, Any]:
    return {
        "run_key": row["run_key"],
        "when": _iso(mtime) if mtime else None,
        "dataset": row["dataset"],
        "regime": row["regime_label"],
        "budget": row["budget_label"],
        "strategy": row["strategy"],
        "model": row["model"],
        "seed": row["seed"],
        "error": one_line(row["error"]),
        "path": row["path"],
    }


def duration(seconds: float) -> str:
    """'42s', '3m05s', '2h07m', '3d04h'."""
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _names(choices: dict[str, Any], seed: int | None) -> str:
    names = "/".join(str(choices[k]) for k in CHOICES if k in choices) or "?"
    return names + (f" seed {seed}" if seed is not None else "")


def _live_line(live: Live, now: float, stale: bool) -> str:
    where = [f"host {live.host}" if live.host else None,
             f"pid {live.pid}" if live.pid is not None else None,
             f"slurm {live.slurm_job_id}" if live.slurm_job_id else None]  # fmt: skip
    seen = (
        f"last beat {_iso(live.last_seen)} ({duration(now - live.last_seen)} ago)"
        if stale
        else f"{'beat' if live.source == 'heartbeat' else 'checkpoint written'}"
        f" {duration(now - live.last_seen)} ago"
    )
    return "  ".join(
        ["  " + live.run_key, _names(live.choices, live.seed), *filter(None, where), seen]
    )


def _listed(lines: list[str], total: int) -> list[str]:
    return lines[:SHOW] + ([f"  ... and {total - SHOW} more"] if total > SHOW else [])


def render_text(status: Status) -> str:
    """The plain-text block: counts, stale heartbeats, running runs, ETA, latest failures."""
    now = status.now
    beats = sum(r.source == "heartbeat" for r in status.running)
    how = []
    if beats:
        how.append(f"{beats} with a heartbeat")
    if len(status.running) - beats:
        how.append(f"{len(status.running) - beats} by a checkpoint written in the last"
                   f" {duration(CHECKPOINT_FRESH_S)}")  # fmt: skip
    lines = [
        f"results: {status.results_dir}  ({_iso(now)})",
        f"  ok           {status.ok:>7}",
        f"  failed       {status.failed:>7}",
        f"  running      {len(status.running):>7}" + (f"  ({', '.join(how)})" if how else ""),
    ]
    sweep = status.sweep
    if sweep is None:
        lines.append(f"  not started        -  no Hydra sweep folder at {status.sweep_dir}")
    elif sweep.jobs is None:
        lines.append(
            f"  not started        ?  jobs unknown ({sweep.note}); {sweep.started} started"
            f" in {sweep.dir}"
        )
    else:
        lines.append(
            f"  not started  {sweep.not_started:>7}  of {sweep.jobs} jobs in {sweep.dir}"
            f" ({sweep.started} started)"
        )
    if status.unreadable:
        lines.append(f"  unreadable   {len(status.unreadable):>7}  {status.unreadable_note}")
    if status.stale:
        lines.append(f"  stale        {len(status.stale):>7}  heartbeat stopped (killed or lost?):")
        lines += _listed([_live_line(r, now, True) for r in status.stale], len(status.stale))
    if status.running:
        lines.append("running:")
        lines += _listed([_live_line(r, now, False) for r in status.running], len(status.running))
    lines.append("ETA: " + _eta_text(status))
    if status.failures:
        lines.append(f"latest failures ({len(status.failures)} of {status.failed}):")
        for f in status.failures:
            when = f["when"][:16].replace("T", " ") if f["when"] else "?"
            names = _names({k: f[k] for k in CHOICES}, f["seed"])
            lines.append(f"  {when}  {names}  {f['error']}")
    return "\n".join(lines) + "\n"


def _eta_text(status: Status) -> str:
    if status.mean_run_s is None:
        return "no estimate (no run has finished ok)"
    if status.sweep is None or status.sweep.not_started is None:
        if not status.running:
            return "nothing running (and no sweep whose runs not started could be counted)"
    elif status.remaining == 0:
        return "nothing left to run"
    of = (
        f"{status.eta_runs} ok runs of this sweep"
        if status.eta_basis == "this sweep"
        else f"all {status.eta_runs} ok runs in the store"
    )
    return (
        f"~{duration(status.eta_s or 0.0)}  (mean run {duration(status.mean_run_s)} over {of};"
        f" {status.remaining} runs left, {len(status.running)} running)"
    )


def render_json(status: Status, indent: int | None = 1) -> str:
    """The status as JSON (`indent=None`: one line, as --watch writes one per refresh)."""
    return json.dumps(status.to_json(), indent=indent) + "\n"


def watch(
    show, every_s: float, max_refreshes: int | None = None, out=None, clear: bool | None = None
) -> None:
    """Call `show()` (the text to draw) every `every_s` seconds, clearing the terminal
    between frames (a pipe gets the frames one after another), until Ctrl-C or
    `max_refreshes` frames."""
    out = out or sys.stdout
    clear = out.isatty() if clear is None else clear
    refreshes = 0
    try:
        while True:
            text = show()
            out.write(("\x1b[H\x1b[2J" if clear else "") + text)
            if clear:
                out.write(f"\nevery {every_s:g} s; Ctrl-C to stop\n")
            out.flush()
            refreshes += 1
            if max_refreshes is not None and refreshes >= max_refreshes:
                return
            time.sleep(every_s)
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
