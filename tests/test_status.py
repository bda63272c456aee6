"""`labelbench status`: counts, running and stale runs, the sweep's jobs not started, the
latest failures and the ETA, from a results folder built by hand with real files (records,
heartbeats, checkpoint and Hydra job folders with their mtimes set), and from a real sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, heavy_imports, run_here, write_records
from labelbench import sweep as lb_sweep
from labelbench.results.atomic import atomic_write
from labelbench.results.status import (
    CHECKPOINT_FRESH_S,
    OUTCOME_FILE,
    duration,
    gather,
    one_line,
)
from test_records import make_record

NOW = time.time()  # the time the files' ages count from: each test's start (below)
LONG = "CUDA out of memory. Tried to allocate 2.00 GiB " + "x" * 300
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@pytest.fixture(autouse=True)
def _now() -> None:
    """Ages count from the test's start, not from the module's import: under xdist a test
    may run minutes after its module was collected, and a 5 s old beat would be stale."""
    global NOW
    NOW = time.time()


def record(key: str, status: str = "ok", *, total_s: float = 1.0, error=None, **choices):
    r = make_record(key, status)
    r.timings = {"fit_s": total_s / 2, "total_s": total_s}
    r.choices.update(choices)
    if error is not None:
        r.error = {"type": error[0], "message": error[1]}
    return r


def age(path: Path, seconds: float) -> None:
    """Set `path`'s mtime to `seconds` before NOW."""
    os.utime(path, (NOW - seconds, NOW - seconds))


def iso(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(NOW - seconds_ago))


def heartbeat(results: Path, key: str, *, beat_ago: float, started_ago: float, every_s=30,
              host="node1", seed=0) -> None:  # fmt: skip
    """A heartbeat as runs write it (atomically), its beat and mtime `beat_ago` seconds old."""
    data = {
        "run_key": key,
        "choices": {
            "dataset": "digits",
            "regime": "clean",
            "budget": "total",
            "strategy": "fixmatch",
            "model": "mlp",
        },
        "seed": seed,
        "pid": 4242,
        "host": host,
        "slurm_job_id": "777" if host == "node1" else None,
        "started": iso(started_ago),
        "beat": iso(beat_ago),
        "every_s": every_s,
    }
    path = results / "running" / f"{key}.json"
    atomic_write(path, json.dumps(data))
    age(path, beat_ago)


def checkpoint(results: Path, key: str, *, file_ago: float, dir_ago: float) -> None:
    folder = results / "checkpoints" / key
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"\0" * 64)
    age(folder / "last.ckpt", file_ago)
    age(folder, dir_ago)


def sweep_folder(
    results: Path, overrides: list[str], started: int, *, target=BASIC, outcomes=()
) -> Path:
    """A Hydra sweep folder: multirun.yaml (written 600 s ago), `started` job folders since
    (the i-th ending as outcomes[i] says: (outcome, seconds after its start), if given),
    and one job folder of an earlier launch (2 h ago) that ended ok in 1000 s: it does not
    count, nor does its duration."""
    sweep = results / "hydra" / "sweep"
    sweep.mkdir(parents=True)
    lines = "".join(f"    - {o}\n" for o in [*overrides, f"paths.results_dir={results}"])
    (sweep / "multirun.yaml").write_text(
        f"hydra:\n  sweeper:\n    _target_: {target}\n    max_batch_size: null\n"
        f"    params: null\n  overrides:\n    task:\n{lines}seed: 0\n"
    )
    age(sweep / "multirun.yaml", 600)
    ends = dict(enumerate(outcomes))
    ends[started] = ("ok", 1000.0)
    for i, ago in enumerate([*(500 - 10 * j for j in range(started)), 7200]):
        job = sweep / "digits" / "logreg" / f"job{i}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={i}\n")
        age(job / ".hydra" / "overrides.yaml", ago)
        age(job / ".hydra", ago)
        if i in ends:  # as labelbench.sweep.write_outcome leaves it
            outcome, took = ends[i]
            end = {"outcome": outcome, "sweep": "x", "finished": NOW - ago + took}
            (job / "labelbench-outcome.json").write_text(json.dumps(end))
    return sweep


