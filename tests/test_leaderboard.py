"""Leaderboards: golden Markdown/CSV from hand-made records, statistics against scipy,
flags, bad records, the CLI, and light imports."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import rankdata, wilcoxon

from conftest import run_cli
from labelbench.results import RecordStore, RunRecord
from labelbench.results.leaderboard import (
    _pareto,
    aubc,
    average_ranks,
    build_leaderboards,
    paired_test,
)
from labelbench.results.render import to_csv, to_json, to_markdown, to_tex
from labelbench.results.table import load_rows
from test_records import make_record

GOLDEN = Path(__file__).parent / "golden"
SIZES = {"20": 20, "100": 100, "full": 1000}


def record(
    strategy, budget, seed, acc, *, regime="clean", status="ok", dataset="toy", cost=None
) -> RunRecord:
    size = SIZES[budget]
    metrics = {"test/acc": acc, "test/nll": round(1 - acc, 4)} if status == "ok" else {}
    return RunRecord(
        run_key=f"{dataset}-{regime}-{strategy}-{budget}-{seed}",
        status=status,
        choices={"dataset": dataset, "regime": regime, "budget": "total", "strategy": strategy, "model": "mlp"},
        seed=seed,
        split_seed=0,
        labels={"budget": budget, "budget_size": size, "count": size, "val_count": 10, "val_paid": False,
                "cost": float(cost if cost is not None else size), "noise_rate": 0.0, "indices": []},
        metrics=metrics,
        directions={"test/acc": "max", "test/nll": "min"} if metrics else {},
        curve=[],
        timings={"total_s": 1.0},
        versions={},
        git={},
        host={},
        config={"strategy": strategy, "seed": seed},
        error={"type": "FloatingPointError", "message": "loss became nan"} if status == "failed" else None,
    )  # fmt: skip


# Hand-made accuracies per (strategy, budget), one per seed 0..5.
TABLE = {
    ("supervised", "20"): [0.60, 0.62, 0.58, 0.61, 0.59, 0.60],
    ("supervised", "100"): [0.80, 0.82, 0.81, 0.79, 0.80, 0.81],
    ("supervised", "full"): [0.95, 0.95, 0.96, 0.94, 0.95, 0.95],
    ("fixmatch", "20"): [0.70, 0.71, 0.69, 0.72, 0.70, 0.68],  # better on every seed
    ("fixmatch", "100"): [0.85, 0.83, 0.80, 0.84, 0.79, 0.82],  # mixed
    ("fixmatch", "full"): [0.95, 0.94, 0.96, 0.95, 0.95, 0.95],
    ("logreg", "20"): [0.55, 0.57, 0.53, 0.56, 0.54],  # seed 5 missing: short cell
    ("logreg", "100"): [0.70, 0.71, 0.72, 0.70, 0.69, 0.71],  # worse on every seed
    ("logreg", "full"): [0.90, 0.91, 0.89, 0.90, 0.90],  # seed 5 failed below
    ("knn", "20"): [0.60, 0.62, 0.58, 0.61, 0.59, 0.60],  # ties supervised exactly; nothing else
}


@pytest.fixture
def store(tmp_path) -> Path:
    results = tmp_path / "results"
    s = RecordStore(results)
    for (strategy, budget), accs in TABLE.items():
        for seed, acc in enumerate(accs):
            s.write(record(strategy, budget, seed, acc))
    s.write(record("logreg", "full", 5, 0.0, status="failed"))
    return results


def boards_of(results: Path, **kw):
    return build_leaderboards(load_rows(results).rows, **kw)


def golden(name: str, text: str, tmp_path: Path) -> None:
    """Compare with tests/golden/<name>; LABELBENCH_REGOLD=1 rewrites it (review the diff!)."""
    text = text.replace(str(tmp_path), "<tmp>")
    path = GOLDEN / name
    if __import__("os").environ.get("LABELBENCH_REGOLD"):
        path.write_text(text)
    assert text == path.read_text()


def test_markdown_golden(store, tmp_path):
    golden("leaderboard.md", to_markdown(boards_of(store)), tmp_path)


def test_csv_golden(store, tmp_path):
    golden("leaderboard.csv", to_csv(boards_of(store)), tmp_path)


def test_tex_golden(store, tmp_path):
    golden("leaderboard.tex", to_tex(boards_of(store)), tmp_path)


def test_cells_flags_and_stats(store):
    (lb,) = boards_of(store)
    assert lb.scope == {"dataset": "toy", "model": "mlp"}
    assert lb.cols == [("clean", "20"), ("clean", "100"), ("clean", "full")]  # by budget size
    assert lb.rows == [("fixmatch",), ("knn",), ("logreg",), ("supervised",)]
    cell = lb.cell(("fixmatch",), ("clean", "20"))
    assert cell.n == 6 and cell.best and cell.significance == 1
    base = TABLE[("supervised", "20")]
    assert cell.p_value == pytest.approx(wilcoxon(TABLE[("fixmatch", "20")], base).pvalue)
    assert cell.delta == pytest.approx(
        sum(a - b for a, b in zip(TABLE[("fixmatch", "20")], base, strict=False)) / 6
    )
    worse = lb.cell(("logreg",), ("clean", "100"))
    assert worse.significance == -1 and worse.delta < 0
    short = lb.cell(("logreg",), ("clean", "20"))
    assert short.short and short.n == 5 and short.n_pairs == 5
    failed = lb.cell(("logreg",), ("clean", "full"))
    assert failed.failed == 1 and failed.n == 5
    assert lb.cell(("knn",), ("clean", "100")).missing
    tie = lb.cell(("knn",), ("clean", "20"))
    assert tie.p_value == 1.0 and tie.significance == 0 and tie.delta == pytest.approx(0)
    assert [r["run_key"] for r in lb.failed_runs] == ["toy-clean-logreg-full-5"]


def test_ranks_and_borda_match_scipy(store):
    (lb,) = boards_of(store)
    per_row: dict = {rk: [] for rk in lb.rows}
    for ck in lb.cols:
        present = [rk for rk in lb.rows if lb.cell(rk, ck).n]
        means = [lb.cell(rk, ck).mean for rk in present]
        for rk, r in zip(present, rankdata([-m for m in means], method="average"), strict=False):
            per_row[rk].append(r)
    for rk in lb.rows:
        assert lb.avg_rank[rk] == pytest.approx(sum(per_row[rk]) / len(per_row[rk]))


@pytest.mark.parametrize(
    "values",
    [[3.0, 1.0, 2.0], [1.0, 1.0, 2.0], [5.0, 5.0, 5.0], [0.1, 0.3, 0.3, 0.2, 0.3], [2.0]],
)
@pytest.mark.parametrize("direction", ["max", "min"])
def test_average_ranks_equal_scipy(values, direction):
    expected = rankdata([-v if direction == "max" else v for v in values], method="average")
    assert average_ranks(values, direction) == pytest.approx(list(expected))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.7, 0.71, 0.69, 0.72, 0.70, 0.68], [0.6, 0.62, 0.58, 0.61, 0.59, 0.60]),
        ([0.85, 0.83, 0.80, 0.84, 0.79, 0.82], [0.80, 0.82, 0.81, 0.79, 0.80, 0.81]),
        (
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            [1.5, 1.0, 3.5, 3.0, 6.0, 5.5, 7.0],
        ),  # a zero difference
    ],
)
def test_paired_test_equals_scipy(a, b):
    assert paired_test(a, b) == pytest.approx(wilcoxon(a, b, zero_method="wilcox").pvalue)


@pytest.mark.parametrize("n", [3, 6, 13, 14, 30, 50, 51, 139])
@pytest.mark.parametrize("kind", ["continuous", "ties", "zeros", "ties and zeros"])
def test_wilcoxon_equals_scipy_in_every_regime(n, kind):
    """Exact null (no ties, no zeros, n <= 50), every sign flip (ties or zeros, n <= 13),
    the normal approximation with the tie correction (beyond): scipy's p-values each time."""
    import random

    from labelbench.results.leaderboard import wilcoxon_p

    rng = random.Random(n * 31 + len(kind))
    slow = n == 13 and kind != "continuous"  # scipy's permutation test takes ~1 s there
    for _ in range(2 if slow else 20):
        a = [rng.random() for _ in range(n)]
        if "ties" in kind:
            a = [round(x, 1) for x in a]
            b = [round(x - rng.choice([0.1, 0.2, -0.1, 0.3]), 1) for x in a]
        else:
            b = [x - rng.gauss(0.05, 0.1) for x in a]
        if "zeros" in kind:
            for i in rng.sample(range(n), rng.randint(1, max(1, n // 3))):
                b[i] = a[i]
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        expected = wilcoxon(a, b, zero_method="wilcox").pvalue
        assert wilcoxon_p(diffs) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_paired_test_edge_cases():
    assert paired_test([], []) is None
    assert paired_test([0.5, 0.6], [0.5, 0.6]) == 1.0


def test_lower_is_better_metric(store):
    (lb,) = boards_of(store, metric="test/nll")
    assert lb.direction == "min"
    assert lb.cell(("fixmatch",), ("clean", "20")).best  # lowest NLL
    assert lb.cell(("fixmatch",), ("clean", "20")).significance == 1  # better = lower
    assert lb.cell(("logreg",), ("clean", "100")).significance == -1


def test_efficiency(store):
    (lb,) = boards_of(store)
    sup = lb.efficiency[(("supervised",), ("clean",))]
    means = [sum(TABLE[("supervised", b)]) / 6 for b in ("20", "100", "full")]
    assert [x for x, *_ in sup.curve] == [20, 100, 1000]
    area = (100 - 20) * (means[0] + means[1]) / 2 + (1000 - 100) * (means[1] + means[2]) / 2
    assert sup.aubc == pytest.approx(area / 980)
    assert sup.target == pytest.approx(means[2] - 0.01)
    assert sup.labels_to_target == 1000
    fix = lb.efficiency[(("fixmatch",), ("clean",))]
    assert fix.labels_to_target == 1000  # 0.9500 >= 0.9400
    assert lb.efficiency[(("logreg",), ("clean",))].labels_to_target is None
    assert aubc([(10, 0.5)]) == 0.5 and aubc([]) is None


def test_label_cost_pareto(tmp_path):
    s = RecordStore(tmp_path)
    s.write(record("cheap", "20", 0, 0.70, cost=10))
    s.write(record("pricey", "20", 0, 0.70, cost=40))  # dominated: same accuracy, dearer
    s.write(record("best", "100", 0, 0.90, cost=100))
    (lb,) = boards_of(tmp_path, baseline=None)
    assert {p.row[0]: p.pareto for p in lb.costs} == {"cheap": True, "pricey": False, "best": True}


def test_tables_split_by_dataset_and_custom_layout(store):
    s = RecordStore(store)
    s.write(record("supervised", "20", 0, 0.5, dataset="other"))
    boards = boards_of(store)
    assert [b.scope["dataset"] for b in boards] == ["other", "toy"]
    flipped = boards_of(
        store, row_fields=("budget",), col_fields=("strategy",), filters={"dataset": "toy"}
    )
    assert flipped[0].rows == [("100",), ("20",), ("full",)] and flipped[0].groups == []


def test_json_round_trips(store):
    data = json.loads(to_json(boards_of(store)))
    row = next(r for r in data[0]["rows"] if r["row"] == "fixmatch")
    assert row["cells"]["clean 20"]["significance"] == 1 and data[0]["baseline"] == "supervised"


def test_bad_records_are_skipped_and_reported(store):
    runs = store / "runs"
    (runs / "truncated.json").write_text('{"run_key": "x", "status": "o')
    (runs / "foreign.json").write_text(json.dumps({"schema_version": 99, "run_key": "y"}))
    (runs / "wrong.json").write_text(json.dumps({"schema_version": 1, "run_key": "z"}))
    loaded = load_rows(store)
    assert len(loaded.rows) == sum(map(len, TABLE.values())) + 1
    reasons = dict((Path(p).name, why) for p, why in loaded.problems)
    assert set(reasons) == {"truncated.json", "foreign.json", "wrong.json"}
    assert reasons["foreign.json"].startswith("schema_version=99")
    assert "skipped 3 unreadable record(s)" in loaded.problem_summary()
    proc = run_cli("labelbench", "leaderboard", str(store), cwd=store)
    assert proc.returncode == 0
    assert (
        "labelbench: skipped 3 unreadable record(s)" in proc.stderr
        and "foreign.json" in proc.stderr
    )


def test_fast_decode_gives_the_full_parse_rows_and_refusals(tmp_path):
    """The aggregator decodes only the fields a row needs; every row and every refusal
    must be what parsing the whole record gives."""
    from labelbench.results.table import _parse, _parse_fully

    ok = make_record("ok1", n_indices=500)
    ok.curve = [{"round": 0.0, "labels": 10.0, "test/acc": 0.5}]
    legacy = make_record("old")  # no budget_size / regime label: taken from choices
    del legacy.labels["budget_size"], legacy.labels["budget"]
    cases = {
        "ok": ok.to_dict(),
        "failed": make_record("bad", status="failed").to_dict(),
        "legacy": legacy.to_dict(),
        "no_config": {k: v for k, v in ok.to_dict().items() if k != "config"},
        "status": {**ok.to_dict(), "status": "maybe"},
        "error_on_ok": {**ok.to_dict(), "error": {"type": "E", "message": "m"}},
        "text_metric": {**ok.to_dict(), "metrics": {"test/acc": "high"}},
        "foreign": {**ok.to_dict(), "schema_version": 2},
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.json"
        raw = json.dumps(data).encode()
        path.write_bytes(raw)
        assert _parse(str(path)) == _parse_fully(raw, str(path)), name
    assert _parse(str(tmp_path / "ok.json"))[0]["curve"] == ok.curve
    assert _parse(str(tmp_path / "legacy.json"))[0]["budget_label"] == "total"
    assert "lacks config" in _parse(str(tmp_path / "no_config.json"))[1]


def test_cache_is_used_and_refreshed(store):
    first = load_rows(store)
    assert (store / ".cache" / "records.msgpack").is_file()
    RecordStore(store).write(record("supervised", "20", 0, 0.11))  # rewrite one record
    again = load_rows(store)
    accs = {r["run_key"]: r["metrics"].get("test/acc") for r in again.rows}
    assert accs["toy-clean-supervised-20-0"] == 0.11 and len(again.rows) == len(first.rows)
    (store / "runs" / "toy-clean-knn-20-0.json").unlink()
    assert len(load_rows(store).rows) == len(first.rows) - 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # any config key is allowed now: one that no record has is refused by name
        (["--rows", "flavour"], "--rows flavour: no record has this key; fields: dataset"),
        (["--rows", ""], "--rows '': empty is not a field; allowed: dataset"),
        (["--metric", "test/nope"], "metric=test/nope is in no record"),
        (["--filter", "dataset"], "must look like key=value"),
        (["--filter", "dataset=none"], "no run records"),
    ],
)
def test_cli_bad_input(store, args, message):
    proc = run_cli("labelbench", "leaderboard", str(store), *args, cwd=store)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_cli_formats_and_out_file(store, tmp_path):
    out = tmp_path / "board.csv"
    proc = run_cli(
        "labelbench", "leaderboard", str(store), "--format", "csv", "--out", str(out), cwd=tmp_path
    )
    assert proc.returncode == 0 and out.read_text() == to_csv(boards_of(store))
    missing = run_cli("labelbench", "leaderboard", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "has no runs/ folder" in missing.stderr


def test_cli_imports_no_torch(store):
    code = (
        "import sys; from labelbench.cli import main; rc = main(['leaderboard', sys.argv[1]]);"
        "heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning') if m in sys.modules];"
        "assert not heavy, heavy; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    helped = subprocess.run(
        [sys.executable, "-c", "import sys; from labelbench.cli import build_parser;"
         "build_parser().format_help(); assert 'torch' not in sys.modules"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert helped.returncode == 0, helped.stderr


def test_same_seed_twice_is_flagged_not_averaged(store):
    dup = record("supervised", "20", 0, 0.99)
    dup.run_key = "zz-another-config-same-seed"
    RecordStore(store).write(dup)
    (lb,) = boards_of(store)
    cell = lb.cell(("supervised",), ("clean", "20"))
    assert cell.duplicates == 1 and cell.values[0] == TABLE[("supervised", "20")][0]
    assert "‡1" in to_markdown([lb]) and "configs differ" in to_markdown([lb])


def test_budget_curve_from_per_round_points(tmp_path):
    """Runs with a per-round curve (active learning) give the efficiency curve its points."""
    s = RecordStore(tmp_path)
    for seed, (a, b, c) in enumerate([(0.5, 0.7, 0.8), (0.6, 0.7, 0.9)]):
        r = record("uncertainty", "100", seed, c)
        r.curve = [
            {"labels": 20, "test/acc": a},
            {"labels": 60, "test/acc": b},
            {"labels": 100, "test/acc": c},
        ]
        s.write(r)
    (lb,) = boards_of(tmp_path, baseline=None)
    eff = lb.efficiency[(("uncertainty",), ("clean",))]
    assert [(x, round(m, 6), n) for x, m, _, n in eff.curve] == [
        (20, 0.55, 2),
        (60, 0.7, 2),
        (100, 0.85, 2),
    ]
    assert eff.aubc == pytest.approx(((40 * (0.55 + 0.7) / 2) + (40 * (0.7 + 0.85) / 2)) / 80)


def test_regime_columns_show_the_regime_with_its_setting(tmp_path):
    """Two noise rates of one regime option are two columns, filterable by either name;
    records without a regime label fall back to the YAML name."""
    results = tmp_path / "results"
    store = RecordStore(results)
    for rate, accs in (("0.2", [0.9, 0.91]), ("0.4", [0.8, 0.82])):
        for seed, acc in enumerate(accs):
            r = record("supervised", "full", seed, acc, regime="symmetric")
            r.run_key += rate
            r.labels["regime"] = f"symmetric({rate})"
            store.write(r)
    store.write(record("supervised", "full", 0, 0.95))  # an older record: no label
    (lb,) = boards_of(results)
    assert [c[0] for c in lb.cols] == ["clean", "symmetric(0.2)", "symmetric(0.4)"]
    assert lb.cell(("supervised",), ("symmetric(0.4)", "full")).mean == pytest.approx(0.81)
    for want in ("symmetric", "symmetric(0.2)"):
        (only,) = boards_of(results, filters={"regime": want})
        assert {c[0] for c in only.cols} <= {"symmetric(0.2)", "symmetric(0.4)"}


def test_pareto_sweep_equals_the_definition():
    """The n log n sweep marks exactly the points no other point dominates (ties included)."""
    rng = random.Random(0)
    for direction in ("max", "min"):
        sign = 1 if direction == "max" else -1
        for _ in range(200):
            n = rng.randint(1, 12)
            costs = {((str(i),), ("c",)): [(rng.choice([1, 2, 3, 5]), rng.choice([0.1, 0.5, 0.9]))]
                     for i in range(n)}  # fmt: skip
            points = _pareto(costs, direction)
            for p in points:
                dominated = any(
                    q.cost <= p.cost
                    and sign * q.mean >= sign * p.mean
                    and (q.cost < p.cost or sign * q.mean > sign * p.mean)
                    for q in points
                )
                assert p.pareto == (not dominated)
