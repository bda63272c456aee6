"""Faults: a full disk while writing a run record, a checkpoint or the embedding cache. One
clear line naming the file and why, and nothing half-written that a later run would trust.

Two real ways to run out of room: RLIMIT_FSIZE set on a real `labelbench-run` (a write
past the limit fails with EFBIG; Python ignores SIGXFSZ), which works anywhere, and a
small tmpfs that really fills up (ENOSPC), where this machine lets the test mount one."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli, run_here
from labelbench.data.cache import EmbeddingCache
from labelbench.data.encoders import Encoder, HashingEncoder
from labelbench.data.lazy import ItemReader, LazyInputs, Streaming
from labelbench.results import RecordStore
from labelbench.results.atomic import WriteError, atomic_write

KB = 1024


def temp_files(folder: Path) -> list[Path]:
    """atomic_write's temp files ('.<name>.<random>.tmp') left anywhere under `folder`."""
    return sorted(folder.rglob("*.tmp"))


def records(results: Path) -> dict[str, dict]:
    """The run records under `results`, by the budget they ran."""
    found = {}
    for path in (results / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["config"]["budget"]["total"]] = record
    return found


# Measured (MLP hidden [2048] on synthetic): a checkpoint is 845 KB; a run record is 5 KB
# with 50 labels and 13.5 KB with 1000 (it lists the revealed items); Hydra's files are at
# most 7 KB (multirun.yaml). A 10 KB limit lets the small record through and stops the rest.
SWEEP = [
    "-m",
    "dataset=synthetic",
    "dataset.n_samples=2000",
    "strategy.max_steps=10",
    "strategy.eval_every=10",
    "logger=none",
    "model.hidden=[2048]",
    "checkpoint.every_steps=10",
    "budget.total=50,1000",
]


