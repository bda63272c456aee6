"""The dashboard at scale: generate N realistic run records, build `labelbench dashboard`
through the CLI, and measure the file's size, the CLI's time and, in a headless Chromium
driven by Playwright, the time to interactive (the page sets `window.__lbReady` when its
first render is done; read against navigation start) and one metric switch.
Targets at 100k records: <= 10 MB, interactive within 3 s. The CLI's time has no target
in the issue; its rows in --json carry a 60 s ceiling.

Two shapes of store: `seeds` is scripts/bench/aggregate.py's (720 cells, ~139 seeds each),
with realised label statistics per regime and some runs on GPUs; `cells` has many more
cells and three seeds (the harder one on size: every cell carries its statistics for every
metric).

    .venv/bin/python scripts/bench/dashboard.py [--n 100000] [--variant seeds|cells|both]
        [--dir /tmp/labelbench-bench-dashboard] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import aggregate

from benchlib import BIN, cold_and_warm, figure, write_store
from labelbench.results.dashboard import page_data

# Realised statistics as reveal.accounting records them, per regime of aggregate.REGIMES
REALISED = {
    "clean": {"noise_rate": 0.0},
    "noisy_sym": {"noise_rate": 0.4},
    "noisy_asym": {"noise_rate": 0.2},
    "long_tail": {"noise_rate": 0.0, "pool_imbalance": 10.0},
    "crowd": {"annotation_acc": 0.7, "majority_vote_acc": 0.82, "annotations_per_item": 3.0},
}
GPU_STRATEGIES = {"fixmatch", "mean_teacher"}  # these train on one GPU in the bench store
CELLS_SHAPE = {  # the `cells` variant: 20 x 12 x 10 x 14 = 33600 cells, ~3 seeds each
    "DATASETS": [f"dataset{i}" for i in range(20)],
    "REGIMES": [f"regime{i}" for i in range(12)],
    "BUDGETS": [(s, str(s)) for s in (10, 20, 40, 60, 80, 160, 320, 640, 1000, 1169)],
    "STRATEGIES": ["supervised", *(f"strategy{i}" for i in range(13))],
}


def records(n: int, variant: str):
    """aggregate.make_records' records, with realised label statistics, timings that vary
    and GPU runs; the `cells` variant on a wider grid of choices."""
    if variant == "cells":
        for name, values in CELLS_SHAPE.items():
            setattr(aggregate, name, values)
    rng = random.Random(1)
    for r in aggregate.make_records(n):
        regime = r.choices["regime"]
        stats = dict(REALISED.get(regime, {"noise_rate": rng.choice((0.0, 0.2, 0.4))}))
        r.labels["noise_rate"] = stats.pop("noise_rate", None)
        r.labels["realised"] = {
            "pool_size": 1169,
            "pool_imbalance": stats.pop("pool_imbalance", 1.05) * rng.uniform(0.98, 1.02),
            "val_noise_rate": r.labels["noise_rate"] or 0.0,
            **{k: v * rng.uniform(0.97, 1.03) for k, v in stats.items()},
        }
        total = rng.uniform(20, 600) * (r.labels["budget_size"] / 1169) ** 0.5
        r.timings = {"load_s": 0.1, "fit_s": total * 0.9, "eval_s": 0.05, "total_s": total}
        if r.choices["strategy"] in GPU_STRATEGIES:
            r.config["trainer"] = {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed"}
        yield r


def in_browser(page_path: Path, metric: str) -> dict[str, float]:
    """Time to interactive and one metric switch, in a headless Chromium (Playwright)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("no chromium on PATH: cannot measure the page in a browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t = time.perf_counter()
        page.goto(page_path.resolve().as_uri(), timeout=60_000)
        page.wait_for_function("window.__lbReady !== undefined", timeout=60_000)
        wall = time.perf_counter() - t
        ready = page.evaluate("window.__lbReady") / 1000  # ms since navigation start
        switch = page.evaluate(
            """async (metric) => {
                const sel = document.getElementById("ctl-metric");
                const t = performance.now();
                sel.value = metric;
                sel.dispatchEvent(new Event("change"));
                // until what is in view is drawn: the next frame, then its lazy parts
                await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
                return performance.now() - t;
            }""",
            metric,
        )
        assert page.evaluate("window.__lbRender.metric") == metric
        cell = page.locator("#boards td.cell").first
        t = time.perf_counter()
        cell.click()
        page.locator("#runs details.run").first.wait_for()
        open_cell = time.perf_counter() - t
        browser.close()
    return {"ready_s": ready, "wall_s": wall, "switch_s": switch / 1000, "open_s": open_cell}


def measure(root: Path, variant: str) -> list[dict]:
    out = root / "dashboard.html"
    cli = [str(BIN / "labelbench"), "dashboard", str(root), "--out", str(out)]
    times = cold_and_warm(cli, root)
    size = out.stat().st_size / 1e6
    data = page_data(out.read_text())
    metrics = list(data["metrics"])
    cells = sum(len(b["cnt"]) for b in data["boards"])
    browser = in_browser(out, metrics[1] if len(metrics) > 1 else metrics[0])
    print(
        f"[{variant}] {len(data['runs']['key'])} runs, {cells} cells, {len(metrics)} metrics:"
        f" file {size:.2f} MB (target <= 10); CLI cold cache {times['cold'][0]:.1f} s"
        f" ({times['cold'][1]:.0f} MB peak), warm {times['warm'][0]:.1f} s"
        f" ({times['warm'][1]:.0f} MB); Chromium: interactive {browser['ready_s']:.2f} s after"
        f" navigation start (target <= 3), metric switch {browser['switch_s']:.2f} s, open a"
        f" cell {browser['open_s']:.2f} s"
    )
    n = len(data["runs"]["key"])
    return [
        figure(f"dashboard ({variant}): file size, {n} records", 10, size, "MB", cells=cells),
        figure(f"dashboard ({variant}): interactive in Chromium, {n} records", 3,
               browser["ready_s"], "s", switch_s=browser["switch_s"]),
        figure(f"dashboard ({variant}): labelbench dashboard, cold cache", 60, times["cold"][0],
               "s", times["cold"][1]),
        figure(f"dashboard ({variant}): labelbench dashboard, warm cache", 60, times["warm"][0],
               "s", times["warm"][1]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--variant", choices=("seeds", "cells", "both"), default="both")
    parser.add_argument("--dir", default="/tmp/labelbench-bench-dashboard")
    parser.add_argument("--keep", action="store_true", help="reuse records already in --dir")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args()
    figures = []
    for variant in ("seeds", "cells") if args.variant == "both" else (args.variant,):
        root = Path(args.dir) / variant
        write_store(root, args.n, records(args.n, variant), args.keep)
        figures += measure(root, variant)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
