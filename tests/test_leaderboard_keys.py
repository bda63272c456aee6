"""Leaderboards by any config key, the ‡ hint that names the differing keys, the warnings
where a conclusion would be unsafe, and model-free strategies beside every model. Real
records written with RecordStore, the real CLI through run_cli."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, write_records
from labelbench.results import RunRecord
from labelbench.results.dashboard import page_data, render_dashboard
from labelbench.results.leaderboard import (
    ABSENT,
    build_leaderboards,
    config_differences,
    min_pairs,
    parse_wanted,
    value_matches,
)
from labelbench.results.render import to_csv, to_html, to_json, to_markdown
from labelbench.results.table import load_rows

NETWORK = {"supervised", "fixmatch"}


def run(
    strategy: str = "supervised",
    seed: int = 0,
    acc: float = 0.8,
    *,
    dataset: str = "files[wine]",
    model: str | None = None,
    budget: int = 20,
    max_steps: int = 1500,
    best_step: float | None = None,
    status: str = "ok",
    strategy_extra: dict | None = None,
    curve: list | None = None,
) -> RunRecord:
    """A record as a real run leaves it: resolved config with paths, logger, seeds."""
    network = strategy in NETWORK
    model = model if model is not None else ("mlp" if network else "–")
    key = f"{dataset}-{model}-{strategy}-{budget}-{max_steps}-{seed}".replace("[", "_")
    metrics = {"test/acc": acc}
    if network:
        metrics["fit/steps"] = float(max_steps)
        if best_step is not None:
            metrics["fit/best_step"] = float(best_step)
    strategy_cfg = {"_target_": f"labelbench.strategies.{strategy}.X"}
    if network:
        strategy_cfg |= {"max_steps": max_steps, "optimizer": {"lr": 0.001}}
    strategy_cfg |= strategy_extra or {}
    ok = status == "ok"
    return RunRecord(
        run_key=key.replace("–", "none"),
        status=status,
        choices={"dataset": dataset, "regime": "clean", "budget": "total", "strategy": strategy, "model": model},
        seed=seed,
        split_seed=0,
        labels={"budget": str(budget), "budget_size": budget, "count": budget, "cost": float(budget), "indices": []},
        metrics=metrics if ok else {},
        directions={"test/acc": "max"} if ok else {},
        curve=curve or [],
        timings={"total_s": 1.0},
        versions={},
        git={},
        host={},
        config={
            "dataset": {"_target_": "labelbench.data.sources.Files", "path": f"data/{dataset[6:-1]}.csv"},
            "strategy": strategy_cfg,
            "model": {"hidden": [256]} if network else {},
            "seed": seed,
            "split_seed": 0,
            "paths": {"results_dir": f"/scratch/{key}"},  # differs per run: never a reason
            "logger": {"name": key},
        },
        error=None if ok else {"type": "FloatingPointError", "message": "nan"},
    )  # fmt: skip


def leaderboard(results: Path, *args: str):
    return run_cli("labelbench", "leaderboard", str(results), *args, cwd=results)


def boards(results: Path, **kw):
    return build_leaderboards(load_rows(results).rows, **kw)


@pytest.fixture
def two_lengths(tmp_path) -> Path:
    """One cell, two training lengths: supervised at max_steps 200 and 1500, seeds 0-2."""
    records = [
        run("supervised", seed, 0.7 + 0.01 * seed, max_steps=steps)
        for steps in (200, 1500)
        for seed in range(3)
    ]
    records += [run("logreg", seed, 0.6) for seed in range(3)]
    return write_records(tmp_path / "results", records)


def test_two_csvs_give_two_tables(tmp_path):
    results = write_records(
        tmp_path / "results",
        [run(seed=s, dataset=d) for d in ("files[wine]", "files[iris]") for s in range(2)],
    )
    proc = leaderboard(results)
    assert proc.returncode == 0, proc.stderr
    titles = [ln for ln in proc.stdout.splitlines() if ln.startswith("### ")]
    assert titles == [
        "### dataset=files[iris] · model=mlp — test/acc (higher is better)",
        "### dataset=files[wine] · model=mlp — test/acc (higher is better)",
    ]
    assert "‡" not in proc.stdout


def test_duplicates_name_the_differing_keys_and_the_filter_follows(two_lengths):
    proc = leaderboard(two_lengths)
    assert proc.returncode == 0, proc.stderr
    assert "(3) ‡3" in proc.stdout
    assert (
        "‡k: k more runs of a seed already counted; their configs differ in"
        " strategy.max_steps (200, 1500): --filter strategy.max_steps=... or"
        " --rows strategy,strategy.max_steps"
    ) in proc.stdout
    assert "paths" not in proc.stdout.split("‡k")[1]  # keys that identify no run are not named

    short = leaderboard(two_lengths, "--filter", "strategy.max_steps=200")
    assert short.returncode == 0, short.stderr
    assert "‡" not in short.stdout
    assert "| supervised (baseline) | **0.710 ± 0.010** (3)" in short.stdout
    assert "logreg" not in short.stdout  # logreg has no max_steps: '–' selects it
    (lb,) = boards(two_lengths, filters={"strategy.max_steps": "–"})
    assert lb.rows == [("logreg",)] and lb.scope["model"] == "–"

    split = leaderboard(two_lengths, "--rows", "strategy,strategy.max_steps")
    assert split.returncode == 0, split.stderr
    assert "‡" not in split.stdout
    table = split.stdout.split("\n\n")[1].splitlines()
    names = [ln.split("|")[1].strip() for ln in table if ln.startswith("| ")]
    assert names == ["strategy/strategy.max_steps", "logreg/– (model –)", "supervised/200", "supervised/1500"]  # fmt: skip


def test_differing_keys_in_json_and_csv(two_lengths):
    (lb,) = boards(two_lengths)
    cell = lb.cell(("supervised",), ("clean", "20"))
    assert cell.duplicates == 3 and cell.differs == {"strategy.max_steps": ["200", "1500"]}
    data = json.loads(to_json([lb]))
    row = next(r for r in data[0]["rows"] if r["row"] == "supervised")
    assert row["cells"]["clean 20"]["differs"] == {"strategy.max_steps": ["200", "1500"]}
    assert "duplicate" in to_csv([lb])


def test_many_differing_keys_are_cut_short(tmp_path):
    extra = {f"k{i}": i for i in range(5)}
    results = write_records(
        tmp_path / "results", [run(seed=0), run(seed=0, max_steps=10, strategy_extra=extra)]
    )
    (lb,) = boards(results)
    text = to_markdown([lb])
    assert "differ in strategy.k0 (0, –), strategy.k1 (1, –), strategy.k2 (2, –) and 3 more" in text
    assert config_differences([{"paths": {"a": 1}, "x": 1}, {"paths": {"a": 2}, "x": 1}]) == {}


def test_configs_are_read_only_when_asked(two_lengths, tmp_path):
    """No config key and no duplicates: no config is read; duplicates: only their cells'."""
    rows = load_rows(two_lengths).rows
    read: list[list[str]] = []

    def reader(paths):
        read.append(paths)
        from labelbench.results.table import load_configs

        return load_configs(paths)

    build_leaderboards(rows, filters={"strategy": "logreg"}, read_configs=reader)
    assert read == []
    build_leaderboards(rows, read_configs=reader)  # the supervised cell has duplicates
    assert len(read) == 1 and len(read[0]) == 6 and all("supervised" in p for p in read[0])


