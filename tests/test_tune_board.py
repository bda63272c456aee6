"""Tuned rows in leaderboards: trial records are the cost of the tuned runs, never a cell;
the cost shows under the table (md/html/tex), in CSV/JSON columns, and warnings flag
unequal or incomplete tuning. Real records in a real store, read as the CLI reads them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import msgspec
import pytest

from conftest import run_cli, write_records
from labelbench.results import RunRecord
from labelbench.results.dashboard import metrics_with_direction, page_data, render_dashboard
from labelbench.results.leaderboard import build_leaderboards
from labelbench.results.render import to_csv, to_html, to_json, to_markdown, to_tex
from labelbench.results.table import CACHE_VERSION, _parse, load_rows, row_from_record

STUDY = "fixmatch-3f2a9c01"
TUNED = {0: 0.74, 1: 0.76, 2: 0.75}  # fixmatch[tuned] test/acc by seed
DEFAULT = {"supervised": {0: 0.60, 1: 0.62, 2: 0.61}, "fixmatch": {0: 0.70, 1: 0.71, 2: 0.69}}
# study trials: number -> (status, fit_s); trial 3 failed, trial 5 came after the best was
# picked (tuned runs say 5 trials), so it is not part of their cost
TRIALS = {0: ("ok", 10.0), 1: ("ok", 11.0), 2: ("ok", 12.0), 3: ("failed", 2.5), 4: ("ok", 14.0)}
LATE = 5


def run_record(
    strategy: str,
    seed: int,
    *,
    acc: float | None = None,
    status: str = "ok",
    tune: dict | None = None,
    fit_s: float = 1.0,
    budget: str = "40",
) -> RunRecord:
    """A record as a run writes it: a trial (val metrics only), a tuned run or a default run;
    `tune` is config.tune (None: an older record without the node)."""
    trial = tune is not None and tune.get("trial") is not None
    if status != "ok":
        metrics = {}
    elif trial:
        metrics = {"val/acc": 0.5 + seed / 100, "fit/steps": 100.0}
    else:
        metrics = {"test/acc": acc, "val/acc": acc}
    config = {"strategy": {"name": strategy}, "seed": seed, "trainer": {"accelerator": "cpu"}}
    if tune is not None:
        config["tune"] = tune
    number = tune.get("trial") if trial else None
    return RunRecord(
        run_key=f"{strategy}-{budget}-{seed}-{number}-{(tune or {}).get('study')}",
        status=status,
        choices={"dataset": "toy", "regime": "clean", "budget": "total", "strategy": strategy,
                 "model": "mlp"},
        seed=seed,
        split_seed=0,
        labels={"budget": budget, "budget_size": int(budget), "count": int(budget),
                "val_count": 10, "val_paid": False, "cost": float(budget), "indices": []},
        metrics=metrics,
        directions={m: "max" for m in metrics if m.endswith("acc")},
        curve=[],
        timings={"fit_s": fit_s, "total_s": fit_s + 1.0},
        versions={},
        git={},
        host={},
        config=config,
        error={"type": "RuntimeError", "message": "trial diverged"} if status != "ok" else None,
    )  # fmt: skip


def study_records(
    study: str, strategy: str, trials: dict, planned: int, tuned: dict, budget: str = "40"
) -> list:
    """A study's trial records and its tuned runs (`tuned`: seed -> test/acc)."""
    out = [
        run_record(strategy, 0, status=status, fit_s=fit_s, budget=budget,
                   tune={"study": study, "trial": n, "trials": None})
        for n, (status, fit_s) in trials.items()
    ]  # fmt: skip
    out += [
        run_record(f"{strategy}[tuned]", seed, acc=acc, budget=budget,
                   tune={"study": study, "trial": None, "trials": planned})
        for seed, acc in tuned.items()
    ]  # fmt: skip
    return out


def default_records() -> list:
    """Ordinary runs: one set without config.tune (older records), one with it all null."""
    out = [run_record("supervised", s, acc=a) for s, a in DEFAULT["supervised"].items()]
    null = {"study": None, "trial": None, "trials": None}
    out += [run_record("fixmatch", s, acc=a, tune=null) for s, a in DEFAULT["fixmatch"].items()]
    return out


def table_line(md: str, row: str) -> str:
    """The first Markdown table line of `row`."""
    return next(ln for ln in md.splitlines() if ln.startswith(f"| {row} "))


@pytest.fixture
def store(tmp_path) -> Path:
    trials = {**TRIALS, LATE: ("ok", 100.0)}
    records = default_records() + study_records(STUDY, "fixmatch", trials, 5, TUNED)
    return write_records(tmp_path / "results", records)


