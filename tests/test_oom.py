"""Faults: memory that runs out inside a sweep. A run whose fit cannot allocate what it
needs ends `failed`, its record saying out of memory and what to lower; one that runs out
before its fit (building the model) is one line and no record; the sweep goes on.

Real allocations that really fail: the sweep runs under an address-space limit
(RLIMIT_AS) that the test sets far above what a small run needs (about 1.1 GB of virtual
memory, measured with `prlimit --as` on a CPU-only torch; CUDA builds map more) and far
below what the large settings ask for, so only they fail, and they fail at once, on any
machine, without touching the memory they ask for."""

from __future__ import annotations

import json
import resource

from conftest import run_cli

GB = 1024**3
LIMIT = 16 * GB
# hidden [65536] with batches of 1M items (drawn with replacement from the 100 labels):
# the first layer's output alone is 2**20 x 2**16 float32 = 256 GiB, in the fit. hidden 2**28:
# the first layer's weights are 2**28 x 20 float32 = 20 GiB, when the run builds the model
# to check it against the task, before the fit.
SWEEP = [
    "-m",
    "dataset=synthetic",
    "dataset.n_samples=400",
    "strategy.max_steps=10",
    "strategy.eval_every=10",
    "logger=none",
    "checkpoint.every_steps=0",
    "strategy.labeled_sampling=with_replacement",
    "model.hidden=[65536],[268435456]",
    "strategy.batch_size=1048576,32",
]


def test_out_of_memory_fails_the_run_and_the_sweep_goes_on(tmp_path):
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run",
        *SWEEP,
        f"paths.results_dir={results}",
        cwd=tmp_path,
        limits={resource.RLIMIT_AS: LIMIT},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "sweep: 4 runs: ok 1, failed 3, skipped 0" in out

    found = {}
    for path in (results / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["config"]["strategy"]["batch_size"]] = record
    assert sorted(found) == [32, 1048576]  # the runs with the small model: both recorded
    ok, failed = found[32], found[1048576]
    assert ok["status"] == "ok" and ok["metrics"]["test/acc"] > 0.5
    assert failed["status"] == "failed"
    assert failed["config"]["model"]["hidden"] == [65536]
    error = failed["error"]
    assert error["type"] == "OutOfMemoryError"
    assert error["message"].startswith(
        "out of CPU memory; lower strategy.batch_size or the model's size, or give the run"
        " more memory (RuntimeError: "
    )
    assert "can't allocate memory" in error["message"]

    lines = [x for x in proc.stderr.splitlines() if x.startswith("labelbench-run: error:")]
    assert len(lines) == 2, proc.stderr  # the large model, with either batch size
    for line in lines:
        assert ": out of CPU memory; lower strategy.batch_size or the model's size" in line
        assert "can't allocate memory" in line
        assert line.endswith("; nothing was recorded: a relaunch runs it again")
    # the failed fit logs its traceback (where memory ran out); the refusals before a fit none
    assert out.count("Traceback (most recent call last)") == 1, out


def real_failures() -> dict[str, BaseException]:
    """What each allocator raises when it cannot give the memory (asked for 1 EiB), and
    what torch raises on a full GPU (built here: there may be no GPU)."""
    import numpy as np
    import torch

    raised = {}
    for name, allocate in (
        ("numpy", lambda: np.empty(2**60, dtype=np.uint8)),
        ("torch", lambda: torch.empty(2**60, dtype=torch.uint8)),
    ):
        try:
            allocate()
        except (MemoryError, RuntimeError) as e:
            raised[name] = e
    raised["cuda"] = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB.")
    return raised


def test_what_each_allocator_raises_is_named_out_of_memory():
    from labelbench.results.store import error_of

    raised = real_failures()
    assert sorted(raised) == ["cuda", "numpy", "torch"]
    expected = {
        "numpy": ("CPU", "MemoryError: Unable to allocate"),
        "torch": ("CPU", "RuntimeError: "),
        "cuda": ("GPU", "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB."),
    }
    for name, (device, original) in expected.items():
        error = error_of(raised[name])
        assert error["type"] == "OutOfMemoryError", name
        assert error["message"].startswith(f"out of {device} memory; lower "), name
        assert f"({original}" in error["message"], name
    assert error_of(RuntimeError("shapes cannot be multiplied")) == {
        "type": "RuntimeError",
        "message": "shapes cannot be multiplied",
    }