@pytest.mark.parametrize(
    ("have", "text", "equal"),
    [
        (200, "200", True),
        (200.0, "200", True),
        (200, "2e2", True),
        (0.001, "1e-3", True),
        (0.3, "0.3", True),
        (True, "true", True),
        (True, "1", False),
        (1, "true", False),
        (None, "null", True),
        (None, "None", False),
        ([256], "[256]", True),
        ([256], "256", False),
        ("data/wine.csv", "data/wine.csv", True),
        ("200", "200", True),  # a string compares as the string
        ("yes", "yes", True),
        ("a: b", "a: b", True),
        (ABSENT, "–", True),
        (ABSENT, "null", False),
    ],
)
def test_values_compare_as_yaml_scalars(have, text, equal):
    assert value_matches(have, parse_wanted(text)) is equal


def test_config_values_as_rows_and_filters(tmp_path):
    records = [
        run(seed=0, strategy_extra={"amp": True, "note": None}),
        run(seed=0, max_steps=200, strategy_extra={"amp": False}),
    ]
    results = write_records(tmp_path / "results", records)
    (lb,) = boards(results, row_fields=("strategy.note",), baseline=None)
    assert lb.rows == [("null",), ("–",)]
    (lb,) = boards(results, filters={"strategy.amp": "true", "model.hidden": "[256]"})
    assert lb.cell(("supervised",), ("clean", "20")).n == 1
    (lb,) = boards(results, row_fields=("strategy", "seed"), col_fields=("strategy.amp",))
    assert lb.cols == [("false",), ("true",)] and lb.rows == [("supervised", "0")]
    assert boards(results, filters={"strategy.amp": "maybe"}) == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--filter", "strategy.max_stepz=200"],
            "labelbench: error: --filter strategy.max_stepz: no record has this key; did you mean"
            " strategy.max_steps? fields: dataset, model, regime, budget, strategy, seed, status,"
            " or any config key (dataset.path, strategy._target_ ...)",
        ),
        (["--rows", "strategy,strategy.max_stepz"], "--rows strategy.max_stepz: no record has"),
        (["--cols", "strategyy"], "--cols strategyy: no record has this key; did you mean strategy?"),
        (["--filter", "max_steps=200"], "--filter max_steps: no record has this key; did you mean strategy.max_steps?"),
        (["--filter", "lr=0.001"], "did you mean strategy.optimizer.lr?"),
        (
            ["--filter", "strategy=logreg", "strategy.max_steps=200"],
            "--filter strategy.max_steps: no selected record has this key",
        ),
    ],
)  # fmt: skip
def test_unknown_key_refuses_in_one_line(two_lengths, tmp_path, args, line):
    write_records(
        two_lengths, [run(seed=0, dataset="files[iris]")]
    )  # two datasets: dataset.path varies
    proc = leaderboard(two_lengths, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and line in proc.stderr, proc.stderr


def test_few_seeds_warning(tmp_path):
    results = write_records(
        tmp_path / "results",
        [run(s, seed, 0.7 + 0.01 * seed * (s == "fixmatch")) for s in ("supervised", "fixmatch") for seed in range(3)],
    )  # fmt: skip
    proc = leaderboard(results)
    warning = (
        "- at most 3 paired seeds per cell: the Wilcoxon signed-rank test cannot reach"
        " p < 0.05 below 6, so no ▲/▼ can appear; run more seeds"
    )
    assert f"\n\nWarnings:\n{warning}\n" in proc.stdout
    assert "no ▲/▼" not in leaderboard(results, "--baseline", "").stdout  # nothing is tested
    (lb,) = boards(results, alpha=0.2)  # 2 / 2**3 = 0.25 >= 0.2: 4 seeds are needed
    assert lb.warnings and "below 4" in lb.warnings[0]
    (lb,) = boards(results, alpha=0.3)
    assert lb.warnings == []
    assert [min_pairs(a) for a in (0.05, 0.1, 0.01)] == [6, 5, 8]
    write_records(
        results, [run(s, seed, 0.7) for s in ("supervised", "fixmatch") for seed in range(3, 6)]
    )
    assert "Warnings:" not in leaderboard(results).stdout
    data = json.loads(to_json(boards(results)))
    assert data[0]["warnings"] == []


def test_still_improving_runs_are_marked_and_warned(tmp_path):
    records = [run("supervised", seed, best_step=1500) for seed in range(6)]
    records += [run("fixmatch", seed, best_step=1500 if seed == 0 else 900) for seed in range(6)]
    records += [run("logreg", seed) for seed in range(6)]
    results = write_records(tmp_path / "results", records)
    proc = leaderboard(results)
    assert "(6) ↗6" in proc.stdout and "Δ+0.000 ↗1" in proc.stdout
    assert "↗k: k runs still improving when training stopped" in proc.stdout
    (warning,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("- ")]
    assert "7 runs were still improving" in warning and "in fixmatch, supervised:" in warning
    assert "train.max_steps=" in warning
    assert "still_improving" in leaderboard(results, "--format", "csv").stdout
    html = leaderboard(results, "--format", "html").stdout
    assert '<div class="note warnings"><b>Warnings:</b><ul><li>7 runs were' in html
    json_cell = json.loads(leaderboard(results, "--format", "json").stdout)[0]["rows"][0]
    assert json_cell["cells"]["clean 20"]["still_improving"] == 1

    calm = write_records(tmp_path / "calm", [run("supervised", s, best_step=900) for s in range(6)])
    out = leaderboard(calm).stdout
    assert "↗" not in out and "Warnings:" not in out


def test_aubc_needs_two_budgets(tmp_path):
    one = write_records(tmp_path / "one", [run(s, seed) for s in ("supervised", "logreg") for seed in range(6)])  # fmt: skip
    text = leaderboard(one).stdout
    assert "AUBC" not in text and "→target" not in text and "avg rank" in text
    (lb,) = boards(one)
    assert lb.groups == [("clean",)] and lb.aubc_groups == []  # the curves keep their group

    records = [run("supervised", seed, 0.5 + b / 1000, budget=b) for b in (20, 100) for seed in range(6)]  # fmt: skip
    records += [run("logreg", seed, 0.6) for seed in range(6)]  # one budget
    al = run("fixmatch", 0, 0.9, budget=100)  # one budget, but a curve of its rounds
    al.curve = [{"labels": 20, "test/acc": 0.5}, {"labels": 100, "test/acc": 0.9}]
    results = write_records(tmp_path / "two", [*records, al])
    text = leaderboard(results).stdout
    table = text.split("\n\n")[1].splitlines()
    rows = {ln.split("|")[1].strip(): ln.split("|")[-3:-1] for ln in table}
    assert [c.strip() for c in rows["logreg (model –)"]] == ["–", "–"]
    assert rows["supervised (baseline)"][0].strip() == f"{(0.52 + 0.6) / 2:.3f}"
    assert rows["fixmatch"][0].strip() == "0.700"
    assert "AUBC: area under the budget curve / budget range (–: a single budget, no curve)" in text


def test_model_free_rows_beside_every_model(tmp_path):
    records = [
        run("supervised", seed, 0.8, model=m) for m in ("mlp", "cnn_small") for seed in (0, 1)
    ]
    records += [run("logreg", seed, 0.6) for seed in range(2)]
    records += [run("knn", 0, 0.5, dataset="files[iris]")]  # no network table for iris
    records += [run("logreg", 2, 0.5, status="failed")]
    results = write_records(tmp_path / "results", records)  # fmt: skip
    proc = leaderboard(results)
    assert proc.returncode == 0, proc.stderr
    titles = [ln[4:].split(" — ")[0] for ln in proc.stdout.splitlines() if ln.startswith("### ")]
    assert titles == [
        "dataset=files[iris] · model=–",
        "dataset=files[wine] · model=cnn_small",
        "dataset=files[wine] · model=mlp",
    ]
    tables = proc.stdout.split("### ")[1:]
    assert "| knn " in tables[0] and "(model –)" not in tables[0].split("\n\n")[1]
    for table in tables[1:]:
        assert "| logreg (model –)" in table and "✗1" in table
        assert "(model –): a strategy that trains no network" in table
    cnn, mlp = boards(results, filters={"dataset": "files[wine]"})
    assert mlp.rows == cnn.rows == [("logreg", "–"), ("supervised",)]
    assert mlp.cell(("logreg", "–"), ("clean", "20")).delta is not None  # tested vs supervised

    only_mlp = leaderboard(results, "--filter", "model=mlp")
    titles = [ln for ln in only_mlp.stdout.splitlines() if ln.startswith("### ")]
    assert len(titles) == 2 and "model=cnn_small" not in only_mlp.stdout
    assert "| logreg (model –)" in only_mlp.stdout
    only_free = boards(results, filters={"model": "–"})
    assert [lb.scope["model"] for lb in only_free] == ["–", "–"]
    assert [r for lb in only_free for r in lb.rows] == [("knn",), ("logreg",)]

    by_model = boards(results, col_fields=("model",), filters={"dataset": "files[wine]"})
    assert by_model[0].cols == [("cnn_small",), ("mlp",), ("–",)]
    assert by_model[0].rows == [("logreg",), ("supervised",)]


def test_dashboard_follows_config_key_filters(two_lengths):
    loaded = load_rows(two_lengths)
    filters = {"strategy.max_steps": "200"}
    built = build_leaderboards(loaded.rows, filters=filters)
    page = render_dashboard(loaded, built, filters=filters)
    data = page_data(page)
    assert len(data["runs"]["key"]) == 3
    assert "3 of the 9 readable records" in page
    assert not any("logreg" in name for b in data["boards"] for name in b["names"])
    assert "‡" not in to_html(built)


def test_configs_are_read_in_workers_for_large_batches(two_lengths, monkeypatch):
    from labelbench.results import table

    paths = sorted(str(p) for p in (two_lengths / "runs").glob("*.json"))
    (two_lengths / "runs" / "broken.json").write_text("{not json")
    paths.append(str(two_lengths / "runs" / "broken.json"))
    serial = table.load_configs(paths)
    monkeypatch.setattr(table, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(table.os, "cpu_count", lambda: 2)
    assert table.load_configs(paths) == serial
    assert serial[-1] is None and serial[0]["dataset"]["path"] == "data/wine.csv"


def test_dashboard_cli_with_a_config_key_filter(two_lengths, tmp_path):
    out = tmp_path / "dash.html"
    proc = run_cli(
        "labelbench", "dashboard", str(two_lengths), "--filter", "strategy.max_steps=1500",
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert "3 of the 9 readable records" in page and "‡" not in page
