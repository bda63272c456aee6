"""Loggers mirror the record (W&B offline, TensorBoard, CSV); bad W&B projects are refused
before training; the progress bar is drawn on interactive terminals only."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_here
from labelbench.config import ConfigError
from labelbench.loggers import (
    RunTrainer,
    check_wandb_project,
    progress_settings,
    record_summary,
    wandb_credentials_configured,
    wandb_group,
    wandb_mode,
    wants_progress_bar,
)
from labelbench.run import build, run

CHOICE_TAGS = {
    "dataset=synthetic",
    "regime=clean",
    "budget=total",
    "strategy=supervised",
    "model=mlp",
}


@pytest.fixture
def no_wandb_setup(tmp_path, monkeypatch):
    """A machine where W&B was never set up; nothing touches the real home."""
    home = tmp_path / "home"
    home.mkdir()
    for var in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "NETRC",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("WANDB_DIR", "wandb"),
        ("WANDB_CONFIG_DIR", "config"),
        ("WANDB_CACHE_DIR", "cache"),
        ("WANDB_DATA_DIR", "data"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    return home


# -- reading the mirrors back ---------------------------------------------------------


def wandb_records(path: Path):
    """The records of an offline W&B run file (`run-<id>.wandb`, LevelDB-log framing:
    7-byte file header, 32 KiB blocks, chunks of checksum u32, length u16, type u8)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, pending, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += block - pos % block
            continue
        if pos + 7 + length > len(data):
            break  # a chunk still being written (the file is read while W&B writes it)
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last chunk
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_wandb_run(run_dir: Path, timeout: float = 20.0) -> dict:
    """Run id, name, group, tags, config, summary and exit code, replayed as W&B would.
    W&B's service process writes the file asynchronously: on a loaded machine the last
    records can land a moment after `finish()` returns, so wait for the exit record."""
    deadline = time.time() + timeout
    while True:
        got = _replay_wandb_run(run_dir)
        if ("id" in got and got["exit_code"] is not None) or time.time() > deadline:
            return got
        time.sleep(0.2)


