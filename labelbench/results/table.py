"""The record store as rows: one compact dict per readable record, with a cache.

Parsing every record on every call does not scale to 100k runs, so the fields that
aggregation needs are cached in `<results_dir>/.cache/records.msgpack`, keyed by each file's
name, mtime and size; only new or changed files are parsed again. Unreadable files (corrupt,
truncated, another schema version) are never averaged in: they are returned as problems,
with the reason, so callers can report them.
"""

from __future__ import annotations

import gc
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import orjson

from labelbench.results.atomic import atomic_write
from labelbench.results.record import SCHEMA_VERSION, STATUSES, RecordError, RunRecord

CACHE_VERSION = 9
CHOICES = ("dataset", "regime", "budget", "strategy", "model")
# trainer.accelerator values that run on a GPU (the compute view counts their GPU hours)
GPU_ACCELERATORS = ("gpu", "cuda", "mps")
# labels.realised entries that are sizes, not what the labels realised: left out of rows
REALISED_SKIP = (
    "pool_size",
    "test_size",
    "unlabeled_only",
    "annotations",
    "items",
    "val_items",
    "lfs",
)
# Parse in worker processes when at least this many files are new or changed (a cold cache
# over a large store); below it, process start-up costs more than it saves.
PARALLEL_MIN_FILES = 4000
# Row keys only the rows of tuning runs carry (config.tune.study set): read them with
# row.get(...), None elsewhere. Left out of ordinary rows, which then keep 21 keys or fewer.
TUNE_KEYS = ("study", "trial", "tuned_trials", "fit_s")
T = TypeVar("T")


def row_from_record(record: RunRecord | _RowFields, path: str) -> dict[str, Any]:
    """The compact row aggregation works on (no config, no indices), from a whole record or
    from the fields the fast decode reads. Beside the fields and metrics it keeps what the
    dashboard shows: `cpu_s` and `gpu_s` (device-seconds: timings.total_s times the device
    count, on the GPU or the CPU) and `realised`, the realised label statistics. The row of
    a tuning run (config.tune.study set) also has TUNE_KEYS: `study`, `trial` (a trial's
    number; None for a tuned run), `tuned_trials` (a tuned run's config.tune.trials) and
    `fit_s` (timings.fit_s, or None); other rows lack them, so row.get(key) reads None."""
    labels = record.labels
    row = {
        "path": path,
        "run_key": record.run_key,
        "status": record.status,
        **{k: str(record.choices.get(k, "?")) for k in CHOICES},
        "budget_label": str(labels.get("budget", record.choices.get("budget", "?"))),
        # the regime with its setting ('symmetric(0.4)'); records before it: the YAML stem
        "regime_label": str(labels.get("regime", record.choices.get("regime", "?"))),
        "budget_size": int(labels.get("budget_size", labels.get("count", 0))),
        "labels": int(labels.get("count", 0)),
        "cost": labels.get("cost"),
        "seed": int(record.seed),
        "metrics": record.metrics,
        "directions": record.directions,
        "curve": record.curve,
        "error": f"{record.error['type']}: {record.error['message']}" if record.error else None,
        # device-seconds on the CPU and on GPUs (flat: 21 keys or fewer keep a row's dict
        # small, and a warm cache decodes no nested dict for them)
        **_compute(_seconds(record.timings, "total_s"), record.config),
        "realised": _realised(labels),
    }
    if (tune := _tune(record.config)) is not None:
        row.update(tune, fit_s=_seconds(record.timings, "fit_s"))
    return row


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _field(obj: Any, key: str, default: Any = None) -> Any:
    """obj[key] of a record's dict, or obj.key of the fast decode's struct."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default) if isinstance(obj, msgspec.Struct) else default


def _seconds(timings: Any, key: str) -> float | None:
    value = _field(timings, key)
    return float(value) if _number(value) else None


def _compute(total_s: float | None, config: Any) -> dict[str, float | None]:
    """{'cpu_s': ..., 'gpu_s': ...}: the run's total_s times its device count, on the GPU
    where its trainer ran on one, else on the CPU (the other 0); both None without total_s."""
    if total_s is None:
        return {"cpu_s": None, "gpu_s": None}
    devices, gpu = _devices(config)
    return {"cpu_s": 0.0 if gpu else total_s * devices, "gpu_s": total_s * devices if gpu else 0.0}


def _devices(config: Any) -> tuple[int, bool]:
    """(device count, on a GPU) from the resolved config's trainer.devices and
    trainer.accelerator; 'auto' or -1 (unknown counts) read as one device, on the CPU
    unless the accelerator names a GPU."""
    trainer = _field(config, "trainer")
    if not isinstance(trainer, dict | msgspec.Struct):
        return 1, False
    wanted = _field(trainer, "devices", 1)
    if isinstance(wanted, list | tuple):
        n = len(wanted)
    elif isinstance(wanted, str):
        parts = [p for p in wanted.split(",") if p.strip()]
        n = int(parts[0]) if len(parts) == 1 and parts[0].strip().isdigit() else len(parts)
    else:
        n = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
    n = max(n, 1)
    return n, str(_field(trainer, "accelerator", "cpu")).lower() in GPU_ACCELERATORS


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tune(config: Any) -> dict[str, Any] | None:
    """{'study', 'trial', 'tuned_trials'} of a tuning run's config.tune; None for an ordinary
    run (no tune node, or no study in it: older records, plain sweeps)."""
    tune = _field(config, "tune")
    study = _field(tune, "study") if isinstance(tune, dict | msgspec.Struct) else None
    if not isinstance(study, str) or not study:
        return None
    return {
        "study": study,
        "trial": _count(_field(tune, "trial")),
        "tuned_trials": _count(_field(tune, "trials")),
    }


def _realised(labels: Any) -> dict[str, float]:
    """What the labels realised, as numbers: labels.noise_rate and the scalar entries of
    labels.realised (one level of nesting as 'lf_analysis.coverage'); lists and sizes left out."""
    out: dict[str, float] = {}
    if _number(rate := labels.get("noise_rate")):
        out["noise_rate"] = rate
    realised = labels.get("realised")
    if not isinstance(realised, dict):
        return out
    for key, value in realised.items():
        if isinstance(value, dict):
            out.update(
                {f"{key}.{k}": v for k, v in value.items() if k not in REALISED_SKIP and _number(v)}
            )
        elif key not in REALISED_SKIP and _number(value):
            out[key] = value
    return out


@dataclass
class RecordRows:
    """Readable records as rows, plus the files that could not be used and why."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def schema_versions(self) -> Counter[str]:
        return Counter(
            reason.split(";")[0]
            for _, reason in self.problems
            if reason.startswith("schema_version=")
        )

    def problem_summary(self, show: int = 3) -> str | None:
        """'skipped N unreadable record(s): first paths ...', or None if all were readable."""
        if not self.problems:
            return None
        first = "; ".join(f"{p} ({why})" for p, why in self.problems[:show])
        more = f" and {len(self.problems) - show} more" if len(self.problems) > show else ""
        return f"skipped {len(self.problems)} unreadable record(s): {first}{more}"


