"""Published numbers beside ours (`labelbench leaderboard --published`): the CSV loader and
its one-line refusals, matching published rows to leaderboard cells (labels, decorated
strategy names, blank and model-free models), the difference and the tolerance flag, every
renderer, the dashboard, and the CLI end to end. Real records written with RecordStore,
hand-made CSVs in tmp_path."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import labelbench
from conftest import write_records
from labelbench import cli
from labelbench.results import RunRecord, published
from labelbench.results.dashboard import page_data, render_dashboard
from labelbench.results.leaderboard import build_leaderboards
from labelbench.results.published import (
    COLUMNS,
    PublishedError,
    compare,
    load_published,
    resolve_paths,
)
from labelbench.results.render import (
    CSV_COLUMNS,
    PUBLISHED_COLUMNS,
    to_csv,
    to_html,
    to_json,
    to_markdown,
    to_tex,
)
from labelbench.results.table import load_rows

SRC = "Paper (2022) Table 2"
HEADER = ",".join(COLUMNS)


def rec(
    strategy: str,
    seed: int,
    acc: float,
    *,
    dataset: str = "cifar10",
    model: str = "wrn28_2",
    regime: str = "clean",
    budget: str = "40",
) -> RunRecord:
    """A record as a run leaves it: YAML stems in choices, labels in the label accounting."""
    size = 1000 if budget == "full" else int(budget)
    return RunRecord(
        run_key=re.sub(r"[^A-Za-z0-9-]", "_", f"{dataset}-{model}-{regime}-{budget}-{strategy}-{seed}"),
        status="ok",
        choices={"dataset": dataset, "regime": regime.split("(")[0], "budget": "total",
                 "strategy": strategy, "model": model},
        seed=seed,
        split_seed=0,
        labels={"budget": budget, "budget_size": size, "count": size, "cost": float(size),
                "regime": regime, "indices": []},
        metrics={"test/acc": acc},
        directions={"test/acc": "max"},
        curve=[],
        timings={"total_s": 1.0},
        versions={},
        git={},
        host={},
        config={"seed": seed},
    )  # fmt: skip


def write_csv(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path) -> Path:
    records = [
        rec("supervised[loss=gce]", 0, 0.90, regime="symmetric(0.5)"),
        rec("supervised[loss=gce]", 1, 0.92, regime="symmetric(0.5)"),  # mean 0.91
        rec("fixmatch", 0, 0.95, budget="full"),
        rec("supervised", 0, 0.30),
        rec("logreg", 0, 0.50, model="–"),  # model-free: a row beside wrn28_2's table
    ]
    return write_records(tmp_path / "results", records)


@pytest.fixture
def pub_csv(tmp_path) -> Path:
    return write_csv(
        tmp_path / "pub" / "paper.csv",
        f"cifar10,wrn28_2,symmetric(0.5),40,supervised[loss=gce],test/acc,0.917,,3,91.7 (acc %),{SRC}",
        f"cifar10,,clean,full,fixmatch,test/acc,0.96,0.004,5,96.0±0.4 (acc %),{SRC}",
        f'cifar10,,clean,40,logreg,test/acc,0.55,,,"45.0 (error, %)",{SRC}',
        f"cifar10,,clean,40,supervised,test/acc,0.25,,,25.0,{SRC}",  # superseded by the next
        "cifar10,wrn28_2,clean,40,supervised,test/acc,0.28,,,28.0,Other (2023)",
        f"cifar10,wrn28_8,clean,full,fixmatch,test/acc,0.97,,,97.0,{SRC}",  # no such table
        f"cifar10,wrn28_2,clean,4000,fixmatch,test/acc,0.957,,,95.7,{SRC}",  # budget not run
        f"cifar100,,clean,400,fixmatch,test/acc,0.5,,,50.0,{SRC}",  # dataset not run
        f"cifar10,,clean,40,fixmatch,test/nll,0.3,,,0.3,{SRC}",  # another metric
    )


def compared(results: Path, csv_path: Path, **kw):
    boards = build_leaderboards(load_rows(results, use_cache=False).rows)
    found = compare(boards, load_published([csv_path]), **kw)
    return boards, found


def test_cells_match_by_the_texts_the_table_shows(results, pub_csv):
    (lb,), found = compared(results, pub_csv)
    got = {(rk, ck): c for (rk, ck), c in lb.published.items()}
    gce = got[(("supervised[loss=gce]",), ("symmetric(0.5)", "40"))]
    assert gce.published.value == 0.917 and gce.ours == pytest.approx(0.91)
    assert gce.delta == pytest.approx(-0.007) and not gce.flagged  # 0.007 <= 0.02
    full = got[(("fixmatch",), ("clean", "full"))]  # budget 'full', blank model
    assert full.delta == pytest.approx(-0.01) and full.limit == pytest.approx(0.008)
    assert full.flagged  # 0.01 > 2 x 0.004
    free = got[(("logreg", "–"), ("clean", "40"))]  # model-free row, blank model
    assert free.delta == pytest.approx(-0.05) and free.flagged
    base = got[(("supervised",), ("clean", "40"))]
    assert base.published.value == 0.28 and base.published.source == "Other (2023)"
    assert (("fixmatch",), ("clean", "40")) not in got  # nothing published there
    assert len(got) == 4
    not_run = [(p.dataset, p.model, p.budget) for p in found.not_run]
    assert not_run == [("cifar10", "wrn28_8", "full"), ("cifar10", "wrn28_2", "4000"),
                       ("cifar100", "", "400")]  # fmt: skip
    assert found.notes == []


def test_a_specific_model_does_not_match_another_models_table(tmp_path):
    results = write_records(tmp_path / "r", [rec("fixmatch", 0, 0.9, model="wrn28_8")])
    csv_path = write_csv(
        tmp_path / "p.csv", f"cifar10,wrn28_2,clean,40,fixmatch,test/acc,0.9,,,90,{SRC}"
    )
    (lb,), found = compared(results, csv_path)
    assert lb.published == {} and [p.model for p in found.not_run] == ["wrn28_2"]


def test_not_run_follows_the_field_filters(results, pub_csv):
    boards = build_leaderboards(load_rows(results, use_cache=False).rows)
    rows = load_published([pub_csv])
    only = compare(boards, rows, filters={"dataset": "cifar10", "seed": "0"}).not_run
    assert {p.dataset for p in only} == {"cifar10"} and len(only) == 2
    by_name = compare(boards, rows, filters={"regime": "symmetric"}).not_run
    assert by_name == []  # 'symmetric' keeps symmetric(0.5) rows; all of them ran
    by_model = compare(boards, rows, filters={"model": "wrn28_8"}).not_run
    assert [(p.model, p.dataset) for p in by_model] == [("wrn28_8", "cifar10"), ("", "cifar100")]


def test_a_published_value_in_a_cell_without_runs(tmp_path):
    records = [rec("fixmatch", 0, 0.9, budget="250"), rec("supervised", 0, 0.5)]
    results = write_records(tmp_path / "r", records)
    csv_path = write_csv(tmp_path / "p.csv", f"cifar10,,clean,40,fixmatch,test/acc,0.8,,,80,{SRC}")
    (lb,), found = compared(results, csv_path)
    (c,) = lb.published.values()
    assert c.ours is None and c.delta is None and not c.flagged and found.not_run == []
    text = to_markdown([lb])
    assert "missing · pub 0.800 |" in text.replace("  ", " ")
    assert "published: 0 cells compared (1 more without an ok run), 0 outside tolerance" in text


@pytest.mark.parametrize(
    ("ours", "spread", "kw", "flagged"),
    [
        (0.937, None, {}, False),  # |Δ| = 0.02 exactly: on the boundary is within
        (0.897, None, {}, False),
        (0.9375, None, {}, True),
        (0.8965, None, {}, True),
        (0.937, None, {"tolerance": 0.019}, True),
        (0.937, 0.01, {}, False),  # 2 x 0.01 = 0.02 exactly
        (0.9375, 0.01, {}, True),
        (0.937, 0.01, {"tolerance_sd": 1.0}, True),
        (0.937, 0.01, {"tolerance": 0.5}, False),  # a spread given: --tolerance not used
        (0.922, 0.0, {}, True),  # spread 0: any difference
        (0.917, 0.0, {}, False),
    ],
)
def test_flag_with_and_without_spread(tmp_path, ours, spread, kw, flagged):
    results = write_records(tmp_path / "r", [rec("fixmatch", 0, ours)])
    sp = "" if spread is None else spread
    csv_path = write_csv(
        tmp_path / "p.csv", f"cifar10,wrn28_2,clean,40,fixmatch,test/acc,0.917,{sp},,91.7,{SRC}"
    )
    (lb,), _ = compared(results, csv_path, **kw)
    (c,) = lb.published.values()
    assert c.delta == pytest.approx(ours - 0.917)
    assert c.flagged is flagged
    assert ("⚑" in to_markdown([lb]).split("\n\n")[1]) is flagged


def test_columns_as_seeds_compare_each_seed(tmp_path):
    """Cols that hold no field: regime and budget move to the scope, and still match."""
    results = write_records(tmp_path / "r", [rec("fixmatch", s, 0.9 + s / 100) for s in range(2)])
    csv_path = write_csv(tmp_path / "p.csv", f"cifar10,,clean,40,fixmatch,test/acc,0.9,,,90,{SRC}")
    boards = build_leaderboards(load_rows(results, use_cache=False).rows, col_fields=("seed",))
    found = compare(boards, load_published([csv_path]))
    (lb,) = boards
    assert lb.scope["budget"] == "40"
    assert [round(c.delta, 6) for c in lb.published.values()] == [0.0, 0.01]
    assert found.not_run == []
    # a table that does not show a field needed to match: no comparison, said once
    partial = dataclasses.replace(lb, scope={k: v for k, v in lb.scope.items() if k != "dataset"})
    again = compare([partial, partial], load_published([csv_path]))
    assert partial.published == {} and len(again.notes) == 1
    assert "do not show all of dataset, regime, budget, strategy" in again.notes[0]


def test_another_metric_is_said_once(results, pub_csv):
    boards = build_leaderboards(load_rows(results, use_cache=False).rows)
    rows = [p for p in load_published([pub_csv]) if p.metric == "test/acc"]
    found = compare(boards, [dataclasses.replace(p, metric="test/f1") for p in rows])
    assert all(lb.published == {} for lb in boards) and found.not_run == []
    assert found.notes == [
        "published: no row has the metric test/acc; they have test/f1 (--metric test/f1)"
    ]


def test_markdown_cells_legend_summary_and_not_run(results, pub_csv):
    boards, found = compared(results, pub_csv)
    text = to_markdown(boards, not_run=found.not_run)
    assert "**0.910 ± 0.014** (2) · pub 0.917 Δ-0.007 |" in text
    assert "**0.950** (1) · pub 0.960 ± 0.004 Δ-0.010 ⚑" in text
    assert "(1) Δ+0.200 · pub 0.550 Δ-0.050 ⚑" in text  # baseline Δ, then the published
    assert (
        "⚑: outside tolerance, |Δ| > 2 × the published spread, or > 0.02 where the source gives none"
        in text
    )
    assert f"published: 4 cells compared, 2 outside tolerance; sources: {SRC}; Other (2023)" in text
    tail = text.split("published, not run (3):\n")[1].splitlines()
    assert tail[0] == (
        "- dataset=cifar10 · model=wrn28_8 · regime=clean · budget=full · strategy=fixmatch:"
        f" test/acc 0.970 ({pub_csv}:7)"
    )
    assert tail[2].startswith("- dataset=cifar100 · model=any ·")
    # without a comparison: nothing of it
    plain = to_markdown(build_leaderboards(load_rows(results).rows))
    assert "pub " not in plain and "published" not in plain and "⚑" not in plain


def test_csv_and_json_columns(results, pub_csv):
    boards, _ = compared(results, pub_csv)
    rows = list(csv.DictReader(io.StringIO(to_csv(boards))))
    assert list(rows[0]) == CSV_COLUMNS + PUBLISHED_COLUMNS
    by = {(r["row"], r["col"]): r for r in rows}
    full = by[("fixmatch", "clean full")]
    assert (full["published"], full["published_spread"], full["outside_tolerance"]) == (
        "0.96",
        "0.004",
        "1",
    )
    assert (
        float(full["published_delta"]) == pytest.approx(-0.01) and full["published_source"] == SRC
    )
    gce = by[("supervised[loss=gce]", "symmetric(0.5) 40")]
    assert gce["published_spread"] == "" and gce["outside_tolerance"] == "0"
    none = by[("fixmatch", "clean 40")]  # no run, nothing published
    assert [none[c] for c in PUBLISHED_COLUMNS] == [""] * 5

    (table,) = json.loads(to_json(boards))
    cells = {r["row"]: r["cells"] for r in table["rows"]}
    free = cells["logreg (model –)"]["clean 40"]
    assert free["published"] == 0.55 and free["outside_tolerance"] is True
    assert free["published_delta"] == pytest.approx(-0.05) and free["published_spread"] is None
    assert cells["fixmatch"]["clean 40"]["published"] is None
    assert set(PUBLISHED_COLUMNS) <= set(cells["fixmatch"]["clean 40"])

    plain = build_leaderboards(load_rows(results).rows)
    assert to_csv(plain).splitlines()[0] == ",".join(CSV_COLUMNS)
    (table,) = json.loads(to_json(plain))
    assert "published" not in table["rows"][0]["cells"]["clean 40"]


def test_tex_html_and_dashboard_show_it(results, pub_csv):
    boards, found = compared(results, pub_csv)
    tex = to_tex(boards, not_run=found.not_run)
    assert r"\textbf{0.950} (1) $\cdot$ pub 0.960 $\pm$ 0.004 $\Delta$-0.010 $^{!}$" in tex
    assert "% published: 4 cells compared, 2 outside tolerance" in tex
    assert "; $^{!}$: outside tolerance, |Δ| > 2 × the published spread" in tex
    assert "% published, not run (3):" in tex
    page = to_html(boards, not_run=found.not_run)
    assert page.count('class="outside"') == 2
    assert 'title="published: 96.0±0.4 (acc %) — Paper (2022) Table 2"' in page
    assert "pub 0.917 Δ-0.007</td>" in page
    assert "<h3>published, not run (3)</h3>" in page
    dash = render_dashboard(load_rows(results), boards, generated="now", not_run=found.not_run)
    data = page_data(dash)["metrics"]["test/acc"]
    assert sum(flagged for b in data["boards"] for _, flagged, _ in b["pub"].values()) == 2
    assert len(data["notRun"]) == 3 and "td.outside" in dash


def test_cli_end_to_end(results, pub_csv, capsys):
    code = cli.main(["leaderboard", str(results), "--published", str(pub_csv), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (table,) = json.loads(out)
    cells = {r["row"]: r["cells"] for r in table["rows"]}
    assert cells["supervised[loss=gce]"]["symmetric(0.5) 40"]["published"] == 0.917
    assert cells["fixmatch"]["clean full"]["outside_tolerance"] is True
    assert "published, not run: 3 published cell(s)" in err

    # a folder of CSVs, the tolerances, and markdown on a file
    target = results / "board.md"
    code = cli.main(["leaderboard", str(results), "--published", str(pub_csv.parent),
                     "--tolerance", "0.1", "--tolerance-sd", "3", "--out", str(target)])  # fmt: skip
    assert code == 0
    text = target.read_text()
    assert "published: 4 cells compared, 0 outside tolerance" in text
    assert "|Δ| > 3 × the published spread, or > 0.1" in text
    assert "published, not run (3):" in text

    page = results / "dash.html"
    assert (
        cli.main(["dashboard", str(results), "--published", str(pub_csv), "--out", str(page)]) == 0
    )
    data = page_data(page.read_text())["metrics"]["test/acc"]
    assert sum(flagged for b in data["boards"] for _, flagged, _ in b["pub"].values()) == 2

    assert cli.main(["leaderboard", str(results), "--format", "json"]) == 0
    assert "published" not in capsys.readouterr().out


def test_the_default_folder(results, tmp_path, monkeypatch, capsys):
    assert published.default_dir() == Path(labelbench.__file__).parents[1] / "results" / "published"
    folder = tmp_path / "shipped"
    write_csv(folder / "b.csv", f"cifar10,,clean,full,fixmatch,test/acc,0.96,,,96,{SRC}")
    write_csv(folder / "a.csv", f"cifar10,,clean,40,logreg,test/acc,0.55,,,55,{SRC}")
    (folder / "notes.txt").write_text("not a CSV")
    monkeypatch.setattr(published, "default_dir", lambda: folder)
    assert resolve_paths([]) == [folder / "a.csv", folder / "b.csv"]
    assert cli.main(["leaderboard", str(results), "--published"]) == 0
    out = capsys.readouterr().out
    assert "pub 0.550 Δ-0.050 ⚑" in out and "pub 0.960 Δ-0.010 |" in out

    monkeypatch.setattr(published, "default_dir", lambda: tmp_path / "nowhere")
    assert cli.main(["leaderboard", str(results), "--published"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"labelbench: error: --published: no {tmp_path / 'nowhere'} folder of published numbers;"
        " give a path (--published FILE.csv or FOLDER)"
    )


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (["missing.csv"], "--published {d}/missing.csv: no such file or folder"),
        (["empty"], "--published {d}/empty: no *.csv file in this folder"),
    ],
)
def test_bad_paths(tmp_path, results, capsys, paths, message):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / p) for p in paths]
    assert cli.main(["leaderboard", str(results), "--published", *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "labelbench: error: " + message.format(d=tmp_path)


GOOD = f"cifar10,,clean,40,fixmatch,test/acc,0.9,0.01,3,90,{SRC}"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([HEADER + ",notes", GOOD + ",x"], "line 1: unknown column 'notes'; allowed: " + HEADER),
        ([HEADER.replace("model,", ""), GOOD.replace("cifar10,,", "cifar10,")],
         "line 1: missing column model; the header must name " + HEADER),
        ([HEADER, GOOD, GOOD.replace("0.9,", "0.9x,")],
         "line 3: value '0.9x' is not a number; allowed: a number in the metric's units, e.g. 0.917"),
        ([HEADER, GOOD.replace("0.9,", "nan,")], "line 2: value 'nan' is not finite"),
        ([HEADER, GOOD.replace("0.01,", "-0.01,")],
         "line 2: spread '-0.01' is negative; allowed: a std >= 0 in the metric's units, or blank"),
        ([HEADER, GOOD.replace(SRC, " ")],
         "line 2: source is empty; allowed: the paper and its table, or a repository file and commit"),
        ([HEADER, GOOD.replace(",3,", ",three,")], "line 2: seeds 'three' is not a count of runs"),
        ([HEADER, GOOD.replace("fixmatch", "")], "line 2: strategy is empty; allowed: the strategy as the leaderboard shows it"),
        ([HEADER, GOOD, GOOD.replace("0.9,", "0.91,")],
         "line 3: value 0.91 for dataset=cifar10 · model=any · regime=clean · budget=40 ·"
         " strategy=fixmatch test/acc, but 0.9 at {f} line 2; allowed: one value per cell"),
        ([HEADER, GOOD + ",extra"], "line 2: 12 fields, the header has 11"),
        ([], ": empty; the first line must be the header " + HEADER),
    ],
)  # fmt: skip
def test_bad_csv_is_one_line_and_exit_2(tmp_path, results, capsys, lines, message):
    path = tmp_path / "bad.csv"
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    assert cli.main(["leaderboard", str(results), "--published", str(path)]) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert out == ""
    assert line.startswith(f"labelbench: error: {path}")
    assert message.format(f=path) in line


def test_the_same_cell_in_two_files(tmp_path):
    a = write_csv(tmp_path / "a.csv", GOOD)
    b = write_csv(tmp_path / "b.csv", GOOD.replace("0.9,", "0.8,"))
    with pytest.raises(PublishedError, match=rf"^{b} line 2: value 0.8 .* but 0.9 at {a} line 2"):
        load_published([a, b])
    same = write_csv(tmp_path / "c.csv", GOOD.replace(SRC, "Another copy"))
    assert len(load_published([a, same])) == 1  # the same value twice: kept once
    other_model = write_csv(
        tmp_path / "d.csv", GOOD.replace("cifar10,,", "cifar10,wrn28_2,").replace("0.9,", "0.8,")
    )
    assert len(load_published([a, other_model])) == 2


def test_bad_tolerance(results, pub_csv, capsys):
    argv = ["leaderboard", str(results), "--published", str(pub_csv), "--tolerance", "-1"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == "labelbench: error: --tolerance -1: must be a number >= 0\n"


def test_the_shipped_csvs_load():
    paths = resolve_paths([])
    assert paths and all(p.suffix == ".csv" for p in paths)
    rows = load_published(paths)
    assert rows and all(p.source and p.metric for p in rows)


def test_imports_no_torch():
    code = (
        "import sys, labelbench.results.published, labelbench.results.render, labelbench.cli;"
        "assert not {'torch', 'lightning', 'numpy'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
