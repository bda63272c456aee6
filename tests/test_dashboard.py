"""The dashboard: one self-contained HTML file whose embedded JSON holds the leaderboards'
own statistics, checked as text and data, and driven in a real headless Chromium through
Playwright (skipped, with the reason, where Playwright or Chromium is missing)."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from conftest import heavy_imports, run_cli, run_here
from labelbench.results import RecordStore, RunRecord
from labelbench.results.dashboard import (
    ConfigCache,
    boards_per_metric,
    embed_json,
    page_data,
    render_dashboard,
)
from labelbench.results.leaderboard import build_leaderboards
from labelbench.results.table import CACHE_VERSION, load_rows

EVIL = "</script><script>window.pwned=1</script>"
ERROR = "diverged at step 7 <b>&\"'"
STRATEGIES = ("supervised", "logreg", EVIL)
BUDGETS = (20, 50, 100)
SEEDS = (0, 1, 2)
NOISE = {"clean": 0.0, "noisy": 0.3}
GPU = "supervised"  # its runs train on two GPUs; the others on one CPU


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
    gpu = strategy == GPU
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
            "noise_rate": NOISE[regime] + 0.01 * seed,
            "indices": list(range(budget)),
            "realised": {"pool_size": 1000, "pool_imbalance": 1.5, "val_noise_rate": 0.0},
        },
        metrics={"test/acc": round(acc, 4), "test/nll": round(1 - acc, 4), "test/ece": 0.05}
        if ok
        else {},
        directions={"test/acc": "max", "test/nll": "min", "test/ece": "min"} if ok else {},
        curve=[],
        timings={"fit_s": 1000.0, "total_s": 1800.0},
        versions={"python": "3.11"},
        git={"sha": "0123abc", "dirty": False},
        host={"hostname": "h"},
        config={
            "seed": seed,
            "strategy": {"_target_": "labelbench.strategies.x.X", "name": strategy},
            "budget": {"total": budget},
            "trainer": {"accelerator": "gpu" if gpu else "cpu", "devices": 2 if gpu else 1},
            "marker": f"cfg-{key}",
        },
        error=None if ok else {"type": "FloatingPointError", "message": ERROR},
    )


def write_store(results: Path) -> list[RunRecord]:
    """digits: 3 strategies (one named like a script tag) x 2 regimes x 3 budgets x 3 seeds,
    plus one failed run and one unreadable file; synthetic: one strategy, one seed."""
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


def render(results: Path, filters: dict[str, str] | None = None, **kwargs) -> tuple[str, dict]:
    """The page of every metric (as `labelbench dashboard` builds it) and its data."""
    loaded = load_rows(results)
    boards = build_leaderboards(loaded.rows, filters=filters)
    metrics, notes = boards_per_metric(
        loaded.rows,
        ("test/acc", boards, ()),
        row_fields=("strategy",),
        col_fields=("regime", "budget"),
        baseline="supervised",
        filters=filters,
        target_drop=0.01,
    )
    assert notes == []
    page = render_dashboard(loaded, boards, filters=filters, metrics=metrics, **kwargs)
    return page, data_of(page)


def data_of(page: str) -> dict:
    assert page.count('id="lb-data"') == 1
    return page_data(page)


def dense(column: list | dict | None, size: int, default=None) -> list:
    """A per-cell column as the page reads it: a list, {cell: value} or None (all default)."""
    if isinstance(column, list):
        return column
    out = [default] * size
    for k, v in (column or {}).items():
        out[int(k)] = v
    return out


def test_rows_carry_timings_devices_and_realised_stats(store):
    results, _ = store
    rows = {
        (r["strategy"], r["regime"], r["budget_label"], r["seed"]): r
        for r in load_rows(results).rows
    }
    gpu, cpu = rows[("supervised", "noisy", "20", 1)], rows[("logreg", "noisy", "20", 1)]
    assert (gpu["cpu_s"], gpu["gpu_s"]) == (0.0, 3600.0)  # total_s 1800 on 2 GPUs
    assert (cpu["cpu_s"], cpu["gpu_s"]) == (1800.0, 0.0)  # on one CPU device
    assert len(gpu) <= 21  # a small dict (CPython: 21 keys fit its smallest table for them)
    # sizes are left out; the noise rate joins the realised statistics
    assert gpu["realised"] == {"noise_rate": 0.31, "pool_imbalance": 1.5, "val_noise_rate": 0.0}
    assert CACHE_VERSION >= 5
    cached = load_rows(results)  # from the cache: the same rows
    assert {r["path"]: r for r in cached.rows}[gpu["path"]] == gpu


def test_json_block_cannot_close_its_tag(store):
    results, _ = store
    page, data = render(results)
    assert EVIL not in page
    block = page.split('id="lb-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&" not in block and block.isascii()
    assert page.lower().count("<script") == 2  # the data block and the page's own script
    assert EVIL in data["boards"][0]["names"]  # the name survives, as data
    assert embed_json({"a": "</script><!--&"}) == '{"a":"\\u003c/script\\u003e\\u003c!--\\u0026"}'
    assert embed_json({"b": "–😀", "c": float("nan")}) == '{"b":"\\u2013\\ud83d\\ude00","c":null}'


def test_dashboard_is_self_contained(store):
    results, _ = store
    page, _ = render(results)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert re.findall(r"https?://[^\s\"']*", page) == ["http://www.w3.org/2000/svg"]  # a name
    for ref in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I):
        assert ref.startswith("#"), ref  # in-page anchors only
    for external in ("<link", "<img", "<iframe", "@import", "url(", "fetch(", "xmlhttprequest"):
        assert external not in page.lower()
    script = page.rsplit("<script>", 1)[1]
    for unsafe in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
    ):
        assert unsafe not in script


def test_data_holds_the_leaderboards_statistics(store):
    results, records = store
    _, data = render(results)
    loaded = load_rows(results)
    assert list(data["metrics"]) == ["test/acc", "test/ece", "test/nll"]
    for metric, direction in (("test/acc", "max"), ("test/nll", "min")):
        boards = build_leaderboards(loaded.rows, metric=metric)
        got = data["metrics"][metric]
        assert got["dir"] == direction
        for lb, shape, stats in zip(boards, data["boards"], got["boards"], strict=True):
            assert shape["scope"] == lb.scope and shape["names"] == [
                lb.row_name(r) for r in lb.rows
            ]
            assert [tuple(c) for c in shape["cols"]] == lb.cols
            size = len(lb.rows) * len(lb.cols)
            for name, default in (("s", None), ("d", None), ("p", None), ("f", 0)):
                stats[name] = dense(stats[name], size, default)
            costs = stats["cost"].get("c", shape["cost"])
            for k, (rk, ck) in enumerate((rk, ck) for rk in lb.rows for ck in lb.cols):
                cell = lb.cell(rk, ck)
                assert stats["n"][k] == cell.n
                assert stats["m"][k] == (None if cell.mean is None else round(cell.mean * 1000))
                assert stats["s"][k] == (None if cell.std is None else round(cell.std * 1000))
                assert stats["d"][k] == (None if cell.delta is None else round(cell.delta * 1000))
                p = cell.p_value
                assert stats["p"][k] == (None if p is None else pytest.approx(p, rel=1e-2))
                assert bool(stats["f"][k] & 1) == cell.best
                assert bool(stats["f"][k] & 4) == (cell.significance > 0)
            assert stats["rank"] == [round(lb.avg_rank[rk] * 100) for rk in lb.rows]
            assert stats["borda"] == [lb.borda[rk] for rk in lb.rows]
            at = {
                (rk, ck): i * len(lb.cols) + j
                for i, rk in enumerate(lb.rows)
                for j, ck in enumerate(lb.cols)
            }
            assert {at[(p.row, p.col)]: p.cost for p in lb.costs} == {
                k: c for k, c in enumerate(costs) if c is not None
            }
            assert stats["cost"]["front"] == [at[(p.row, p.col)] for p in lb.costs if p.pareto]
    # the digits board: supervised at 100 labels, clean: seeds 0..2
    digits = data["boards"][0]
    k = digits["names"].index("supervised") * len(digits["cols"]) + digits["cols"].index(
        ["clean", "100"]
    )
    assert data["metrics"]["test/acc"]["boards"][0]["m"][k] == 942
    # every run once, with its value, seed and config rebuilt from the interned sections
    runs = data["runs"]
    assert len(runs["key"]) == len(records)
    by_key = {r.run_key: r for r in records}
    for i, key in enumerate(runs["key"]):
        record = by_key[key]
        assert runs["seed"][i] == record.seed
        value = record.metrics.get("test/acc")
        assert runs["val"]["test/acc"][i] == (None if value is None else round(value * 1000))
        ids = data["cfg"]["shapes"][runs["cfg"][i]]
        assert ids[0] == -1  # the config's seed is the run's: implicit
        sections = [data["cfg"]["sections"][s] for s in ids[1:]]
        assert {**dict(sections), "seed": record.seed} == record.config
    failed = [r for r in records if r.status == "failed"]
    assert list(runs["err"].values()) == [f"FloatingPointError: {ERROR}"] * len(failed)


def test_realised_and_compute_views(store):
    results, _ = store
    _, data = render(results)
    noisy = next(r for r in data["realised"] if r["dataset"] == "digits" and r["regime"] == "noisy")
    assert noisy["n"] == 3 * 3 * 3
    mean, low, high, n = noisy["stats"]["noise_rate"]
    assert (mean, low, high, n) == (pytest.approx(0.31), 0.3, 0.32, 27)
    assert "pool_size" not in noisy["stats"]
    digits = data["boards"][0]
    cols = len(digits["cols"])
    gpu_cell = digits["names"].index("supervised") * cols
    cpu_cell = digits["names"].index("logreg") * cols + digits["cols"].index(["clean", "50"])
    # 3 seeds x 1800 s x 2 GPUs; logreg's cell: 3 ok + 1 failed run, one CPU each
    assert (digits["cpu"][gpu_cell], digits["gpu"][gpu_cell]) == (0, 3 * 1800 * 2)
    assert (digits["cpu"][cpu_cell], digits["gpu"][cpu_cell]) == (4 * 1800, 0)
    assert digits["fail"] == {str(cpu_cell): 1}


def test_header_and_filters(store):
    results, records = store
    page, data = render(results)
    header = page.split("</header>", 1)[0]
    ok = sum(r.status == "ok" for r in records)
    assert f'<div class="n">{len(records)}</div><div class="k">runs</div>' in header
    assert f'<div class="n">{ok}</div><div class="k">ok</div>' in header
    assert '<div class="n">1</div><div class="k">failed</div>' in header
    assert "1 unreadable record(s)" in header and "zz-broken.json" in header
    assert "not JSON" in header
    filters = {"regime": "clean", "dataset": "digits"}
    page, data = render(results, filters=filters)
    shown = sum(
        r.choices["dataset"] == "digits" and r.choices["regime"] == "clean" for r in records
    )
    assert f"{shown} of the {len(records)} readable records" in page
    assert len(data["runs"]["key"]) == shown and len(data["boards"]) == 1
    assert [r["regime"] for r in data["realised"]] == ["clean"]


def test_configs_are_read_once(store):
    results, _ = store
    loaded = load_rows(results)
    calls: list[int] = []
    cache = ConfigCache()

    def counting(paths):
        calls.append(len(paths))
        return cache(paths)

    boards = build_leaderboards(
        loaded.rows, filters={"strategy.name": "logreg"}, read_configs=counting
    )
    metrics, _ = boards_per_metric(
        loaded.rows, ("test/acc", boards, ()), row_fields=("strategy",),
        col_fields=("regime", "budget"), baseline="supervised",
        filters={"strategy.name": "logreg"}, target_drop=0.01, read_configs=counting,
    )  # fmt: skip
    data = data_of(render_dashboard(loaded, boards, metrics=metrics, configs=counting))
    assert set(data["metrics"]) == {"test/acc", "test/ece", "test/nll"}
    assert len(data["runs"]["key"]) == 2 * 3 * 3 + 1
    assert len(cache.configs) == len(loaded.rows)  # each record's config read once


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metric", "test/acx"], "metric=test/acx is in no record; metrics:"),
        (["--filter", "datasett=digits"], "--filter datasett: no record has this key"),
    ],
)
def test_dashboard_bad_input(store, tmp_path, extra, message):
    results, _ = store
    out = tmp_path / "dash.html"
    proc = run_here(
        "labelbench", "dashboard", str(results), "--out", str(out), *extra, cwd=tmp_path
    )
    assert proc.returncode == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("labelbench: error:")]
    assert message in line
    assert not out.exists()


def test_dashboard_without_records_or_writable_out(store, tmp_path):
    results, _ = store
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    for where in (empty, tmp_path / "nowhere"):
        proc = run_here(
            "labelbench", "dashboard", str(where), "--out", str(tmp_path / "d.html"), cwd=tmp_path
        )
        assert proc.returncode == 2 and proc.stderr.startswith("labelbench: error: ")
        assert len(proc.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker / "dash.html", tmp_path):
        proc = run_here("labelbench", "dashboard", str(results), "--out", str(out), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("labelbench: error: --out")
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob(".*.tmp"))
    assert blocker.read_text() == "not a folder"


# --- in a real browser ----------------------------------------------------------------------


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium); browser test skipped"
        print(reason)
        pytest.skip(reason)
    return exe


def playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e .[dev]); browser test skipped"
        print(reason)
        pytest.skip(reason)
    return sync_playwright


def test_dashboard_in_headless_chromium(store, tmp_path):
    exe, sync_playwright = chromium(), playwright()
    results, _ = store
    out = tmp_path / "dashboard.html"
    proc = run_cli(
        "labelbench", "dashboard", str(results), "--out", str(out), cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: errors.append(f"request {r.url}") if not r.url.startswith("file:") else None,
        )
        page.goto(out.resolve().as_uri())
        page.wait_for_function("window.__lbReady !== undefined", timeout=10_000)
        assert page.evaluate("window.pwned") is None  # the evil name ran nothing ...
        assert page.locator("#boards th", has_text=EVIL).count() == 1  # ... and shows as text
        assert page.locator("table").count() >= 2 and page.locator("#charts svg").count() == 3
        first_cell = "#boards section[data-board='0'] tbody tr:first-child td.cell"
        assert re.fullmatch(
            r"0\.9\d\d ± 0\.00\d \(3\).*", page.locator(first_cell).first.inner_text()
        )

        # switch the metric: the values and the title follow
        page.select_option("#ctl-metric", "test/nll")
        assert "test/nll (lower is better)" in page.locator("#boards h3").first.inner_text()
        assert re.match(r"0\.0\d\d ± ", page.locator(first_cell).first.inner_text())
        assert page.evaluate("window.__lbRender.metric") == "test/nll"

        # filter: one regime; the other's columns, curves and realised rows go
        page.select_option("#ctl-regime", "clean")
        heads = page.locator("#boards section[data-board='0'] thead th").all_inner_texts()
        assert "clean 20" in heads and not any(h.startswith("noisy") for h in heads)
        assert "avg rank*" in heads  # computed over every column: said so
        assert page.locator("#charts figure").count() == 2
        assert page.locator("#realised-body td", has_text="noisy").count() == 0

        # hide a strategy on the curves: its line goes, its legend key stays (struck out)
        lines = page.locator("#charts figure[data-board='0'] g.series")
        assert lines.count() == 3
        page.locator("#charts figure[data-board='0'] .keys button", has_text="logreg").click()
        assert lines.count() == 2
        assert (
            page.locator("#charts figure[data-board='0'] g.series[data-row='logreg']").count() == 0
        )

        # hover a point of a curve: its mean ± sd and n (and its cell's Δ and p)
        page.locator(
            "#charts figure[data-board='0'] g.series[data-row='supervised'] circle"
        ).last.hover()
        point = page.locator("#tip").inner_text()
        assert point.startswith("supervised · 100 labels") and "n=3" in point
        # hover a cell: a tooltip with mean ± sd, n, Δ and p
        cell = (
            page.locator("#boards section[data-board='0'] tbody tr", has_text="logreg")
            .locator("td.cell")
            .nth(1)
        )
        cell.hover()
        tip = page.locator("#tip")
        assert tip.is_visible() and "n=" in tip.inner_text() and "p=" in tip.inner_text()
        assert "Δ vs supervised" in tip.inner_text()

        # open a cell: its runs, the failed one with its error, a run's config
        cell.click()
        drawer = page.locator("#runs")
        assert drawer.is_visible() and "logreg · clean 50" in drawer.locator("h3").inner_text()
        runs = drawer.locator("details.run")
        assert runs.count() == 4
        assert ERROR in drawer.locator(".err").inner_text()
        runs.nth(1).locator("summary").click()
        assert "marker: cfg-" in runs.nth(1).locator("pre.config").inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

        # sort a table by a column: best first
        page.keyboard.press("Escape")
        page.locator("#ctl-reset").click()
        page.select_option("#ctl-metric", "test/acc")
        page.locator("#boards section[data-board='0'] thead th", has_text="clean 100").click()
        first = page.locator("#boards section[data-board='0'] tbody tr th").first.inner_text()
        assert first == EVIL  # the best test/acc in every column
        browser.close()
    assert errors == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    print(f"dashboard screenshot: {tmp_path / 'dashboard.png'}")


def test_large_pages_compress_and_draw_as_they_are_scrolled_to(store, tmp_path):
    exe, sync_playwright = chromium(), playwright()
    results, _ = store
    out = tmp_path / "lazy.html"
    page, data = render(results, generated="now", lazy_above=0, gzip_above=0)  # all large
    assert data == {**render(results, generated="now")[1], "lazyAbove": 0}
    block = page.split('data-encoding="gzip+base64">', 1)[1].split("</script>", 1)[0]
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", block)
    out.write_text(page)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 600})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.resolve().as_uri())
        page.wait_for_function("window.__lbReady !== undefined", timeout=10_000)
        assert page.locator("#boards section[data-board='0'] table").count() == 1  # in view
        figures = page.locator("#charts figure")
        compute = page.locator("#compute-body table.compute")
        assert figures.count() == 3 and compute.count() == 0  # not drawn yet: far below
        page.locator("#failed").scroll_into_view_if_needed()
        page.wait_for_function(
            "document.querySelectorAll('#compute-body table.compute').length == 2"
        )
        figures.last.scroll_into_view_if_needed()
        page.wait_for_function("document.querySelectorAll('#charts svg').length == 3")
        # a metric switch draws again what is in view
        page.select_option("#ctl-metric", "test/nll")
        page.wait_for_function(
            "[...document.querySelectorAll('#charts svg title')].some(t => t.textContent.includes('test/nll'))"
        )
        browser.close()
    assert errors == []


def test_dashboard_imports_stay_light():
    assert heavy_imports("import labelbench.results.dashboard") == []