def test_rows_carry_study_and_trial_and_the_cache_keeps_them(store):
    first = load_rows(store)
    assert not first.problems
    by_path = {r["path"]: r for r in first.rows}
    trials = [r for r in first.rows if r.get("trial") is not None]
    assert sorted(r["trial"] for r in trials) == [0, 1, 2, 3, 4, LATE]
    assert {(r["study"], r["tuned_trials"]) for r in trials} == {(STUDY, None)}
    assert sorted(r["fit_s"] for r in trials) == sorted([*(f for _, f in TRIALS.values()), 100.0])
    tuned = [r for r in first.rows if r["strategy"] == "fixmatch[tuned]"]
    assert [(r["study"], r["trial"], r["tuned_trials"]) for r in tuned] == [(STUDY, None, 5)] * 3
    # ordinary runs, with no tune node or an all-null one, read None (and keep a small dict)
    plain = [r for r in first.rows if STUDY not in r["run_key"]]
    assert len(plain) == 6
    assert all(r.get(k) is None for r in plain for k in ("study", "trial", "tuned_trials"))
    assert all(len(r) <= 21 for r in plain)
    # the fast decode reads what the full parse reads
    for path, row in by_path.items():
        whole = row_from_record(RunRecord.from_json(Path(path).read_text()), path)
        assert _parse(path) == (row, None) and whole == row
    # the second load comes from the cache, which holds the tuning fields
    cache = msgspec.msgpack.decode((store / ".cache" / "records.msgpack").read_bytes())
    assert cache["version"] == CACHE_VERSION == 9
    assert sorted(e[3]["trial"] for e in cache["entries"] if e[3].get("trial") is not None) == [
        0, 1, 2, 3, 4, LATE,
    ]  # fmt: skip
    again = load_rows(store)
    assert {r["path"]: r for r in again.rows} == by_path


def test_trials_are_the_cost_of_the_tuned_cell_never_a_cell(store):
    rows = load_rows(store).rows
    (lb,) = build_leaderboards(rows)
    assert lb.rows == [("fixmatch",), ("fixmatch[tuned]",), ("supervised",)]
    assert not any(r.get("trial") is not None for _, _, r in lb.entries)
    assert len(lb.entries) == 9  # 3 seeds x 3 rows; the 6 trial records nowhere
    col = ("clean", "40")
    plain = lb.cell(("fixmatch",), col)
    assert (plain.n, plain.failed) == (3, 0) and not lb.failed_runs  # the failed trial too
    tuned = lb.cell(("fixmatch[tuned]",), col)
    assert tuned.values == TUNED and tuned.mean == pytest.approx(0.75) and tuned.best
    assert lb.avg_rank[("fixmatch[tuned]",)] == 1.0
    assert set(lb.tuning) == {(("fixmatch[tuned]",), col)}
    t = lb.tuning[(("fixmatch[tuned]",), col)]
    assert (t.studies, t.planned, t.trials, t.failed, t.missing) == ((STUDY,), 5, 5, 1, 0)
    assert t.fit_s == pytest.approx(49.5)  # trials 0-4 (the failed one's 2.5 s included)
    assert t.device_s == pytest.approx(49.5 + 5)  # total_s = fit_s + 1 on one CPU
    assert not any("tuning" in w or "trial records" in w for w in lb.warnings)


def test_filters_that_drop_the_trials_keep_their_cost(store):
    rows = load_rows(store).rows
    for filters in ({"strategy": "fixmatch[tuned]"}, {"status": "ok", "seed": "1"}):
        (lb,) = build_leaderboards(rows, filters=filters, baseline=None)
        t = lb.tuning[(("fixmatch[tuned]",), ("clean", "40"))]
        assert (t.trials, t.failed, t.fit_s) == (5, 1, pytest.approx(49.5)), filters
    (only,) = build_leaderboards(rows, filters={"strategy": "fixmatch"})
    assert (
        only.rows == [("fixmatch",)]
        and only.tuning == {}
        and only.cell(("fixmatch",), ("clean", "40")).values == DEFAULT["fixmatch"]
    )


def test_markdown_csv_json_html_tex_show_the_cost(store):
    (lb,) = build_leaderboards(load_rows(store).rows)
    line = (
        "fixmatch[tuned] @ clean 40: study fixmatch-3f2a9c01, 5 trials (1 failed), 50 s fitting,"
        " 54 device-s"
    )
    md = to_markdown([lb])
    assert f"Tuning cost:\n- {line}\n" in md
    assert "[tuned]: hyper-parameters chosen by a study of trials" in md
    assert "| **0.750 ± 0.010** (3) Δ+0.140 |" in table_line(md, "fixmatch[tuned]")
    table = list(csv.DictReader(io.StringIO(to_csv([lb]))))
    by_row = {r["row"]: r for r in table}
    tuned = by_row["fixmatch[tuned]"]
    assert (tuned["tuning_studies"], tuned["tuning_planned"], tuned["tuning_trials"]) == (
        STUDY, "5", "5",
    )  # fmt: skip
    assert (tuned["tuning_failed"], float(tuned["tuning_fit_s"])) == ("1", 49.5)
    assert float(tuned["tuning_device_s"]) == 54.5
    assert all(by_row[n][c] == "" for n in DEFAULT for c in tuned if c.startswith("tuning_"))
    cells = {r["row"]: r["cells"]["clean 40"] for r in json.loads(to_json([lb]))[0]["rows"]}
    assert cells["supervised"]["tuning"] is None
    assert cells["fixmatch[tuned]"]["tuning"] == {
        "studies": [STUDY], "planned": 5, "trials": 5, "failed": 1, "fit_s": 49.5,
        "device_s": 54.5,
    }  # fmt: skip
    assert f"<li>{line}</li>" in to_html([lb])
    assert f"% tuning: {line}\n" in to_tex([lb])