def test_full_disk_in_a_sweep_names_the_file_and_leaves_nothing_half_written(tmp_path):
    """Under a file size limit: the first run's checkpoint cannot be written, so it fails
    with a record naming the checkpoint; the second's record cannot be written either, so
    it is one line on stderr and no record. The sweep goes on, exits 1, and a relaunch
    without the limit runs both to the end (nothing half-written is trusted)."""
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run",
        *SWEEP,
        f"paths.results_dir={results}",
        cwd=tmp_path,
        limits={resource.RLIMIT_FSIZE: 10 * KB},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out
    assert "sweep: 2 runs: ok 0, failed 2, skipped 0" in out

    found = records(results)
    assert list(found) == [50]  # the record of 1000 labels did not fit
    small = found[50]
    ckpt = results / "checkpoints" / small["run_key"] / "last.ckpt"
    assert small["status"] == "failed"
    assert small["error"] == {
        "type": "WriteError",
        "message": f"could not write the checkpoint {ckpt}: larger than the file size limit"
        " (EFBIG; see `ulimit -f`)",
    }
    assert not ckpt.exists()  # not a truncated one either

    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("labelbench-run: error:")]
    assert line.endswith(
        f"could not write the run record {results / 'runs'}/"
        f"{line.split()[3]}.json: larger than the file size limit (EFBIG; see `ulimit -f`);"
        " nothing was recorded: a relaunch runs it again"
    ), line
    assert line.split()[3] not in {r["run_key"] for r in found.values()}
    assert temp_files(results) == []

    again = run_here("labelbench-run", *SWEEP, f"paths.results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    found = records(results)
    assert {k: r["status"] for k, r in found.items()} == {50: "ok", 1000: "ok"}
    assert all(r["metrics"]["fit/resumed_from_step"] == 0 for r in found.values())
    assert temp_files(results) == []


# The smallest encoder the tests use: feature hashing, wide enough that its cache array
# (400 sentences x 4096 float32 = 6.5 MB) is far larger than a record (5 KB).
HASHED_TOPICS = [
    "dataset=topics",
    "strategy.max_steps=20",
    "strategy.eval_every=10",
    "logger=none",
    "dataset/encoder=none",
    "dataset.encoder._target_=labelbench.data.encoders.HashingEncoder",
    "+dataset.encoder.n_features=4096",
    "checkpoint.every_steps=0",
]


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """RLIMIT_FSIZE on this process for the block (its soft limit, put back after): for
    `run_here`, which runs `labelbench-run` in this process without a fresh interpreter's
    imports. Python ignores SIGXFSZ, so a write past it raises OSError(EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_embedding_cache_that_does_not_fit_is_one_line_and_no_entry(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = [*HASHED_TOPICS, f"dataset.cache_dir={cache}", f"paths.results_dir={results}"]
    with file_size_limit(1000 * KB):
        proc = run_here("labelbench-run", *args, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("labelbench-run: error: run ")
    assert f"could not write the embedding cache array {cache}/topics-hashing-text-" in line
    assert line.endswith(
        ".npy: larger than the file size limit (EFBIG; see `ulimit -f`);"
        " nothing was recorded: a relaunch runs it again"
    )
    assert list(cache.iterdir()) == []  # no array, no description, no temp file
    assert not (results / "runs").exists() or not list((results / "runs").iterdir())

    again = run_here("labelbench-run", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    (meta,) = cache.glob("*.json")
    (record,) = RecordStore(results).scan()
    assert record[1].status == "ok"
    entry = json.loads(meta.read_text())
    x = EmbeddingCache(cache).read(meta, {k: entry[k] for k in ("key", "sha256")}, 400)
    assert x.shape == (400, 4096)


def test_description_that_cannot_be_written_takes_its_array_with_it(tmp_path):
    """An array no description names is never read: it is removed, not left behind."""
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = HashingEncoder(n_features=32)
    texts = ["a cat", "a dog", "the sun"]
    from labelbench.data.cache import items_digest

    ident = cache.describe("toy", items_digest(texts), encoder, "text")
    meta = cache.root / f"{cache.stem(ident)}.json"
    meta.mkdir(parents=True)  # a folder where the description goes: renaming onto it fails
    with pytest.raises(WriteError, match="could not write the embedding cache description"):
        cache.get("toy", texts, encoder)
    assert sorted(p.name for p in cache.root.iterdir()) == [meta.name]  # no array, no temp
    meta.rmdir()
    x = cache.get("toy", texts, encoder)
    assert x.shape == (3, 32) and len(list(cache.root.glob("*.npy"))) == 1


def test_write_error_says_what_where_and_why(tmp_path):
    folder = tmp_path / "file"
    folder.write_text("")  # a file where the folder should be (refused even to root)
    with pytest.raises(WriteError) as caught:
        atomic_write(folder / "x.json", "{}", what="the thing")
    error = caught.value
    assert isinstance(error, OSError) and not error.disk_full
    assert str(error).startswith(f"could not write the thing {folder / 'x.json'}: ")
    assert str(error).endswith("(EEXIST)")  # the errno's name, not '[Errno 17]'
    assert error.strerror == os.strerror(error.errno)  # the system's words, for who reads them
    copy = pickle.loads(pickle.dumps(error))  # launchers pickle what a job raised
    assert type(copy) is WriteError and str(copy) == str(error) and copy.errno == error.errno


# -- a disk that really fills up --------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted under tmp_path, and `resize(kb)` to set its size: a disk that really
    fills up (ENOSPC). Needs root or CAP_SYS_ADMIN; skipped where mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux's mount")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")

    def resize(kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kb}k", str(mount)], check=True)

    try:
        yield mount, resize
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


RESUMABLE = [
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy.max_steps=30",
    "strategy.eval_every=10",
    "logger=none",
    "strategy.patience=0",
    "model.hidden=[2048]",
    "checkpoint.every_steps=10",
]


def test_checkpoints_on_a_full_disk_are_whole_or_absent(small_disk, tmp_path):
    """A disk with room for less than one checkpoint: the run fails naming it, and leaves
    no truncated one (Lightning's own saving stages the file in the system temp folder and
    copies it over, which leaves a truncated last.ckpt on a full results disk). Room for
    one but not two: the second save fails and the first stays whole, so the relaunch
    resumes from it."""
    disk, resize = small_disk
    results = disk / "results"
    args = [*RESUMABLE, f"paths.results_dir={results}"]

    resize(600)  # a checkpoint is 845 KB
    first = run_here("labelbench-run", *args, cwd=tmp_path)
    assert first.returncode == 1
    (record,) = [r for _, r in RecordStore(results).scan()]
    ckpt = results / "checkpoints" / record.run_key / "last.ckpt"
    assert record.status == "failed" and record.error == {
        "type": "WriteError",
        "message": f"could not write the checkpoint {ckpt}: no space left on the device (ENOSPC)",
    }
    assert list(ckpt.parent.iterdir()) == []

    resize(1400)  # one checkpoint and a bit: a new one is written beside it, then renamed
    second = run_here("labelbench-run", *args, cwd=tmp_path)
    assert second.returncode == 1
    assert RecordStore(results).read(record.run_key).error == record.error
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]

    resize(16 * 1024)
    third = run_here("labelbench-run", *args, cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    done = RecordStore(results).read(record.run_key)
    assert done.status == "ok" and done.metrics["fit/resumed_from_step"] == 10
    assert temp_files(results) == []


def test_embedding_cache_on_a_full_disk(small_disk):
    """Room for the array but not its description: no entry, no array. Then room: one."""
    disk, resize = small_disk
    texts = [f"sentence number {i}" for i in range(20)]
    encoder = HashingEncoder(n_features=1024)  # a 4096-byte row: the array is 21 pages
    resize(21 * 4)
    with pytest.raises(WriteError) as caught:
        EmbeddingCache(disk).get("toy", texts, encoder)
    assert "could not write the embedding cache description" in str(caught.value)
    assert str(caught.value).endswith("no space left on the device (ENOSPC)")
    assert caught.value.disk_full
    assert list(disk.iterdir()) == []

    resize(10 * 4)  # not even the array
    with pytest.raises(WriteError, match="could not write the embedding cache array"):
        EmbeddingCache(disk).get("toy", texts, encoder)
    assert list(disk.iterdir()) == []

    resize(1024)
    x = EmbeddingCache(disk).get("toy", texts, encoder)
    np.testing.assert_array_equal(x, encoder.encode(texts))
    assert len(list(disk.glob("*.npy"))) == 1 and len(list(disk.glob("*.json"))) == 1


class Rows(ItemReader):
    """300 items kept 'on disk' (made on reading), for a streamed encoding."""

    item_shape = (4,)
    dtype = np.float32

    def __len__(self) -> int:
        return 300

    def read(self, i: int) -> np.ndarray:
        return np.full(4, i, dtype=np.float32)

    def fingerprint(self) -> str:
        return "rows-300"


class Wide(Encoder):
    """4096 features a row: a streamed partial array of 300 rows is 4.9 MB."""

    name = "wide"
    modalities = ("vector",)
    batch_size = 100

    def fingerprint(self) -> str:
        return "wide-4096"

    def encode(self, items):
        return np.repeat(np.asarray(items, dtype=np.float32)[:, :1], 4096, axis=1)


STREAMED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_full_disk import Rows, Wide
    from labelbench.data.cache import EmbeddingCache
    from labelbench.data.lazy import LazyInputs, Streaming
    from labelbench.results.atomic import WriteError

    try:
        EmbeddingCache(sys.argv[2]).get("rows", LazyInputs(Rows(), streaming=Streaming(0)), Wide())
    except WriteError as e:
        print(e)
        sys.exit(3)
    """
)


def test_streamed_encoding_on_a_full_disk_fails_in_one_line_not_sigbus(small_disk):
    """A streamed encoding writes through a memory map; on a full disk that would be a
    SIGBUS killing the process. Its space is reserved first, so it is an error instead."""
    disk, resize = small_disk
    resize(1024)
    proc = subprocess.run(
        [sys.executable, "-c", STREAMED, str(ROOT / "tests"), str(disk)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 3, (proc.returncode, proc.stderr)  # not -SIGBUS
    (line,) = proc.stdout.splitlines()
    assert line.startswith(f"could not write the partial embedding cache array {disk}/rows-wide-")
    assert line.endswith(".partial.npy: no space left on the device (ENOSPC)")
    assert list(disk.iterdir()) == []  # no partial array, no progress, no lock

    resize(16 * 1024)
    x = EmbeddingCache(disk).get("rows", LazyInputs(Rows(), streaming=Streaming(0)), Wide())
    assert x.shape == (300, 4096) and x[299, 0] == 299