class _Labels(msgspec.Struct):
    """The label accounting fields a row reads; the rest (the indices above all) is
    skipped unparsed. UNSET: absent from the record; `get` reads it as a dict would."""

    budget: Any = msgspec.UNSET
    regime: Any = msgspec.UNSET
    budget_size: int | msgspec.UnsetType = msgspec.UNSET
    count: int | msgspec.UnsetType = msgspec.UNSET
    cost: Any = msgspec.UNSET
    noise_rate: Any = msgspec.UNSET
    realised: Any = msgspec.UNSET

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, msgspec.UNSET)
        return default if value is msgspec.UNSET else value


class _Error(msgspec.Struct):
    type: str
    message: str

    def __getitem__(self, key: str) -> str:  # read as the record's error dict is
        return getattr(self, key)


class _Trainer(msgspec.Struct):
    accelerator: Any = "cpu"
    devices: Any = 1


class _Tune(msgspec.Struct):
    study: Any = None
    trial: Any = None
    trials: Any = None


class _Config(msgspec.Struct):
    """The part of the resolved config a row reads (the trainer's devices, the tuning
    node); the rest is scanned, not built."""

    trainer: _Trainer | None = None
    tune: _Tune | None = None


class _Timings(msgspec.Struct):
    total_s: Any = None
    fit_s: Any = None


class _RowFields(msgspec.Struct):
    """What a row needs of a record, decoded straight from the JSON bytes. The fields a
    row does not read (config, indices ...) are only scanned, never built into Python
    objects: about 6x faster than parsing the whole record. Raw fields are still
    required, as RunRecord requires them."""

    schema_version: int
    run_key: str
    status: str
    choices: dict[str, Any]
    seed: int
    labels: _Labels
    metrics: dict[str, float]
    directions: dict[str, str]
    curve: list[dict[str, Any]]
    split_seed: msgspec.Raw
    timings: _Timings
    versions: msgspec.Raw
    git: msgspec.Raw
    host: msgspec.Raw
    config: _Config
    error: _Error | None = None


_decode_row = msgspec.json.Decoder(_RowFields).decode


def _row(r: _RowFields, path: str) -> dict[str, Any] | None:
    """The row of a decoded record, or None if RunRecord would refuse it: the full parse
    then says why."""
    ok_status = r.status in STATUSES and (r.status == "failed") == (r.error is not None)
    if (
        r.schema_version != SCHEMA_VERSION
        or not ok_status
        or not all(math.isfinite(v) for v in r.metrics.values())
    ):
        return None
    return row_from_record(r, path)


def _parse(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) for a usable record, else (None, why not). The fast typed decode
    serves every valid record; anything it refuses is parsed in full, which names the
    problem exactly."""
    try:
        raw = _read(path)
    except OSError as e:
        return None, f"not JSON ({type(e).__name__})"
    with suppress(msgspec.DecodeError):
        row = _row(_decode_row(raw), path)
        if row is not None:
            return row, None
    return _parse_fully(raw, path)


def _read(path: str) -> bytes:
    """The whole file. os.open/os.read rather than open(): no buffered file object per
    record, half the time over 100k small files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = [os.read(fd, 1 << 16)]
        while len(parts[-1]) == 1 << 16:  # records are a few KB; read on to the end
            parts.append(os.read(fd, 1 << 16))
        return b"".join(parts)
    finally:
        os.close(fd)


