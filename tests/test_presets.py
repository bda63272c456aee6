"""Experiment presets (labelbench.presets): every preset is registered, and every sweep of
every preset composes and prepares (components built, data loaded, labels bought, model and
strategy checked) with hub datasets replaced by generated stand-ins of the real shape,
columns and splits, read by the real loader (`dataset.name=<folder>`: the test hook; no
second code path); `labelbench reproduce` end to end on a CPU twin, its dry run and refusals.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import torch

from conftest import CONF_DIR, run_here
from labelbench import cli, presets
from labelbench.config import run_key
from labelbench.data.standin import SHAPES, standin_overrides
from labelbench.run import compose, prepare

YAMLS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
N_TRAIN = 240  # stand-in training items: room for DivideMix's and co-teaching's batches


def test_every_preset_yaml_is_registered_and_every_registered_preset_has_one():
    assert set(YAMLS) == set(presets.PRESETS)


# The papers' protocols and their CPU twins: the header of each YAML lists the
# `labelbench-run -m` lines of its sweeps (the digits presets' headers show usage examples).
DOCUMENTED = [
    n for n in YAMLS if n.startswith("classic_") or "cifar" in n or n.startswith("repro_")
]


def header_sweeps(name: str) -> list[list[str]]:
    """The `labelbench-run -m ...` lines of the preset YAML's header, as shlex reads them."""
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    return [shlex.split(m) for m in re.findall(r"^#\s+labelbench-run -m (.*)$", text, re.M)]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_the_header_documents_the_registrys_sweeps(name):
    """What `labelbench reproduce` runs is what the preset's header says, in order."""
    want = [[f"experiment={name}", *sweep] for sweep in presets.PRESETS[name].sweeps]
    assert header_sweeps(name) == want


def first_runs(name: str) -> list[list[str]]:
    """The first run (seed 0) of each sweep of the preset: every sweep's own overrides."""
    return [presets.expand_sweep(name, sweep)[0] for sweep in presets.get(name).sweeps]


# The first sweep of every protocol preset and twin in the default suite (the stand-in
# path), the other sweeps (each sweep's first run: its own overrides) and the digits
# presets (their runs are exercised throughout the suite) marked slow.
CASES = [
    pytest.param(
        name, run, marks=() if i == 0 and name in DOCUMENTED else pytest.mark.slow, id=" ".join(run)
    )
    for name in YAMLS
    for i, run in enumerate(first_runs(name))
]


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("standins")


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_every_sweep_prepares_on_same_shape_data(name, overrides, standin_dir, tmp_path):
    cfg, _ = compose(
        [
            *standin_overrides(overrides, standin_dir, n_train=N_TRAIN),
            "logger=none",
            f"paths.results_dir={tmp_path}",
        ]
    )
    if cfg.budget.get("total") and cfg.dataset.get("name", "").startswith("/"):
        cfg.budget.total = min(int(cfg.budget.total), 40)  # the stand-in holds 240 items
        if "initial" in cfg.strategy:
            cfg.strategy.initial, cfg.strategy.query_size = 20, 10
    prepared = prepare(cfg, run_key(cfg))
    task = prepared.task
    folder = str(cfg.dataset.get("name", ""))
    if folder.startswith("/"):  # a stand-in: the real dataset's shape and classes
        shape, classes = SHAPES[folder.rsplit("/", 1)[-1]]
        assert tuple(task.input_shape) == (shape[2], shape[0], shape[1])
        assert task.num_classes == classes
        assert float(task.x.min()) >= 0.0 and float(task.x.max()) <= 1.0
    net = prepared.parts.model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
    net.eval()
    with torch.no_grad():
        out = net(torch.as_tensor(task.x[:2].copy()).reshape(2, *task.input_shape))
    assert tuple(out.shape) == (2, task.num_classes)


def test_expand_lists_every_run_once_with_the_command_line_winning():
    runs = presets.expand("repro_ssl_digits")
    assert len(runs) == len({tuple(r) for r in runs}) == 9 * 2 * 3  # methods x budgets x seeds
    pl = [r for r in runs if "strategy=pseudo_label" in r]
    assert len(pl) == 6 and all("strategy.mu=1" in r for r in pl)
    only = presets.expand("repro_ssl_digits", ["seed=0", "budget.total=40"])
    assert len(only) == 9 and all("seed=0" in r and "budget.total=40" in r for r in only)
    # a method narrows every sweep to its runs: the grid's and its own sweep's, no other
    pl = presets.expand("repro_ssl_digits", ["strategy=pseudo_label,fixmatch", "seed=1"])
    assert sorted(r[1] for r in pl) == ["strategy=fixmatch"] * 2 + ["strategy=pseudo_label"] * 2
    assert all("strategy.mu=1" in r for r in pl if "strategy=pseudo_label" in r)
    assert presets.expand("repro_ssl_digits", ["budget.total=41"]) == []