@pytest.fixture
def store(tmp_path) -> Path:
    """Every kind of run status makes: see the comments."""
    results = tmp_path / "results"
    oom = ("RuntimeError", LONG + "\nTraceback (most recent call last): ...")
    records = {
        # (record, mtime age in seconds)
        "ok1": (record("ok1", total_s=10.0, seed=0), 100),
        "ok2": (record("ok2", total_s=30.0), 100),  # its heartbeat is left: finished between reads
        "okold": (record("okold", total_s=1000.0), 86400),
        "failA": (record("failA", "failed", error=oom, strategy="fixmatch"), 50),
        "failKept": (record("failKept", "failed", error=("ValueError", "bad"), budget="b"), 60),
        "failB": (record("failB", "failed", error=("FloatingPointError", "nan")), 3000),
        "failRerun": (record("failRerun", "failed", error=("OSError", "disk")), 4000),
    }
    write_records(results, [r for r, _ in records.values()])
    for key, (_, ago) in records.items():
        age(results / "runs" / f"{key}.json", ago)
    (results / "runs" / "corrupt.json").write_text('{"schema_version": 1, "run_ke')

    heartbeat(results, "live1", beat_ago=5, started_ago=300)  # running
    heartbeat(results, "slow", beat_ago=1000, started_ago=2000, every_s=600, host="node2")
    heartbeat(results, "dead", beat_ago=3600, started_ago=7200, host="node7", seed=3)  # stale
    heartbeat(results, "ok2", beat_ago=150, started_ago=200)  # its record is newer: finished
    heartbeat(results, "failRerun", beat_ago=10, started_ago=60)  # a failed run, rerun: running
    (results / "running" / ".live1.json.abc.tmp").write_text("{")  # atomic_write's temp file

    checkpoint(results, "ckfresh", file_ago=60, dir_ago=7200)  # rewritten in place: running
    checkpoint(results, "ckold", file_ago=7200, dir_ago=7200)  # not running
    checkpoint(results, "failKept", file_ago=120, dir_ago=120)  # kept to resume: not running
    checkpoint(results, "ok1", file_ago=30, dir_ago=30)  # checkpoint.keep of an ok run
    checkpoint(results, "live1", file_ago=30, dir_ago=30)  # has a heartbeat: counted once

    # seed x budget.total: 6 jobs, 4 started: 2 ended ok (in 10 s and 30 s), 1 was skipped (a
    # run already recorded), 1 runs (its folder has the outcome of an earlier launch's job)
    sweep_folder(
        results,
        ["seed=0,1,2", "budget.total=20,40", "dataset=digits"],
        started=4,
        outcomes=[("ok", 10.0), ("ok", 30.0), ("skipped", 1.0), ("ok", -100.0)],
    )
    return results


