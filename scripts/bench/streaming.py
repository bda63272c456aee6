"""Data beyond memory (issue 20): peak memory of runs that stream a folder of images from
disk, and the streaming path's training speed against a plain PyTorch loop.

On a generated folder of 96x96 RGB JPEG images in 10 class folders (made once under
--data; 100,000 images: 2.8 GB decoded as uint8, 11 GB as float32):

- memory: `labelbench-run dataset=folder loader.path=stream` for real, in a subprocess,
  for a supervised run (every pool item labelled) and a FixMatch run. Every 0.2 s the
  process tree (the run and its DataLoader workers) is sampled: the sum of resident sets
  (RSS, which counts the pages forked workers share with the run once per process) and the
  sum of proportional sets (PSS, /proc/<pid>/smaps_rollup, which splits shared pages among
  the processes sharing them). Peaks are given per phase (loading, training, validation,
  test prediction): the child records when each starts and ends, nothing else changes.
  Target: the whole tree under 2 GB.
- speed: in this process, images/s of the streaming path (LightningStrategy.fit of
  strategy=supervised with loader.path=stream) against a plain loop (the same model,
  optimizer, batch, workers, prefetch and decoding: a torch Dataset over the same
  FolderReader, a shuffling DataLoader, uint8 / 255 in the training process), both timed
  from the end of the warm-up steps to the end of the last step (timestamps after every
  optimizer step), interleaved repeats, medians. Target: streaming >= 0.9x plain.

Writes results/compute/streaming.md (the table and the machine).

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench/streaming.py [--data DIR]
        [--images 100000] [--quick] [--sup-steps K] [--ssl-steps S] [--steps N]
        [--warmup W] [--repeats R] [--test-fraction F] [--skip memory,speed] [--raw FILE]

The committed table came from `--sup-steps 100 --ssl-steps 6 --steps 40 --warmup 8
--test-fraction 0.05` (a whole epoch and 200 FixMatch steps take hours on 2 cores; memory
levels off within the first steps). `--quick` (5,000 images, a few steps) is a smoke run.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import math
import multiprocessing
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchlib import ROOT, git_commit

DEFAULT_DATA = Path("~/.cache/labelbench/bench/folder100k").expanduser()
QUICK_DATA = Path("~/.cache/labelbench/bench/folder5k").expanduser()
OUT = ROOT / "results" / "compute" / "streaming.md"
MARKER = ".complete.json"  # written last: the folder is whole
CLASSES, SIDE, QUALITY = 10, 96, 90
MARKS_ENV = "LB_STREAMING_MARKS"  # the child's file of phase timestamps
TARGET_MB = 2048
TARGET_RATIO = 0.9
SAMPLE_S = 0.2
WORKERS, PREFETCH, BATCH = 2, 2, 128


# -- the folder -------------------------------------------------------------------------
def _base(k: int) -> np.ndarray:
    """Class k's pattern: its own colour and stripe direction (learnable, not trivial
    under the brightness jitter and noise added per image)."""
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    hue = 2 * np.pi * k / CLASSES
    colour = 127.5 + 60 * np.cos(hue + np.array([0.0, 2.1, 4.2]))
    stripes = np.sin(2 * np.pi * (rows * np.cos(hue) + cols * np.sin(hue)) / 12)
    return (colour + 40 * stripes[..., None]).astype(np.float32)


def _write_chunk(job: tuple[str, int, int, int]) -> int:
    """Write images start..start+count-1 of class k (a shifted, re-lit copy of the class
    pattern plus a window of a noise bank); returns bytes written."""
    from PIL import Image

    root, k, start, count = job
    rng = np.random.default_rng([k, start])
    base = _base(k)
    bank = rng.normal(0, 25, (4 * SIDE, 4 * SIDE, 3)).astype(np.float32)
    folder = Path(root) / f"class_{k}"
    written = 0
    for i in range(start, start + count):
        dy, dx, ny, nx = rng.integers(0, 3 * SIDE, 4)
        pixels = np.roll(base, (dy % SIDE, dx % SIDE), (0, 1)) * rng.uniform(0.6, 1.3)
        pixels += bank[ny : ny + SIDE, nx : nx + SIDE]
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            path, format="JPEG", quality=QUALITY
        )
        written += path.stat().st_size
    return written


def generate(root: Path, images: int, procs: int = 2) -> dict[str, Any]:
    """The folder of `images` JPEGs under `root`, made once (a marker file says it is
    whole); its size and how long making it took (then, or when it was made)."""
    marker = root / MARKER
    if marker.is_file():
        made = json.loads(marker.read_text())
        if made.get("images") == images:
            return {**made, "generated_now": False}
        raise SystemExit(
            f"streaming: {root} holds {made.get('images')} images, not {images}; give another"
            " --data or remove it"
        )
    per_class = [images // CLASSES + (k < images % CLASSES) for k in range(CLASSES)]
    jobs = []
    for k, n in enumerate(per_class):
        (root / f"class_{k}").mkdir(parents=True, exist_ok=True)
        jobs += [(str(root), k, s, min(1000, n - s)) for s in range(0, n, 1000)]
    print(f"streaming: writing {images} images to {root} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        nbytes = sum(pool.imap_unordered(_write_chunk, jobs))
    made = {
        "images": images,
        "seconds": time.perf_counter() - t,
        "bytes": nbytes,
        "processes": procs,
        "made": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    marker.write_text(json.dumps(made))
    return {**made, "generated_now": True}


def du_bytes(root: Path) -> int:
    """Bytes the folder takes on disk (allocated blocks, as du counts)."""
    return sum(
        os.stat(os.path.join(here, f)).st_blocks * 512
        for here, _, files in os.walk(root)
        for f in files
    )


def load_times(root: Path) -> dict[str, float]:
    """Seconds to list the folder and build its reader: check=none (listing only) and
    check=header (every file's header opened), each on a warm page cache (a second pass)."""
    from labelbench.data.folder import Folder

    out = {}
    for check in ("none", "header", "none", "header"):
        t = time.perf_counter()
        Folder(root=str(root), check=check).arrays()
        out[check] = time.perf_counter() - t  # the second pass is kept: warm cache
    return out


# -- sampling a process tree --------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc/*/stat (this kernel has no task/*/children)."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the process tree under `pid` every SAMPLE_S seconds until it is gone:
    (monotonic time, RSS sum MB, PSS sum MB, the root process's RSS MB, the PSS MB of the
    others (its DataLoader workers), processes)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float, float, float, float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            kids = _children_map()
            tree, todo = [], [self.pid]
            while todo:
                p = todo.pop()
                tree.append(p)
                todo += kids.get(p, [])
            rss = [_kb(f"/proc/{p}/status", "VmRSS:") for p in tree]
            pss = [_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in tree]
            if rss[0]:
                self.samples.append((time.monotonic(), sum(rss) / 1024, sum(pss) / 1024,
                                     rss[0] / 1024, sum(pss[1:]) / 1024, len(tree)))  # fmt: skip
            self.stop.wait(SAMPLE_S)


# -- the child: a real labelbench-run that notes its phases --------------------------------
def child(overrides: list[str]) -> None:
    """`labelbench-run <overrides>`, with the start and end of its fit, validations and
    test predictions written to $LB_STREAMING_MARKS (nothing else is changed)."""
    from labelbench.run import main
    from labelbench.strategies.lightning import LabelModule, LightningStrategy, NetPredictor

    marks = open(os.environ[MARKS_ENV], "a", buffering=1)  # noqa: SIM115 (lives as long as the run)

    def noted(owner: type, attr: str, phase: str) -> None:
        inner = getattr(owner, attr)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            marks.write(f"{time.monotonic()} {phase} start\n")
            try:
                return inner(*args, **kwargs)
            finally:
                marks.write(f"{time.monotonic()} {phase} end\n")

        setattr(owner, attr, wrapper)

    noted(LightningStrategy, "train", "train")
    noted(LabelModule, "validation_step", "validate")
    noted(NetPredictor, "predict_proba", "predict")
    sys.argv = ["labelbench-run", *overrides]
    main()


def phases(marks: Path) -> dict[str, list[tuple[float, float]]]:
    """phase -> [(start, end)] from the child's marks."""
    out: dict[str, list[tuple[float, float]]] = {}
    open_at: dict[str, float] = {}
    for line in marks.read_text().splitlines():
        t, phase, what = line.split()
        if what == "start":
            open_at[phase] = float(t)
        else:
            out.setdefault(phase, []).append((open_at.pop(phase), float(t)))
    return out


def phase_of(t: float, windows: dict[str, list[tuple[float, float]]]) -> str:
    def inside(name: str) -> bool:
        return any(a <= t <= b for a, b in windows.get(name, ()))

    for name in ("predict", "validate", "train"):
        if inside(name):
            return "train" if name == "train" else name
    first = min((a for a, _ in windows.get("train", ())), default=math.inf)
    return "load" if t < first else "after"


def memory_run(name: str, overrides: list[str], scratch: Path, threads: int) -> dict[str, Any]:
    """Run labelbench-run with `overrides` in a child process, sampling its tree; the peaks
    (overall and per phase), the record's figures and the wall time."""
    code_at = provenance()
    folder = "".join(c if c.isalnum() else "_" for c in name)  # Hydra parses the path
    results = scratch / folder
    marks = scratch / f"{folder}.marks"
    marks.write_text("")
    # hydra.run.dir: the default names it after every override, past 255 bytes here.
    args = [*overrides, "logger=none", f"hydra.run.dir={results}/hydra",
            f"paths.results_dir={results}"]  # fmt: skip
    env = {**os.environ, MARKS_ENV: str(marks), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    print("$ labelbench-run " + " ".join(args), file=sys.stderr, flush=True)
    log = scratch / f"{name}.log"
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        sampler.stop.set()
        sampler.join()
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    records = sorted((results / "runs").glob("*.json")) if (results / "runs").is_dir() else []
    if code != 0 or not records:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"streaming: the {name} run failed (exit {code}):\n{tail}")
    record = json.loads(records[-1].read_text())
    if record["status"] != "ok":
        raise SystemExit(f"streaming: the {name} run failed: {record['error']}")
    windows = phases(marks)
    per_phase: dict[str, dict[str, float]] = {}
    for t, rss, pss, root_rss, workers_pss, n in sampler.samples:
        p = per_phase.setdefault(
            phase_of(t, windows),
            {"rss": 0.0, "pss": 0.0, "root_rss": 0.0, "workers_pss": 0.0, "procs": 0},
        )
        p["rss"], p["pss"] = max(p["rss"], rss), max(p["pss"], pss)
        p["workers_pss"] = max(p["workers_pss"], workers_pss)
        p["root_rss"], p["procs"] = max(p["root_rss"], root_rss), max(p["procs"], n)
    span = {k: sum(b - a for a, b in v) for k, v in windows.items()}
    m = record["metrics"]
    return {
        "name": name,
        "command": "labelbench-run " + " ".join(shlex.quote(a) for a in args[:-2]),
        "wall_s": wall,
        "peak_rss_mb": max(s[1] for s in sampler.samples),
        "peak_pss_mb": max(s[2] for s in sampler.samples),
        "maxrss_largest_mb": usage.ru_maxrss / 1024,  # the kernel's: largest process of the tree
        "samples": len(sampler.samples),
        "phases": per_phase,
        "phase_s": span,
        "test_acc": m.get("test/acc"),
        "streamed": m.get("fit/streamed"),
        "steps": m.get("fit/steps"),
        "timings": record["timings"],
        "labels": record["labels"].get("count"),
        "code": code_at,
    }


# -- speed: the streaming path against a plain loop ----------------------------------------
class PlainItems:
    """A torch map-style Dataset: (uint8 image, label) of `rows` of a FolderReader."""

    def __init__(self, reader: Any, rows: np.ndarray, labels: np.ndarray) -> None:
        self.reader, self.rows, self.labels = reader, rows, labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        import torch

        image = torch.from_numpy(np.ascontiguousarray(self.reader.read(int(self.rows[i]))))
        return image, int(self.labels[i])


class SpeedCase:
    """strategy=supervised on the folder, streamed, built as labelbench-run builds it, for
    warmup + steps optimizer steps with no validation; `streaming()` and `plain()` each
    train once and return (seconds from the timer's start to the end of each step)."""

    def __init__(self, root: Path, steps: int, warmup: int, scratch: Path) -> None:
        from labelbench.run import compose, prepare, run_key

        total = warmup + steps
        overrides = [
            "dataset=folder", f"dataset.root={root}", "dataset.val_fraction=0",
            "regime=clean", "budget=full", "strategy=supervised", "strategy/augment=none",
            "model=cnn_small", f"strategy.batch_size={BATCH}", f"train.max_steps={total}",
            f"strategy.eval_every={total}", "strategy.patience=0", "strategy.selection=last",
            "loader.path=stream", f"loader.workers={WORKERS}", f"loader.prefetch={PREFETCH}",
            "logger=none", "checkpoint.every_steps=0", f"paths.results_dir={scratch}",
        ]  # fmt: skip
        self.overrides = overrides
        cfg, _ = compose(overrides)
        self.prepared = prepare(cfg, run_key(cfg))
        self.total = total
        task, pool = self.prepared.task, self.prepared.pool
        self.rows = np.asarray(task.x.rows)[np.asarray(pool.indices)]
        self.labels = np.asarray(pool.labels)
        self.stamps: list[float] = []

    def streaming(self) -> tuple[list[float], dict[str, float]]:
        from labelbench.strategies.supervised import SupervisedModule

        p = self.prepared
        strategy = copy.deepcopy(p.parts.strategy)
        stamps: list[float] = []
        saved = SupervisedModule.after_step
        SupervisedModule.after_step = lambda module: stamps.append(time.perf_counter())
        try:
            t0 = time.perf_counter()
            predictor = strategy.fit(
                p.pool, p.task.view(), p.parts.model, p.parts.trainer, seed=0, checkpoint=None
            )
            end = time.perf_counter()
        finally:
            SupervisedModule.after_step = saved
        del predictor
        gc.collect()  # the fit's DataLoader workers stop here, not during the other side
        return [s - t0 for s in stamps], {"fit_s": end - t0}

    def plain(self) -> tuple[list[float], dict[str, float]]:
        import pytorch_lightning as pl
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader

        p = self.prepared
        t0 = time.perf_counter()
        pl.seed_everything(0, workers=False, verbose=False)  # as LightningStrategy.train
        net = p.parts.model(in_shape=tuple(p.task.input_shape), num_classes=p.task.num_classes)
        optimizer = p.parts.strategy.optimizer(net.parameters())
        net.train()
        items = PlainItems(p.task.x.reader, self.rows, self.labels)
        loader = DataLoader(items, batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                            prefetch_factor=PREFETCH, generator=torch.Generator().manual_seed(0))  # fmt: skip
        stamps: list[float] = []
        it = iter(loader)
        for _ in range(self.total):
            images, y = next(it)
            x = images.float().div_(255.0)
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stamps.append(time.perf_counter())
        end = time.perf_counter()
        del it, loader
        gc.collect()
        return [s - t0 for s in stamps], {"fit_s": end - t0}


def speed(root: Path, steps: int, warmup: int, repeats: int, scratch: Path) -> dict[str, Any]:
    """Interleaved repeats of both sides; images/s over the steps after the warm-up."""
    code_at = provenance()
    case = SpeedCase(root, steps, warmup, scratch)
    rates: dict[str, list[float]] = {"streaming": [], "plain": []}
    first: dict[str, list[float]] = {"streaming": [], "plain": []}
    whole: dict[str, list[float]] = {"streaming": [], "plain": []}
    sides: dict[str, Callable[[], tuple[list[float], dict[str, float]]]] = {
        "streaming": case.streaming,
        "plain": case.plain,
    }
    ratios = []
    for r in range(repeats):
        order = ("streaming", "plain") if r % 2 == 0 else ("plain", "streaming")
        got = {}
        for side in order:
            stamps, info = sides[side]()
            if len(stamps) != case.total:
                raise SystemExit(f"streaming: {side} took {len(stamps)} steps, not {case.total}")
            rate = steps * BATCH / (stamps[-1] - stamps[warmup - 1])
            rates[side].append(rate)
            first[side].append(stamps[0])
            whole[side].append(case.total * BATCH / info["fit_s"])
            got[side] = rate
            print(f"streaming: repeat {r + 1} {side}: {rate:.1f} images/s (steady), first step"
                  f" done at {stamps[0]:.2f} s, whole {info['fit_s']:.1f} s", file=sys.stderr,
                  flush=True)  # fmt: skip
        ratios.append(got["streaming"] / got["plain"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "streaming": med["streaming"],
        "plain": med["plain"],
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "rates": rates,
        "first_step_s": {k: statistics.median(v) for k, v in first.items()},
        "whole": {k: statistics.median(v) for k, v in whole.items()},
        "steps": steps,
        "warmup": warmup,
        "repeats": repeats,
        "labelled": len(case.rows),
        "overrides": case.overrides[:-1],
        "code": code_at,
    }


def provenance() -> str:
    """When and at which code a measurement starts (the tree may change during a long run:
    each part says its own)."""
    now = datetime.datetime.now().isoformat(timespec="minutes")
    return f"{now}, commit {git_commit()}"


# -- the report -----------------------------------------------------------------------------
def machine() -> str:
    import torch

    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown CPU",
    )  # fmt: skip
    mem = _kb("/proc/meminfo", "MemTotal:") / 2**20
    return (f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB memory, no GPU; torch "
            f"{torch.__version__}, {torch.get_num_threads()} torch threads in the training "
            f"process (workers: 1 each)")  # fmt: skip


def command() -> str:
    """This benchmark's command line, as it was typed (threads first)."""
    threads = os.environ.get("OMP_NUM_THREADS")
    head = [f"OMP_NUM_THREADS={threads}"] if threads else []
    script = os.path.relpath(sys.argv[0], ROOT)
    return " ".join([*head, ".venv/bin/python", script, *map(shlex.quote, sys.argv[1:])])


def render(args: argparse.Namespace, made: dict, disk: int, loads: dict, mems: list[dict],
           fast: dict | None) -> str:  # fmt: skip
    lines = [
        "# Streaming a folder of images (issue 20)",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `{command()}`",
        "",
        "## The data",
        "",
        f"- {made['images']:,} RGB JPEG images of {SIDE}x{SIDE} (quality {QUALITY}) in"
        f" {CLASSES} class folders: {made['images'] * 3 * SIDE * SIDE / 1e9:.2f} GB decoded as"
        f" uint8, {made['images'] * 3 * SIDE * SIDE * 4 / 1e9:.1f} GB as float32;"
        f" {made['bytes'] / 1e6:.0f} MB of files, {disk / 1e6:.0f} MB on disk.",
        f"- Generated in {made['seconds']:.0f} s with {made['processes']} processes"
        f" ({made['made']}).",
        f"- Listing the folder and building its reader (warm page cache): check=none"
        f" {loads['none']:.1f} s, check=header {loads['header']:.1f} s (every file's header"
        " opened).",
        "",
    ]
    if mems:
        lines += [
            "## Peak memory of the whole process tree (the run and its DataLoader workers)",
            "",
            f"Target: under {TARGET_MB} MB. RSS sums count the pages that forked workers"
            " share with the run once per process; PSS sums split them among the sharers"
            " (the memory the tree really takes). Sampled every"
            f" {SAMPLE_S} s; 'largest process' is the kernel's peak RSS of the largest one"
            " (wait4).",
            "",
            *(f"- {m['name']} measured {m.get('code', 'at an unrecorded commit')}" for m in mems),
            "",
            "| run | phase | peak RSS sum MB | peak PSS sum MB | run process RSS MB |"
            " workers' PSS MB | processes | under 2 GB (PSS) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in mems:
            for phase in ("load", "train", "validate", "predict", "after"):
                p = m["phases"].get(phase)
                if p is None:
                    continue
                secs = m["phase_s"].get(phase)
                label = phase + (f" ({secs:.0f} s)" if secs else "")
                lines.append(
                    f"| {m['name']} | {label} | {p['rss']:.0f} | {p['pss']:.0f} |"
                    f" {p['root_rss']:.0f} | {p['workers_pss']:.0f} | {p['procs']} |"
                    f" {'yes' if p['pss'] < TARGET_MB else 'NO'} |"
                )
            lines.append(
                f"| {m['name']} | **whole run** ({m['wall_s']:.0f} s) | **{m['peak_rss_mb']:.0f}**"
                f" | **{m['peak_pss_mb']:.0f}** | {m['maxrss_largest_mb']:.0f} (largest"
                f" process) | | | {'yes' if m['peak_pss_mb'] < TARGET_MB else 'NO'} |"
            )
        lines += ["", "| run | command | steps | labels | test/acc | fit/streamed | load_s |"
                  " fit_s | eval_s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in mems:
            t = m["timings"]
            epoch = math.ceil(m["labels"] / BATCH)
            steps = f"{m['steps']:.0f}"
            if m["name"] == "supervised" and m["steps"] < epoch:
                steps += f" (the first {m['steps']:.0f} of an epoch's {epoch})"
            lines.append(
                f"| {m['name']} | `{m['command']}` | {steps} | {m['labels']} |"
                f" {m['test_acc']:.4f} | {m['streamed']:.0f} | {t.get('load_s', 0):.1f} |"
                f" {t.get('fit_s', 0):.1f} | {t.get('eval_s', 0):.1f} |"
            )
        lines.append("")
    if fast:
        met = fast["ratio"] >= TARGET_RATIO
        lines += [
            "## Training speed: the streaming path against a plain PyTorch loop",
            "",
            f"strategy=supervised (augment none), model=cnn_small, Adam 1e-3 (the strategy's"
            f" optimizer), batch {BATCH}, {WORKERS} workers, prefetch {PREFETCH}, on"
            f" {fast['labelled']:,} labelled items. Both sides timed from the end of step"
            f" {fast['warmup']} to the end of step {fast['warmup'] + fast['steps']}"
            f" ({fast['steps'] * BATCH:,} images; timestamps after every optimizer step);"
            f" {fast['repeats']} interleaved repeats, medians. Measured"
            f" {fast.get('code', 'at an unrecorded commit')}.",
            "Streaming: `LightningStrategy.fit` as `labelbench-run "
            + " ".join(a for a in fast["overrides"] if not a.startswith("paths."))
            + "` fits (Trainer, MinibatchStream, Feed, LazyInputs workers, uint8 / 255 in"
            " the training process). Plain: `DataLoader(Dataset over the same FolderReader,"
            f" shuffle=True, batch_size={BATCH}, num_workers={WORKERS},"
            f" prefetch_factor={PREFETCH})`, uint8 / 255 in the training process, the same"
            " model, optimizer and seed.",
            "",
            "| side | images/s (steady) | first step done at s | images/s (whole fit, set-up"
            " and warm-up included) |",
            "|---|---|---|---|",
            f"| streaming (labelbench) | {fast['streaming']:.1f} |"
            f" {fast['first_step_s']['streaming']:.2f} | {fast['whole']['streaming']:.1f} |",
            f"| plain PyTorch loop | {fast['plain']:.1f} | {fast['first_step_s']['plain']:.2f} |"
            f" {fast['whole']['plain']:.1f} |",
            "",
            f"Ratio streaming / plain (median of per-repeat ratios): **{fast['ratio']:.3f}**"
            f" (repeats: {', '.join(f'{r:.3f}' for r in fast['ratios'])}); target >="
            f" {TARGET_RATIO}: {'met' if met else 'NOT met'}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help=f"default {DEFAULT_DATA}")
    parser.add_argument("--images", type=int, default=None, help="default 100000 (quick: 5000)")
    parser.add_argument("--quick", action="store_true", help="5,000 images, few steps")
    parser.add_argument("--sup-steps", type=int, default=None,
                        help="supervised run's steps (default: one epoch; quick: 20)")  # fmt: skip
    parser.add_argument("--ssl-steps", type=int, default=None, help="default 200 (quick: 4)")
    parser.add_argument("--ssl-labels", type=int, default=250)
    parser.add_argument("--ssl-batches", default="16,64",
                        help="FixMatch runs' labelled batch sizes, comma-separated")  # fmt: skip
    parser.add_argument("--ssl-mu", type=int, default=7)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 150)")
    parser.add_argument("--warmup", type=int, default=None, help="default 10 (quick: 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--val-fraction", type=float, default=0.01)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument(
        "--skip", default="", help="comma list of: memory (both runs), supervised, fixmatch, speed"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--raw", type=Path, help="also write the measurements (JSON) here")
    parser.add_argument("--from-raw", type=Path, help="only render a --raw file's measurements")
    parser.add_argument("--speed-from", type=Path,
                        help="take the speed figures from an earlier --raw file (not measured)")  # fmt: skip
    args = parser.parse_args()
    quick = args.quick
    data = args.data or (QUICK_DATA if quick else DEFAULT_DATA)
    images = args.images or (5000 if quick else 100_000)
    steps = args.steps or (12 if quick else 150)
    warmup = args.warmup or (3 if quick else 10)
    skip = {s for s in args.skip.split(",") if s}

    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        sys.argv = raw["argv"]  # the table names the measuring command and its threads
        if raw.get("env_threads"):
            os.environ["OMP_NUM_THREADS"] = raw["env_threads"]
            import torch

            torch.set_num_threads(int(raw["env_threads"]))
        text = render(args, raw["made"], raw["disk"], raw["loads"], raw["mems"], raw["fast"])
        print(text)
        from labelbench.results.atomic import atomic_write

        atomic_write(args.out, text)
        return
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    made = generate(data, images)
    disk = du_bytes(data)
    print(f"streaming: {data}: {made['images']} images, {disk / 1e6:.0f} MB on disk, made in"
          f" {made['seconds']:.0f} s", file=sys.stderr, flush=True)  # fmt: skip
    loads = load_times(data)
    print(f"streaming: load check=none {loads['none']:.1f} s, check=header {loads['header']:.1f} s",
          file=sys.stderr, flush=True)  # fmt: skip

    common = [
        "dataset=folder", f"dataset.root={data}", f"dataset.val_fraction={args.val_fraction}",
        f"dataset.test_fraction={args.test_fraction}", "regime=clean", "model=cnn_small",
        "loader.path=stream", f"loader.workers={WORKERS}", f"loader.prefetch={PREFETCH}",
        "strategy.eval_every=1000000", "strategy.patience=0",
    ]  # fmt: skip
    sup_steps = args.sup_steps or (20 if quick else None)
    sup_length = (["train.max_steps=null", "train.max_epochs=1"] if sup_steps is None
                  else [f"train.max_steps={sup_steps}"])  # fmt: skip
    runs = {
        "supervised": [*common, "strategy=supervised", "budget=full",
                       f"strategy.batch_size={BATCH}", *sup_length],
    }  # fmt: skip
    for batch in (int(b) for b in args.ssl_batches.split(",")):
        # A FixMatch step holds the activations of batch x (1 + 2 mu) images: at 96x96 and
        # batch 64 (960 images) about 3.9 GB for cnn_small, whichever way the data travels.
        runs[f"fixmatch[batch_size={batch}]"] = [
            *common, "strategy=fixmatch", "budget=total", f"budget.total={args.ssl_labels}",
            f"strategy.batch_size={batch}", f"strategy.mu={args.ssl_mu}",
            f"train.max_steps={args.ssl_steps or (4 if quick else 200)}",
        ]  # fmt: skip
    mems = []
    fast = None
    with tempfile.TemporaryDirectory(prefix="lb-streaming-") as scratch:
        if "memory" not in skip:
            for name, overrides in runs.items():
                if name.split("[")[0] in skip:
                    continue
                m = memory_run(name, overrides, Path(scratch), threads)
                print(f"streaming: {name}: peak RSS sum {m['peak_rss_mb']:.0f} MB, PSS sum"
                      f" {m['peak_pss_mb']:.0f} MB, {m['wall_s']:.0f} s, timings {m['timings']}, phases"
                      f" {json.dumps(m['phases'])}", file=sys.stderr, flush=True)  # fmt: skip
                mems.append(m)
        if args.speed_from:
            fast = json.loads(args.speed_from.read_text())["fast"]
        elif "speed" not in skip:
            fast = speed(data, steps, warmup, args.repeats, Path(scratch) / "speed")
    if args.raw:
        raw = {"made": made, "disk": disk, "loads": loads, "mems": mems, "fast": fast,
               "argv": sys.argv, "env_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip
        args.raw.write_text(json.dumps(raw, indent=1))
    text = render(args, made, disk, loads, mems, fast)
    print(text)
    from labelbench.results.atomic import atomic_write

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, text)
    print(f"streaming: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