def test_dry_run_lists_runs_commands_and_the_compute_they_need(tmp_path, monkeypatch, capsys):
    table = tmp_path / "step_seconds.csv"
    table.write_text(
        "preset,strategy,model,device,seconds_per_step\n"
        "repro_ssl_digits,fixmatch[schedule=cosine],cnn_small,CPU (test),0.5\n"
    )
    monkeypatch.setattr(presets, "COMPUTE", table)
    args = ["reproduce", "repro_ssl_digits", "strategy=fixmatch,supervised", "seed=0"]
    assert cli.main([*args, "budget.total=40", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# repro_ssl_digits: ")
    todo = [line for line in out.splitlines() if line.startswith("todo ")]
    assert len(todo) == 2  # the user's methods narrow the preset's sweeps to their runs
    fixmatch = next(line for line in todo if " fixmatch[schedule=cosine] " in line)
    assert "clean 40 seed=0 steps=1000 est=8 min" in fixmatch
    assert "est=not measured" in next(line for line in todo if " supervised" in line)
    assert (
        "compute to go: 8 min for 1 of 2 runs to do (seconds per step measured on CPU (test)" in out
    )
    assert (
        "labelbench-run -m experiment=repro_ssl_digits strategy=supervised,fixmatch seed=0" in out
    )
    assert "strategy=flexmatch" not in out


def test_reproduce_runs_a_twin_and_writes_its_page_beside_published_numbers(
    tmp_path, monkeypatch, capsys
):
    """End to end on the CPU twin, one cheap cell: the sweeps run into the store, the page
    holds the commands and the table with the published value beside ours; a second call
    skips what is recorded."""
    published = tmp_path / "published"
    published.mkdir()
    (published / "repro_ssl_digits.csv").write_text(
        "dataset,model,regime,budget,strategy,metric,value,spread,seeds,reported,source\n"
        "digits,cnn_small,clean,40,supervised[schedule=cosine],test/acc,0.99,,,99 (accuracy %),"
        "a test\n"
    )
    monkeypatch.setattr(presets, "PUBLISHED", published)
    entry = presets.PRESETS["repro_ssl_digits"]
    monkeypatch.setitem(
        presets.PRESETS, "repro_ssl_digits", presets.Preset(entry.about, ((),), entry.board)
    )
    store, page = tmp_path / "store", tmp_path / "page.md"
    args = [
        "reproduce", "repro_ssl_digits", "strategy=supervised", "seed=0", "budget.total=40",
        "train.max_steps=20", "strategy.eval_every=10", "--results", str(store), "--out", str(page),
    ]  # fmt: skip
    assert cli.main(args) == 0
    records = list((store / "runs").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["status"] == "ok"
    text = page.read_text()
    assert text.startswith("# Reproduction: repro_ssl_digits\n")
    assert "labelbench-run -m experiment=repro_ssl_digits strategy=supervised seed=0" in text
    assert "budget.total=40 train.max_steps=20 strategy.eval_every=10 paths.results_dir=" in text
    assert "· pub 0.990" in text and "⚑" in text  # ours is far below 0.99 after 20 steps
    assert f"--published {published / 'repro_ssl_digits.csv'}" in text
    before = records[0].stat().st_mtime_ns
    # The second call's sweep: the same labelbench-run entry point in this process (run_here;
    # the first call launched the real console script), without a second torch import.
    real_run, swept = subprocess.run, []

    def sweep_here(cmd, **kwargs):
        if not str(cmd[0]).endswith("labelbench-run"):
            return real_run(cmd, **kwargs)
        swept.append(cmd)
        return run_here("labelbench-run", *cmd[1:], cwd=kwargs["cwd"])

    monkeypatch.setattr(subprocess, "run", sweep_here)
    assert cli.main(args) == 0  # resumes: the recorded run is skipped, the page rewritten
    assert len(swept) == 1 and records[0].stat().st_mtime_ns == before
    assert page.read_text() == text  # the same table, the recorded run's
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuch"], "preset 'nosuch' is not one of: demo, "),
        (["repro_ssl_digits", "paths.results_dir=x"], "paths.results_dir=x: reproduce sets this"),
        (["repro_ssl_digits", "strategy=fixmach", "--dry-run"], "strategy=fixmach leaves no run"),
        (["repro_ssl_digits", "model=nosuch", "--dry-run"], "model=nosuch"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, says, tmp_path, capsys):
    assert cli.main(["reproduce", *args, "--results", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labelbench: error: ") and says in err[0]
    assert not (tmp_path / "s").exists()
