"""Make docs/assets/dashboard.png: the dashboard of a real record store, with a cell opened.

The store is the committed reference runs (results/reference/<name>/runs, made by `make
reference`), copied into a temporary folder; the page is built with `labelbench dashboard`
and photographed in a headless Chromium driven by Playwright, 1400 px wide: the controls,
a leaderboard, the budget curve and the runs of one cell.

    .venv/bin/python scripts/docs/screenshot.py [--stores demo] [--cell "label_spreading|clean 50"]
        [--out docs/assets/dashboard.png]

Needs `pip install -e .[dev]` (Playwright) and a Chromium on PATH; works offline.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stores",
        default="demo",
        help="reference stores to merge, comma-separated (default: demo)",
    )
    parser.add_argument(
        "--cell",
        default="label_spreading|clean 50",
        help="the cell to open: ROW|COLUMN as the table shows them",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "assets" / "dashboard.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1180)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("no chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="labelbench-") as tmp:
        store = Path(tmp) / "results"
        (store / "runs").mkdir(parents=True)
        for name in args.stores.split(","):
            runs = ROOT / "results" / "reference" / name / "runs"
            if not runs.is_dir():
                sys.exit(f"{runs} is missing: run `make reference` first")
            for record in runs.glob("*.json"):
                shutil.copy(record, store / "runs" / record.name)
        page_path = Path(tmp) / "dashboard.html"
        subprocess.run(
            [str(BIN / "labelbench"), "dashboard", str(store), "--out", str(page_path)],
            check=True,
        )
        row, col = args.cell.split("|")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(page_path.as_uri())
            page.wait_for_function("window.__lbReady !== undefined")
            table = page.locator("#boards section.board").first
            heads = table.locator("thead th").all_inner_texts()
            tr = table.locator("tbody tr").filter(has=page.locator("th", has_text=row)).first
            tr.locator("td").nth(heads.index(col) - 1).click()
            page.locator("#runs details.run summary").first.click()  # a run's config
            page.mouse.move(5, 5)  # no tooltip in the picture
            page.evaluate("document.querySelector('.controls').style.position = 'static'")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
