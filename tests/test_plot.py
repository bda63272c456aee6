"""`labelbench plot`: every kind in every format from a small hand-made store, valid files,
the same bytes twice (in this process and across interpreters with other hash seeds), the
rows shown, the axes chosen, bad input refused in one line with nothing written, and light
imports."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import heavy_imports, run_cli, run_here
from labelbench.results import RecordStore, RunRecord

STRATEGIES = ("supervised", "fixmatch", "odd<&>name")  # the last: text SVG must escape
REGIMES = {"clean": 1.0, "crowd": 3.0}  # label cost per label
BUDGETS = (20, 100, 500)
SEEDS = (0, 1, 2)
SVG = "{http://www.w3.org/2000/svg}"
# One column of a two-column paper at 300 dpi, or both columns.
ONE_COLUMN_PX, FULL_WIDTH_PX = 990, 2100


def record(strategy: str, regime: str, budget: int, seed: int) -> RunRecord:
    acc = (
        0.5
        + 0.1 * BUDGETS.index(budget)
        + 0.03 * STRATEGIES.index(strategy)
        - 0.05 * list(REGIMES).index(regime)
        + 0.004 * seed
    )
    return RunRecord(
        run_key=f"toy-{regime}-{STRATEGIES.index(strategy)}-{budget}-{seed}",
        status="ok",
        choices={"dataset": "toy", "regime": regime, "budget": "total", "strategy": strategy, "model": "mlp"},
        seed=seed,
        split_seed=0,
        labels={"budget": str(budget), "budget_size": budget, "count": budget, "val_count": 10,
                "val_paid": False, "cost": budget * REGIMES[regime], "noise_rate": 0.0, "indices": []},
        metrics={"test/acc": round(acc, 4), "test/nll": round(1 - acc, 4)},
        directions={"test/acc": "max", "test/nll": "min"},
        curve=[],
        timings={"total_s": 1.0},
        versions={},
        git={},
        host={},
        config={"strategy": {"name": strategy}, "seed": seed},
        error=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """toy/mlp: 3 strategies x 2 regimes x 3 budgets x 3 seeds."""
    results = tmp_path_factory.mktemp("plot") / "results"
    s = RecordStore(results)
    for strategy in STRATEGIES:
        for regime in REGIMES:
            for budget in BUDGETS:
                for seed in SEEDS:
                    s.write(record(strategy, regime, budget, seed))
    return results


def plot(store: Path, out: Path, *args: str):
    return run_here("labelbench", "plot", str(store), "--out", str(out), *args, cwd=store.parent)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)  # parses as XML: every name escaped
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
@pytest.mark.parametrize(
    ("kind", "width"),
    [("curves", FULL_WIDTH_PX), ("grid", FULL_WIDTH_PX), ("pareto", ONE_COLUMN_PX)],
)
def test_each_kind_and_format_is_valid_and_the_same_twice(store, tmp_path, kind, fmt, width):
    first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    proc = plot(store, first, "--kind", kind)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == f"wrote {first}\n"
    assert plot(store, second, "--kind", kind).returncode == 0
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, second.name]  # no temp
    if fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert b"CreationDate" not in data
        assert b"/Type3" not in data and b"/CIDFontType2" in data  # TrueType, as publishers ask
    elif fmt == "svg":
        texts = svg_texts(data)
        for name in ("supervised (baseline)", "fixmatch", "odd<&>name"):
            assert name in texts
        assert "test/acc ↑" in texts
        if kind == "pareto":
            assert "Pareto front" in texts
        else:
            assert {"clean", "crowd"} <= set(texts)  # the panels' titles: the regimes
    else:
        w, h = png_size(data)
        assert w == width and 0.25 * width < h < 1.2 * width


def test_one_panel_is_one_column_wide_and_the_rows_can_be_chosen(store, tmp_path):
    out = tmp_path / "clean.svg"
    proc = plot(store, out, "--filter", "regime=clean", "--show", "fixmatch,supervised")
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(out.read_bytes())
    assert root.get("width") == "237.6pt"  # 3.3 in
    texts = svg_texts(out.read_bytes())
    assert "fixmatch" in texts and "supervised (baseline)" in texts
    assert "odd<&>name" not in texts
    assert "clean" not in texts  # a single panel has no title: the caption says it
    png = tmp_path / "clean.png"
    assert plot(store, png, "--filter", "regime=clean").returncode == 0
    assert png_size(png.read_bytes())[0] == ONE_COLUMN_PX


def test_axes_styles_and_front(store):
    """Log x when the budgets span more than 10x (as the dashboard's curves), a tick at
    each budget; the baseline black and first in the legend; the others in Okabe-Ito
    colours with their own markers; the Pareto front among the cells shown."""
    import matplotlib

    from labelbench.results import plot as p
    from labelbench.results.leaderboard import build_leaderboards
    from labelbench.results.table import load_rows

    rows = load_rows(store).rows
    boards = build_leaderboards(rows)
    style = p.styles(boards)
    base = style[("supervised",)]
    assert base.baseline and base.colour == "#000000" and base.order == 0
    others = [style[("fixmatch",)], style[("odd<&>name",)]]
    assert all(s.colour in p.OKABE_ITO for s in others)
    assert len({(s.colour, s.marker) for s in [base, *others]}) == 3
    with matplotlib.rc_context(p.RC):
        fig = p.draw_curves(boards, p.shown_rows(boards, []), style)
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["20", "100", "500"]
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [
            "supervised (baseline)",
            "fixmatch",
            "odd<&>name",
        ]
        narrow = build_leaderboards([r for r in rows if r["budget_size"] <= 100])
        fig = p.draw_curves(narrow, p.shown_rows(narrow, []), p.styles(narrow))
        assert fig.axes[0].get_xscale() == "linear"  # 20..100: within 10x
        # hiding a row keeps the others' colours
        assert p.styles(narrow)[("fixmatch",)] == style[("fixmatch",)]
        fig = p.draw_pareto(boards, p.shown_rows(boards, []), style)
        notes = sorted(t.get_text() for t in fig.axes[0].texts)
        # the best strategy at each budget on clean labels (crowd labels cost 3x more)
        assert notes == ["clean 100", "clean 20", "clean 500"]


def test_the_same_bytes_in_fresh_interpreters(store, tmp_path):
    """No dates, ids or set order: other hash seeds, other processes, the same files."""
    outs = {}
    for seed in ("1", "2"):
        folder = tmp_path / seed
        folder.mkdir()
        code = (
            "import sys; from labelbench.cli import main\n"
            "for f in ('pdf', 'svg', 'png'):\n"
            "    assert main(['plot', sys.argv[1], '--kind', 'grid', '--out', 'g.' + f]) == 0\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(store)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert proc.returncode == 0, proc.stderr
        outs[seed] = {f: (folder / f"g.{f}").read_bytes() for f in ("pdf", "svg", "png")}
    assert outs["1"] == outs["2"]


def _refused(proc, out: Path, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("labelbench: error: "), proc.stderr
    assert message in lines[0]
    assert not out.exists()
    if out.parent.is_dir():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "test/nope"], "metric=test/nope is in no record; metrics: test/acc"),
        (["--rows", "flavour"], "--rows flavour: no record has this key"),
        (["--filter", "regime=none"], "no run records"),
        (["--show", "fixmatch,nope"], "--show nope: no such row in these tables; rows: fixmatch"),
        (["--cols", "regime"], "no budget curves: --cols must include budget"),
    ],
)
def test_bad_selection_is_refused_in_one_line(store, tmp_path, args, message):
    out = tmp_path / "fig.pdf"
    _refused(plot(store, out, *args), out, message)


def test_no_records_and_bad_outputs_are_refused(store, tmp_path):
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    out = tmp_path / "fig.png"
    _refused(plot(empty, out), out, f"no run records in {empty}/runs")
    _refused(plot(tmp_path / "nowhere", out), out, "has no runs/ folder")
    for name in ("fig.jpg", "fig"):
        bad = tmp_path / name
        _refused(plot(store, bad), bad, f"--out {bad}: unknown figure format")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    inside = a_file / "fig.pdf"
    _refused(plot(store, inside), inside, f"--out {inside}: {a_file} is a file, not a folder")
    folder = tmp_path / "folder.svg"
    folder.mkdir()
    proc = plot(store, folder)
    assert proc.returncode == 2 and "is a folder; give a file name" in proc.stderr
    # the leaderboard shares the output's checks
    md = a_file / "board.md"
    _refused(
        run_here("labelbench", "leaderboard", str(store), "--out", str(md), cwd=tmp_path),
        md,
        "is a file, not a folder",
    )


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in read-only folders"
)
def test_read_only_folder_is_refused(store, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        out = locked / "fig.pdf"
        _refused(plot(store, out), out, f"--out {out}: cannot write there (Permission denied)")
    finally:
        locked.chmod(0o700)


def test_out_is_required():
    proc = run_here("labelbench", "plot", "results", cwd=Path.cwd())
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_the_console_script_and_light_imports(store, tmp_path):
    """The real `labelbench plot` writes a figure; `labelbench --help`, the CLI module and
    results.plot import no matplotlib (only drawing does)."""
    out = tmp_path / "fig.svg"
    proc = run_cli("labelbench", "plot", str(store), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fixmatch" in svg_texts(out.read_bytes())
    code = "import labelbench.cli, labelbench.results.plot\nlabelbench.cli.build_parser().format_help()"
    assert heavy_imports(code) == []
