"""The dashboard: one self-contained, escaped HTML file, checked as text and in a real
headless Chromium (skipped, with the reason, where no Chromium is installed)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import run_cli
from labelbench.results import RecordStore, RunRecord
from labelbench.results.dashboard import budget_svg, nice_ticks, render_dashboard
from labelbench.results.leaderboard import Efficiency, build_leaderboards
from labelbench.results.table import load_rows

EVIL = "<script>alert(1)</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ERROR = "diverged at step 7 <b>&\"'"
ERROR_ESCAPED = "diverged at step 7 &lt;b&gt;&amp;&quot;&#x27;"
STRATEGIES = ("supervised", "logreg", EVIL)
BUDGETS = (20, 50, 100)
SEEDS = (0, 1, 2)


def make_record(
    strategy: str,
    budget: int,
    seed: int,
    *,
    regime: str = "clean",
    dataset: str = "digits",
    status: str = "ok",
) -> RunRecord:
    key = hashlib.sha1(f"{dataset}|{regime}|{strategy}|{budget}|{seed}".encode()).hexdigest()[:16]
    acc = 0.9 + 0.02 * BUDGETS.index(budget) + 0.01 * STRATEGIES.index(strategy) + 0.002 * seed
    ok = status == "ok"
    return RunRecord(
        run_key=key,
        status=status,
        choices={
            "dataset": dataset,
            "regime": regime,
            "budget": "total",
            "strategy": strategy,
            "model": "mlp",
        },
        seed=seed,
        split_seed=0,
        labels={
            "budget": str(budget),
            "budget_size": budget,
            "count": budget,
            "val_count": 10,
            "val_paid": False,
            "cost": float(budget),
            "noise_rate": 0.0,
            "indices": list(range(budget)),
        },
        metrics={"test/acc": round(acc, 4), "test/nll": round(1 - acc, 4)} if ok else {},
        directions={"test/acc": "max", "test/nll": "min"} if ok else {},
        curve=[],
        timings={"fit_s": 1.0, "total_s": 2.0},
        versions={"python": "3.11"},
        git={"sha": "0123abc", "dirty": False},
        host={"hostname": "h"},
        config={
            "seed": seed,
            "strategy": {"_target_": "labelbench.strategies.x.X", "name": strategy},
            "budget": {"total": budget},
            "marker": f"cfg-{key}",
        },
        error=None if ok else {"type": "FloatingPointError", "message": ERROR},
    )


def write_store(results: Path) -> list[RunRecord]:
    """digits: 3 strategies x 2 regimes x 3 budgets x 3 seeds, plus one failed run and one
    unreadable file; synthetic: one strategy, one seed."""
    store = RecordStore(results)
    records = [
        make_record(s, b, seed, regime=regime)
        for regime in ("clean", "noisy")
        for s in STRATEGIES
        for b in BUDGETS
        for seed in SEEDS
    ]
    records.append(make_record("logreg", 50, 3, status="failed"))
    records += [make_record("supervised", b, 0, dataset="synthetic") for b in BUDGETS]
    for r in records:
        store.write(r)
    (store.runs_dir / "zz-broken.json").write_text("{not json")
    return records


@pytest.fixture
def store(tmp_path) -> tuple[Path, list[RunRecord]]:
    results = tmp_path / "results"
    return results, write_store(results)


def render(results: Path, **kwargs) -> tuple[str, list]:
    loaded = load_rows(results)
    boards = build_leaderboards(loaded.rows)
    return render_dashboard(loaded, boards, **kwargs), boards


def section(page: str, start: str, end: str | None = None) -> str:
    body = page.split(f'id="{start}"', 1)[1]
    return body.split(f'id="{end}"', 1)[0] if end else body


def test_dashboard_is_escaped_and_self_contained(store):
    results, _ = store
    page, _ = render(results)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert EVIL not in page
    assert EVIL_ESCAPED in page
    assert "<script" not in page.lower()  # no JavaScript at all, least of all a record's
    assert "http://" not in page and "https://" not in page
    for ref in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I):
        assert ref.startswith("#"), ref  # in-page anchors only
    for external in ("<link", "<img", "<iframe", "@import", "url("):
        assert external not in page.lower()


def test_dashboard_content(store):
    results, records = store
    page, boards = render(results)
    # header: counts and the unreadable record with its reason
    header = page.split("</header>", 1)[0]
    ok = sum(r.status == "ok" for r in records)
    assert f'<div class="n">{len(records)}</div><div class="k">runs</div>' in header
    assert f'<div class="n">{ok}</div><div class="k">ok</div>' in header
    assert '<div class="n">1</div><div class="k">failed</div>' in header
    assert "1 unreadable record(s)" in header and "zz-broken.json" in header
    assert "not JSON" in header
    # leaderboards and their values
    assert [lb.scope for lb in boards] == [
        {"dataset": "digits", "model": "mlp"},
        {"dataset": "synthetic", "model": "mlp"},
    ]
    assert section(page, "leaderboards", "curves").count("<table>") == len(boards)
    assert "0.942 ± 0.002" in page  # supervised at 100 labels, seeds 0..2
    # one chart per (board, group): digits clean + noisy, synthetic clean
    curves = section(page, "curves", "failed")
    assert curves.count("<svg") == sum(len(lb.groups) for lb in boards) == 3
    assert page.count("<svg") == 3
    assert "dataset=digits · model=mlp · regime=noisy" in curves
    assert curves.count("<polyline") == 3 + 3 + 1
    assert "test/acc" in curves and "labels" in curves
    for budget in BUDGETS:
        assert f">{budget}</text>" in curves  # ticks are the budget sizes
    assert curves.count(f">{EVIL_ESCAPED}<title>") == 2  # legend entries, as text
    # the failed run and its escaped error
    failed = section(page, "failed", "runs")
    bad = next(r for r in records if r.status == "failed")
    assert ERROR_ESCAPED in failed and bad.run_key in failed
    assert ERROR not in page
    # every run's config, failed first
    runs = section(page, "runs")
    assert runs.count('<details class="run">') == len(records)
    for r in records:
        assert f"marker: cfg-{r.run_key}" in runs
    assert runs.index(bad.run_key) < runs.index(records[0].run_key)
    assert f"name: {EVIL_ESCAPED}" in runs


def test_dashboard_caps_the_run_list(store):
    results, records = store
    page, _ = render(results, max_runs=5)
    runs = section(page, "runs")
    assert runs.count('<details class="run">') == 5
    assert f"Showing the first 5 of {len(records)} runs; {len(records) - 5} left out" in runs


def test_dashboard_follows_filters(store):
    results, records = store
    loaded = load_rows(results)
    boards = build_leaderboards(loaded.rows, filters={"regime": "clean", "dataset": "digits"})
    page = render_dashboard(loaded, boards)
    shown = sum(
        r.choices["dataset"] == "digits" and r.choices["regime"] == "clean" for r in records
    )
    assert section(page, "runs").count('<details class="run">') == shown
    assert f"{shown} of the {len(records)} readable records" in page
    assert page.count("<svg") == 1


def test_budget_svg_log_scale_and_single_budget():
    colours = {("a",): ("#111111", "")}
    wide = Efficiency(
        [(20, 0.7, 0.02, 3), (100, 0.8, 0.01, 3), (1169, 0.95, None, 1)], 0.9, None, None
    )
    svg = budget_svg([(("a",), wide)], "test/acc", colours, title_text="t")
    assert "labels (log scale)" in svg
    assert ">20</text>" in svg and ">1169</text>" in svg
    one = Efficiency([(50, 0.5, None, 1)], 0.5, None, None)
    svg = budget_svg([(("a",), one)], "test/nll", colours)
    assert "<polyline" not in svg and "<circle" in svg and ">50</text>" in svg
    ticks, decimals = nice_ticks(0.7, 1.0)
    assert ticks[0] <= 0.7 and ticks[-1] >= 1.0 and decimals == 1


class _DOM(HTMLParser):
    """Tags and visible text of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data) -> None:
        self.text.append(data)


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium); browser test skipped"
        print(reason)
        pytest.skip(reason)
    return exe


def test_dashboard_in_headless_chromium(store, tmp_path):
    exe = chromium()
    results, _ = store
    out = tmp_path / "dashboard.html"
    proc = run_cli(
        "labelbench", "dashboard", str(results), "--out", str(out), cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    browser = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = out.resolve().as_uri()

    dom = subprocess.run(
        [*browser, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _DOM()
    parsed.feed(dom.stdout)
    text = "".join(parsed.text)
    assert "script" not in parsed.tags  # the record's name stayed text, nothing ran
    assert "svg" in parsed.tags and "polyline" in parsed.tags and "details" in parsed.tags
    for name in STRATEGIES:
        assert name in text  # the evil one as literal text
    assert re.search(r"0\.9\d\d ± 0\.00\d", text)
    assert "diverged at step 7 <b>&\"'" in text

    png = tmp_path / "dashboard.png"
    shot = subprocess.run(
        [*browser, f"--screenshot={png}", "--window-size=1400,2000", url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 10_000
    print(f"dashboard screenshot: {png}")


def test_dashboard_imports_stay_light():
    code = (
        "import sys, labelbench.results.dashboard\n"
        "heavy = {'torch', 'lightning', 'pytorch_lightning', 'pandas', 'scipy', 'plotly', 'matplotlib'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