def status(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_here("labelbench", "status", *args, cwd=cwd)


def test_counts_running_stale_and_sweep(store):
    found = gather(store, now=NOW)
    assert (found.ok, found.failed) == (3, 4)
    assert [p for p, _ in found.unreadable] == [str(store / "runs" / "corrupt.json")]
    assert {r.run_key: r.source for r in found.running} == {
        "live1": "heartbeat",
        "slow": "heartbeat",
        "failRerun": "heartbeat",
        "ckfresh": "checkpoint",
    }
    [dead] = found.stale
    assert (dead.run_key, dead.host, dead.seed) == ("dead", "node7", 3)
    assert dead.last_seen == pytest.approx(NOW - 3600, abs=1)
    sweep = found.sweep
    assert (sweep.jobs, sweep.started, sweep.not_started) == (6, 4, 2)
    # ETA: the mean of this sweep's ok jobs (10 s, 30 s) x (2 not started + 4 running) / 4
    assert (found.mean_run_s, found.eta_runs, found.eta_basis) == (20.0, 2, "this sweep")
    assert found.eta_s == pytest.approx(20.0 * 6 / 4)


def test_text_block(store, tmp_path):
    proc = status(str(store), "--failures", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"results: {store}")
    counts = {ln.split()[0]: ln.split()[1] for ln in lines[1:4]}
    assert counts == {"ok": "3", "failed": "4", "running": "4"}
    assert "(3 with a heartbeat, 1 by a checkpoint written in the last 10m00s)" in lines[3]
    assert lines[4].split()[:3] == ["not", "started", "2"]
    assert "of 6 jobs in" in lines[4] and "(4 started)" in lines[4]
    assert lines[5].split()[:2] == ["unreadable", "1"] and "corrupt.json" in lines[5]
    stale = lines[lines.index(next(ln for ln in lines if "stale" in ln)) + 1]
    assert stale.split()[:2] == ["dead", "digits/clean/total/fixmatch/mlp"]
    assert (
        "host node7" in stale and f"last beat {iso(3600)[:19]}" in stale and "(1h00m ago)" in stale
    )
    assert "ETA: ~30s  (mean run 20s over 2 ok runs of this sweep; 6 runs left, 4 running)" in lines
    at = lines.index("latest failures (3 of 4):")
    shown = lines[at + 1 :]
    assert [ln.split("  ")[3].split()[0] for ln in shown] == ["RuntimeError:", "ValueError:",
                                                              "FloatingPointError:"]  # fmt: skip
    assert "digits/clean/20/fixmatch/mlp seed 0" in shown[0]  # the row's labels
    assert shown[0].endswith("x…") and len(shown[0].split("  ", 3)[3]) == 160  # one line, cut
    assert shown[2].endswith("FloatingPointError: nan")


def test_json(store, tmp_path):
    proc = status(str(store), "--format", "json", "--failures", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {
        k: data[k] for k in ("ok", "failed", "running", "not_started", "stale", "unreadable")
    } == {"ok": 3, "failed": 4, "running": 4, "not_started": 2, "stale": 1, "unreadable": 1}
    assert data["stale_runs"][0]["run_key"] == "dead" and data["stale_runs"][0]["host"] == "node7"
    live = {r["run_key"]: r for r in data["running_runs"]}
    assert live["live1"]["slurm_job_id"] == "777" and live["live1"]["pid"] == 4242
    assert [f["run_key"] for f in data["failures"]] == ["failA", "failKept"]
    assert data["failures"][1]["error"] == "ValueError: bad"
    assert data["failures"][1]["budget"] == "20"  # the row's budget label
    assert (data["sweep"]["jobs"], data["sweep"]["started"], data["sweep"]["finished_ok"]) == (
        6, 4, 2)  # fmt: skip
    assert data["eta"] == {"mean_run_s": 20.0, "runs": 2, "basis": "this sweep", "remaining": 6}
    assert data["eta_s"] == pytest.approx(30.0)


def test_without_a_sweep_folder(store, tmp_path):
    """No sweep folder: said so; the ETA reads every ok record's seconds and counts the
    running runs only."""
    import shutil

    shutil.rmtree(store / "hydra")
    found = gather(store, now=NOW)
    assert found.sweep is None and found.remaining == 4
    assert (found.mean_run_s, found.eta_basis) == (pytest.approx(1040 / 3), "all ok runs")
    text = status(str(store), cwd=tmp_path).stdout
    assert f"not started        -  no Hydra sweep folder at {store / 'hydra' / 'sweep'}" in text
    assert "over all 3 ok runs in the store; 4 runs left, 4 running" in text


def test_unknown_job_count_and_sweep_option(store, tmp_path):
    """A sweeper that decides its jobs as it goes: 'unknown'; --sweep names another folder,
    which must be a Hydra sweep folder."""
    other = sweep_folder(tmp_path / "elsewhere", ["seed=0,1"], 1, target="labelbench.tune.Tune")
    text = status(str(store), "--sweep", str(other), cwd=tmp_path).stdout
    line = next(ln for ln in text.splitlines() if ln.split()[:2] == ["not", "started"])
    assert line.split()[2] == "?" and "its sweeper decides the jobs as it goes" in line
    assert "; 1 started in" in line
    # unknown total: the ETA counts only the running runs
    assert gather(store, other, now=NOW).remaining == 4
    for bad, why in ((tmp_path / "nope", "no such folder"),
                     (store / "runs", "no multirun.yaml in it (not a Hydra sweep folder)")):  # fmt: skip
        proc = status(str(store), "--sweep", str(bad), cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr == f"labelbench: error: --sweep {bad}: {why}\n"


def test_no_estimate_and_nothing_left(tmp_path):
    results = write_records(tmp_path / "r", [record("f", "failed", error=("E", "boom"))])
    text = status(str(results), cwd=tmp_path).stdout
    assert "ETA: no estimate (no run has finished ok)" in text
    write_records(results, [record("g")])
    sweep_folder(results, ["seed=0"], started=1)
    text = status(str(results), cwd=tmp_path).stdout
    assert "not started        0  of 1 jobs" in text and "ETA: nothing left to run" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing"], "{tmp}/missing: no such folder (give the results folder of a sweep)"),
        (
            ["{tmp}/plain"],
            "{tmp}/plain is not a results folder (no runs/, running/, checkpoints/"
            " or hydra/ in it)",
        ),
        (
            ["{tmp}/plain/file.txt"],
            "{tmp}/plain/file.txt: no such folder (give the results folder of a sweep)",
        ),
        (["{tmp}/plain", "--failures", "-1"], "--failures -1: must be a count >= 0"),
        (["{tmp}/plain", "--watch", "0"], "--watch 0: must be a number of seconds > 0"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.txt").write_text("x")
    tmp = str(tmp_path)
    proc = status(*(a.replace("{tmp}", tmp) for a in args), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == f"labelbench: error: {message.replace('{tmp}', tmp)}\n"
    assert proc.stdout == "" and not (tmp_path / "plain" / ".cache").exists()


def test_watch_redraws_until_told(store, tmp_path):
    proc = status(str(store), "--watch", "0.01", "--max-refreshes", "3", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("results: ") == 3
    proc = status(str(store), "--format", "json", "--watch", "0.01", "--max-refreshes", "2",
                  cwd=tmp_path)  # fmt: skip
    assert [json.loads(ln)["ok"] for ln in proc.stdout.splitlines()] == [3, 3]


def test_watch_ends_on_ctrl_c(store, tmp_path):
    """The real console script: Ctrl-C (SIGINT) ends --watch with exit 0, no traceback."""
    proc = subprocess.Popen(
        [str(BIN / "labelbench"), "status", str(store), "--watch", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().startswith("results: ")  # the first frame is drawn
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_light_imports(store):
    """`labelbench status --help`, the module and a status over a sweep folder: no torch."""
    code = (
        "import contextlib, io, labelbench.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: labelbench.cli.main(['status', '--help'])\n"
        "    except SystemExit: pass\n"
        f"    assert labelbench.cli.main(['status', {str(store)!r}]) == 0\n"
    )
    assert heavy_imports(code) == []
    assert heavy_imports("import labelbench.results.status") == []


def test_helpers():
    assert [duration(s) for s in (0, 42, 185, 7620, 3 * 86400 + 4 * 3600)] == [
        "0s", "42s", "3m05s", "2h07m", "3d04h"]  # fmt: skip
    assert one_line("E: first\nsecond") == "E: first"
    assert one_line("E: " + "y" * 200, width=10) == "E: yyyyyy…"
    assert CHECKPOINT_FRESH_S == 600
    assert OUTCOME_FILE == lb_sweep.OUTCOME_FILE


def test_a_real_sweep(tmp_path):
    """A real tiny sweep, then status: 2 ok, nothing running or left, the ETA says so."""
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", "-m", "dataset=synthetic", "dataset.n_samples=300", "strategy=logreg",
        "seed=0,1", "logger=none", f"paths.results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(status(str(results), "--format", "json", cwd=tmp_path).stdout)
    assert (data["ok"], data["failed"], data["running"], data["stale"]) == (2, 0, 0, 0)
    assert (data["sweep"]["jobs"], data["sweep"]["started"], data["not_started"]) == (2, 2, 0)
    assert data["eta"]["basis"] == "this sweep" and data["eta"]["runs"] == 2
    assert data["eta_s"] == 0.0
    text = status(str(results), cwd=tmp_path).stdout
    assert "ETA: nothing left to run" in text and "latest failures" not in text


def test_the_benchmark_runs(tmp_path):
    """scripts/bench/status.py on a small store: it measures and prints its figures."""
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "status.py"), "--n", "300",
         "--dir", str(tmp_path / "store"), "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "labelbench status" in proc.stdout
    figures = json.loads(out.read_text())
    assert [f["figure"].rsplit(", ", 1)[1] for f in figures] == ["cold cache", "warm cache"]
    assert all(f["measured"] > 0 for f in figures)


def test_a_run_killed_leaves_a_stale_heartbeat(tmp_path):
    """A real run (its own process) is running while its heartbeat beats; killed with
    SIGKILL, its heartbeat stops and status reports it stale, with its host and pid."""
    import socket

    results = tmp_path / "results"
    env = {**os.environ, "LABELBENCH_HEARTBEAT_S": "0.5", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [str(BIN / "labelbench-run"), "dataset=synthetic", "dataset.n_samples=300",
         "strategy=supervised", "strategy.max_steps=1000000", "strategy.eval_every=1000",
         "checkpoint.every_steps=0", "logger=none", f"paths.results_dir={results}"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not list(results.glob("running/*.json")) and time.time() < deadline:
            assert proc.poll() is None, "the run ended before its heartbeat was seen"
            time.sleep(0.2)
        found = gather(results)
        assert (len(found.running), len(found.stale), found.ok) == (1, 0, 0)
        [live] = found.running
        assert (live.host, live.pid, live.source) == (socket.gethostname(), proc.pid, "heartbeat")
        assert live.choices["strategy"] == "supervised" and live.seed == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)
    time.sleep(3 * 0.5 + 0.5)  # three beats missed
    found = gather(results)
    assert (len(found.running), [r.run_key for r in found.stale]) == (0, [live.run_key])
    text = status(str(results), cwd=tmp_path).stdout
    assert f"{live.run_key}  synthetic/clean/total/supervised/mlp seed 0" in text
    assert "heartbeat stopped (killed or lost?)" in text