def test_boards_without_tuning_render_no_tuning_parts(tmp_path):
    store = write_records(tmp_path / "results", default_records())
    (lb,) = build_leaderboards(load_rows(store).rows)
    assert lb.tuning == {}
    outputs = [to_markdown([lb]), to_csv([lb]), to_json([lb]), to_html([lb]), to_tex([lb])]
    assert not any("tuning" in text.lower() or "[tuned]" in text for text in outputs)


def test_unequal_trial_budgets_in_one_column_warn(tmp_path):
    records = default_records() + study_records(STUDY, "fixmatch", TRIALS, 5, TUNED)
    sup = {n: ("ok", 3.0) for n in range(3)}
    records += study_records("supervised-0c0ffee0", "supervised", sup, 3, {0: 0.65, 1: 0.66})
    # at budget 80 both studies had 5 trials: no warning there
    five = {n: ("ok", 1.0) for n in range(5)}
    for name in ("fixmatch", "supervised"):
        records += study_records(f"{name}-b80", name, five, 5, {0: 0.8}, budget="80")
    (lb,) = build_leaderboards(load_rows(write_records(tmp_path / "r", records)).rows)
    warned = [w for w in lb.warnings if w.startswith("tuning budgets differ")]
    assert warned == [
        "tuning budgets differ in clean 40: fixmatch[tuned] 5 trials, supervised[tuned] 3 trials"
        " — an unequal comparison; tune every row with the same number of trials"
    ]
    assert lb.tuning[(("supervised[tuned]",), ("clean", "40"))].trials == 3
    assert lb.tuning[(("supervised[tuned]",), ("clean", "80"))].planned == 5
    assert f"- {warned[0]}" in to_markdown([lb])


def test_missing_trial_records_warn(tmp_path):
    found = {n: TRIALS[n] for n in (0, 1, 3)}  # trials 2 and 4 not in this store
    records = default_records() + study_records(STUDY, "fixmatch", found, 5, TUNED)
    (lb,) = build_leaderboards(load_rows(write_records(tmp_path / "r", records)).rows)
    t = lb.tuning[(("fixmatch[tuned]",), ("clean", "40"))]
    assert (t.trials, t.failed, t.missing, t.fit_s) == (3, 1, 2, pytest.approx(23.5))
    assert (
        "fixmatch[tuned] @ clean 40, study fixmatch-3f2a9c01: 3 of 5 trial records in this store:"
        " the tuning cost shown counts only the trials found; load the store that holds the"
        " studies' trial records"
    ) in lb.warnings
    assert "- fixmatch[tuned] @ clean 40: study fixmatch-3f2a9c01, 3 of 5 trials (1 failed)" in (
        to_markdown([lb])
    )


def test_cli_prints_the_tuned_row_and_its_cost(store):
    proc = run_cli("labelbench", "leaderboard", str(store), cwd=store)
    assert proc.returncode == 0, proc.stderr
    assert "| **0.750 ± 0.010** (3) Δ+0.140 |" in table_line(proc.stdout, "fixmatch[tuned]")
    assert (
        "- fixmatch[tuned] @ clean 40: study fixmatch-3f2a9c01, 5 trials (1 failed), 50 s fitting,"
        " 54 device-s\n"
    ) in proc.stdout
    assert "Failed runs" not in proc.stdout  # the failed trial is a cost, not a failed run


def test_dashboard_legend_carries_the_cost_and_trials_add_no_metric(store):
    loaded = load_rows(store)
    assert metrics_with_direction(loaded.rows) == ["test/acc", "val/acc"]
    # a metric only trials carry makes no board (and no 'left out' note)
    trial = next(r for r in loaded.rows if r.get("trial") is not None)
    assert "val/only" not in metrics_with_direction([{**trial, "directions": {"val/only": "max"}}])
    boards = build_leaderboards(loaded.rows)
    data = page_data(render_dashboard(loaded, boards, generated="now"))
    (board,) = data["metrics"]["test/acc"]["boards"]
    assert board["legend"].endswith(
        "; Tuning cost of fixmatch[tuned] @ clean 40: study fixmatch-3f2a9c01, 5 trials"
        " (1 failed), 50 s fitting, 54 device-s"
    )