def _parse_fully(raw: bytes, path: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"not JSON ({type(e).__name__})"
    if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
        return (
            None,
            f"schema_version={data.get('schema_version')!r}; this labelbench reads {SCHEMA_VERSION}",
        )
    try:
        return row_from_record(RunRecord.from_dict(data), path), None
    except (RecordError, TypeError, ValueError, KeyError, AttributeError) as e:
        return None, str(e) or type(e).__name__


def _parse_many(paths: list[str]) -> list[tuple[dict[str, Any] | None, str | None]]:
    with _no_gc():
        return [_parse(p) for p in paths]


def _parse_all(paths: list[str]) -> list[tuple[dict[str, Any] | None, str | None]]:
    return _map_files(_parse_many, paths)


def _map_files(many: Callable[[list[str]], list[T]], paths: list[str]) -> list[T]:
    """`many(paths)`, in worker processes when there are enough files to repay starting them."""
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_MIN_FILES or workers < 2:
        return many(paths)
    chunk = -(-len(paths) // (workers * 4))
    pieces = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [item for part in pool.map(many, pieces) for item in part]


class _ConfigOnly(msgspec.Struct):
    """Just the resolved config of a record; every other field is scanned, not built."""

    config: dict[str, Any]


_decode_config = msgspec.json.Decoder(_ConfigOnly).decode


def _config(path: str) -> dict[str, Any] | None:
    try:
        return _decode_config(_read(path)).config
    except (OSError, msgspec.DecodeError):
        return None


def _configs_many(paths: list[str]) -> list[dict[str, Any] | None]:
    with _no_gc():
        return [_config(p) for p in paths]


def load_configs(paths: list[str]) -> list[dict[str, Any] | None]:
    """The resolved `config` of each record file, in order; None where a file cannot be read
    (or has no config). Only asked for when a leaderboard needs config keys: rows never carry
    configs. Large batches are read in worker processes, as `load_rows` parses."""
    return _map_files(_configs_many, paths)


def _read_cache(path: str) -> dict[str, list]:
    try:
        with open(path, "rb") as f:
            data = msgspec.msgpack.decode(f.read())
        if data.get("version") != CACHE_VERSION or data.get("schema") != SCHEMA_VERSION:
            return {}
        return {
            name: [mtime, size, row, problem] for name, mtime, size, row, problem in data["entries"]
        }
    except (
        OSError,
        msgspec.DecodeError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
    ):
        return {}  # no cache, or one from another version: parse the records instead


def _write_cache(path: str, entries: dict[str, list]) -> None:
    """Best effort: a read-only results folder just means no cache."""
    with suppress(OSError):
        # Rows as they are, in MessagePack: 100k of them encode in 0.2 s and decode in 0.4 s
        # (JSON: 0.2 s and 0.7 s; a packed JSON layout: 0.7 s of Python to pack).
        data = {"version": CACHE_VERSION, "schema": SCHEMA_VERSION,
                "entries": [[name, *entry] for name, entry in entries.items()]}  # fmt: skip
        atomic_write(path, msgspec.msgpack.encode(data))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Bulk-building 100k small dicts (which hold no cycles) triggers the cyclic collector
    hundreds of times for nothing; pause it meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_rows(results_dir: str | os.PathLike, use_cache: bool = True) -> RecordRows:
    """All records under `<results_dir>/runs/` as rows, in file-name order."""
    with _no_gc():
        return _load_rows(results_dir, use_cache)


def _load_rows(results_dir: str | os.PathLike, use_cache: bool) -> RecordRows:
    runs = os.path.join(results_dir, "runs")
    cache_path = os.path.join(results_dir, ".cache", "records.msgpack")
    try:
        with os.scandir(runs) as it:
            found = {e.name: e.stat() for e in it if e.name.endswith(".json") and e.is_file()}
    except FileNotFoundError:
        return RecordRows()
    cached = _read_cache(cache_path) if use_cache else {}
    entries: dict[str, list] = {}
    stale: list[str] = []
    for name in sorted(found):
        st = found[name]
        stamp = [st.st_mtime_ns, st.st_size]
        hit = cached.get(name)
        entries[name] = hit if hit is not None and hit[:2] == stamp else stamp
        if len(entries[name]) == 2:
            stale.append(name)
    for name, (row, problem) in zip(
        stale, _parse_all([os.path.join(runs, n) for n in stale]), strict=True
    ):
        entries[name] = [*entries[name], row, problem]

    out = RecordRows()
    for name, (_, _, row, problem) in entries.items():
        path = os.path.join(runs, name)
        if row is not None:
            row["path"] = path  # the folder may have moved since it was cached
            out.rows.append(row)
        else:
            out.problems.append((path, problem))
    if use_cache and (stale or len(cached) != len(entries)):
        _write_cache(cache_path, entries)
    return out