def _replay_wandb_run(run_dir: Path) -> dict:
    (path,) = run_dir.glob("run-*.wandb")
    out: dict = {"summary": {}, "config": {}, "exit_code": None}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":  # the latest run record carries the current tags and config
            r = record.run
            out.update(id=r.run_id, name=r.display_name, group=r.run_group, tags=set(r.tags))
            out["config"].update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "summary":
            for u in record.summary.update:
                key = u.key or "/".join(u.nested_key)  # flat metric names with slashes
                out["summary"][key] = json.loads(u.value_json)
            for u in record.summary.remove:
                out["summary"].pop(u.key or "/".join(u.nested_key), None)
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    out["summary"] = {k: v for k, v in out["summary"].items() if not k.startswith("_")}
    return out


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} over every event file in a folder (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (n,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    scalars.setdefault(v.tag, {})[event.step] = v.simple_value
    return scalars


# -- W&B ------------------------------------------------------------------------------


def test_wandb_offline_run_mirrors_the_record(compose_fast, tmp_path, no_wandb_setup):
    cfg, choices = compose_fast("strategy=supervised", "logger=wandb")
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    (run_dir,) = (tmp_path / "results" / "logs" / "wandb").glob(f"offline-run-*-{record.run_key}")
    got = read_wandb_run(run_dir)
    assert got["id"] == got["name"] == record.run_key
    assert got["group"] == "synthetic-mlp"
    assert got["tags"] >= CHOICE_TAGS
    assert got["config"]["seed"] == record.config["seed"]
    assert got["config"]["strategy"]["max_steps"] == 60
    # The summary is the record: its metrics exactly, plus status and label accounting.
    assert got["summary"] == record_summary(record)
    extra = {"status", "labels/count", "labels/cost"}
    assert {k: v for k, v in got["summary"].items() if k not in extra} == record.metrics
    assert got["summary"]["status"] == "ok"
    assert got["summary"]["labels/count"] == record.labels["count"]
    assert got["exit_code"] == 0  # finished: the offline files are complete
    assert not (no_wandb_setup / ".netrc").exists()


def test_wandb_failed_run_mirrors_status_and_error(compose_fast, tmp_path, no_wandb_setup):
    cfg, choices = compose_fast(
        "strategy=supervised",
        "strategy.optimizer.lr=1e30",
        "strategy.patience=0",
        "logger=wandb",
        "logger.group=my-sweep",
        "logger.tags=[nan-check]",
    )
    record = run(cfg, choices)
    assert record.status == "failed"
    (run_dir,) = (tmp_path / "results" / "logs" / "wandb").glob("offline-run-*")
    got = read_wandb_run(run_dir)
    assert got["group"] == "my-sweep" and got["tags"] >= {*CHOICE_TAGS, "nan-check"}
    assert got["summary"]["status"] == "failed"
    assert got["summary"]["error/type"] == "FloatingPointError"
    assert got["summary"]["error/message"] == record.error["message"]
    assert not any(k.startswith(("test/", "train/", "val/")) for k in got["summary"])
    assert got["exit_code"] == 1


def test_wandb_mode(no_wandb_setup, monkeypatch):
    assert not wandb_credentials_configured()
    assert wandb_mode(None) == "offline"  # no key, no WANDB_MODE: never asks for a login
    assert wandb_mode("online") == "online"  # logger.mode wins
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(None) is None  # wandb reads WANDB_MODE itself
    monkeypatch.delenv("WANDB_MODE")
    netrc = no_wandb_setup / ".netrc"
    netrc.write_text("machine example.org login x password y\n")
    assert wandb_mode(None) == "offline"
    netrc.write_text("machine api.wandb.ai login user password not-a-real-key\n")
    netrc.chmod(0o600)
    assert wandb_credentials_configured() and wandb_mode(None) is None  # online: wandb's default
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")
    assert wandb_mode(None) is None
    with pytest.raises(ConfigError, match=r"mode='cloud' is not a W&B mode; allowed: online"):
        wandb_mode("cloud")


def test_wandb_group():
    choices = {"dataset": "digits", "model": "mlp"}
    assert wandb_group(None, choices) == "digits-mlp"
    assert wandb_group(None, {**choices, "experiment": "demo"}) == "demo"
    assert wandb_group("mine", {**choices, "experiment": "demo"}) == "mine"


@pytest.mark.parametrize(
    ("project", "says"),
    [
        ("a/b", r"project='a/b' has characters W&B does not allow \(/\)"),
        ("x:y#z", r"project='x:y#z' has characters W&B does not allow \(# :\)"),
        ("", r"project='' is not a W&B project name"),
        ("  ", r"project='  ' is not a W&B project name"),
        ("p" * 129, r"is 129 characters long"),
    ],
)
def test_bad_wandb_project_names(project, says):
    with pytest.raises(ConfigError, match=says + r".*allowed: 1 to 128 characters, none of"):
        check_wandb_project(project)


def test_good_wandb_project_names():
    for project in ("labelbench", "my project (v2)", "p" * 128, "ünïcode-ok"):
        check_wandb_project(project)


def test_bad_project_stops_before_training_in_process(compose_fast, tmp_path, no_wandb_setup):
    cfg, choices = compose_fast("logger=wandb", "logger.project=a\\b")
    with pytest.raises(ConfigError, match=r"^logger\.project='a\\\\b' has characters"):
        run(cfg, choices)
    assert not (tmp_path / "results" / "runs").exists()
    assert not (tmp_path / "results" / "logs" / "wandb").exists()


def test_bad_project_on_the_command_line(tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "dataset=synthetic",
        "strategy=logreg",
        "logger=wandb",
        "logger.project=team/labels",
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "labelbench-run: error: logger.project='team/labels' has characters W&B does not"
        " allow (/); allowed: 1 to 128 characters, none of / \\ # ? % :"
    ]
    assert not list(results.glob("runs/*.json"))


def test_wandb_is_imported_only_when_a_wandb_run_logs(tmp_path):
    """Building either logger must not import wandb (0.5 s); only its first log does."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from conftest import compose_run
from labelbench.run import build
for logger in ("csv", "wandb"):
    cfg, _ = compose_run(["dataset=synthetic", "logger=" + logger], {str(tmp_path)!r})
    build(cfg, "0123456789abcdef")
print("wandb imported:", "wandb" in sys.modules)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "wandb imported: False" in proc.stdout


# -- TensorBoard and CSV --------------------------------------------------------------


def test_tensorboard_mirrors_curves_and_final_metrics(compose_fast, tmp_path):
    cfg, choices = compose_fast("strategy=supervised", "logger=tensorboard")
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    folder = tmp_path / "results" / "logs" / "tensorboard" / record.run_key
    scalars = tensorboard_scalars(folder)
    last = int(record.metrics["fit/steps"])
    assert sorted(scalars["train/loss"]) == [20, 40, 60][: len(scalars["train/loss"])]
    assert "val/acc" in scalars and "val/loss" in scalars
    for name, value in record.metrics.items():  # float32 on disk
        assert scalars[name][last] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    assert scalars["labels/count"][last] == record.labels["count"]
    hparams = (folder / "hparams.yaml").read_text()
    assert "max_steps: 60" in hparams and "_target_: labelbench.strategies" in hparams


def test_csv_mirrors_final_metrics_exactly(compose_fast, tmp_path):
    cfg, choices = compose_fast("strategy=supervised", "logger=csv")
    record = run(cfg, choices)
    folder = tmp_path / "results" / "logs" / "csv" / record.run_key
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(row["train/loss"] for row in rows) and any(row["val/acc"] for row in rows)
    final = rows[-1]
    assert int(final["step"]) == int(record.metrics["fit/steps"])
    assert {k: float(final[k]) for k in record.metrics} == record.metrics
    assert float(final["labels/count"]) == record.labels["count"]
    assert "seed: 0" in (folder / "hparams.yaml").read_text()


def test_logreg_run_is_mirrored_too(compose_fast, tmp_path):
    """No Lightning fit at all: the mirror still gets the record's metrics."""
    cfg, choices = compose_fast("strategy=logreg", "logger=tensorboard")
    record = run(cfg, choices)
    scalars = tensorboard_scalars(tmp_path / "results" / "logs" / "tensorboard" / record.run_key)
    assert scalars["test/acc"][0] == pytest.approx(record.metrics["test/acc"], rel=1e-6)


# -- progress -------------------------------------------------------------------------


class FakeStdout:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("tty", "ci", "term", "expected"),
    [
        (True, None, "xterm", True),
        (False, None, "xterm", False),  # piped, redirected, SLURM log files
        (True, "true", "xterm", False),
        (True, "1", "xterm", False),
        (True, "false", "xterm", True),
        (True, "0", "xterm", True),
        (True, "", "xterm", True),
        (True, None, "dumb", False),
    ],
)
def test_progress_bar_auto(monkeypatch, tty, ci, term, expected):
    monkeypatch.setattr(sys, "stdout", FakeStdout(tty))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("TERM", term)
    assert wants_progress_bar(None) is expected
    assert progress_settings(None)["enable_progress_bar"] is expected


def test_progress_bar_explicit_setting_wins(monkeypatch):
    from pytorch_lightning.callbacks import RichProgressBar

    monkeypatch.setattr(sys, "stdout", FakeStdout(False))
    monkeypatch.setenv("CI", "true")
    on = progress_settings(True)
    assert on["enable_progress_bar"] is True
    assert [type(c) for c in on["callbacks"]] == [RichProgressBar]
    monkeypatch.setattr(sys, "stdout", FakeStdout(True))
    monkeypatch.delenv("CI")
    assert progress_settings(False) == {"enable_progress_bar": False, "callbacks": []}


def test_run_trainer_keeps_strategy_callbacks():
    calls = []
    factory = RunTrainer(lambda **kw: calls.append(kw), logger="LOGGER", progress=True)
    factory(max_epochs=3, callbacks=["early-stopping"])
    factory(max_epochs=3)
    (first, second) = calls
    assert first["logger"] == "LOGGER" and first["max_epochs"] == 3
    assert first["callbacks"][0] == "early-stopping" and len(first["callbacks"]) == 2
    assert first["enable_progress_bar"] is True
    assert len(second["callbacks"]) == 1
    assert first["callbacks"][1] is not second["callbacks"][0]  # a fresh bar per Trainer


@pytest.mark.parametrize(("tty", "bar"), [(True, True), (False, False)])
def test_built_trainer_draws_rich_bar_only_on_a_terminal(compose_fast, monkeypatch, tty, bar):
    from pytorch_lightning.callbacks import RichProgressBar

    monkeypatch.setattr(sys, "stdout", FakeStdout(tty))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    cfg, _ = compose_fast("trainer.enable_progress_bar=null", "logger=none")
    trainer = build(cfg, "0123456789abcdef").trainer(max_epochs=1, callbacks=[])
    assert isinstance(trainer.progress_bar_callback, RichProgressBar) is bar
    assert (trainer.progress_bar_callback is None) is not bar
