"""The dashboard: one self-contained, interactive HTML page of a record store.

Python computes every number (the leaderboards, built once per metric by
leaderboard.build_leaderboards with the user's options; compute hours; realised label
statistics) and embeds them, compactly, as JSON in a `<script type="application/json">`
block: ASCII, with `<`, `>` and `&` escaped so no string can end the script. Past
GZIP_ABOVE bytes the JSON goes in gzip-compressed and base64-encoded, and the browser's
own DecompressionStream inflates it. A small vanilla script (dashboard_assets/dashboard.js,
inlined; no chart library, no network) only presents: metric switch, filters, sorting,
legend toggles, tooltips and run lists; every string goes into the page as text
(textContent, createTextNode, setAttribute), never as HTML, and nothing is evaluated.

Layout of the data (see `dashboard_data`): runs are columns (run_key, seed, error, one
value per metric, a config id); each board lists its rows, columns and per cell the runs
it holds (ranges into the runs, in cell order); statistics are per metric and per board,
one entry per cell (a list, or {cell: value} where few cells differ from a default). Cell
statistics and run values are integers in thousandths (the three decimals the tables
print). A budget curve built from cells is just its row's index (its points are the
cells'). Configs are interned: each distinct top-level section of a config (dataset,
strategy ...) is stored once, a run points at a tuple of sections, and a top-level `seed`
equal to the run's seed is left implicit.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labelbench.results import render
from labelbench.results.leaderboard import (
    FIELDS,
    NO_MODEL,
    Leaderboard,
    LeaderboardError,
    build_leaderboards,
    fmt,
    is_field,
    matches,
)
from labelbench.results.table import RecordRows

if TYPE_CHECKING:
    from labelbench.results.published import Published

SCALE = 1000  # cell statistics: thousandths, the three decimals the tables print (fmt)
RUN_SCALE = SCALE  # one run's value: as the cells'
SHOW_PROBLEMS = 5
# Above this many cells the page draws tables, charts and cost views as they come near the
# viewport (most of a 100k-run page is never scrolled to); below, all at once.
LAZY_ABOVE = 4000
# The data is plain JSON while the page stays within the 10 MB the issue allows (100k runs
# of 6 metrics: 5-9.4 MB); only larger data (more metrics, more configs) goes in
# gzip-compressed, in base64 (about a third of the size), which the browser inflates with
# its DecompressionStream.
GZIP_ABOVE = 9_500_000
ASSETS = Path(__file__).with_name("dashboard_assets")
esc = html.escape

# (boards, published cells no board shows) of one metric
MetricBoards = tuple[list[Leaderboard], Sequence["Published"]]


def metrics_with_direction(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics some ok row carries with a direction ('max'/'min'), sorted."""
    seen: set[str] = set()
    for r in rows:
        if r["status"] == "ok" and r.get("trial") is None:  # a trial is in no board
            seen.update(r["directions"])
    return sorted(seen)


class ConfigCache:
    """A `read_configs` for build_leaderboards that reads each record's config once (with
    table.load_configs) and keeps it for the run lists."""

    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any] | None] = {}

    def __call__(self, paths: list[str]) -> list[dict[str, Any] | None]:
        from labelbench.results.table import load_configs

        need = [p for p in dict.fromkeys(paths) if p not in self.configs]
        if need:
            self.configs.update(zip(need, load_configs(need), strict=True))
        return [self.configs[p] for p in paths]


def boards_per_metric(
    rows: list[dict[str, Any]],
    first: tuple[str, list[Leaderboard], Sequence[Published]],
    *,
    row_fields: Sequence[str],
    col_fields: Sequence[str],
    baseline: str | None,
    filters: dict[str, str] | None,
    target_drop: float,
    read_configs: Callable[[list[str]], list[dict[str, Any] | None]] | None = None,
    compare: Callable[[list[Leaderboard]], Sequence[Published]] | None = None,
) -> tuple[dict[str, MetricBoards], list[str]]:
    """The leaderboards of every metric the rows carry with a direction, built with the same
    options as `first` (the user's metric, its boards and their published cells not run,
    which come first); `compare` puts the published values beside the other metrics'
    boards and returns those not run. Returns them and notes on the metrics left out
    (records that disagree on a direction)."""
    metric, boards, not_run = first
    out: dict[str, MetricBoards] = {metric: (boards, not_run)}
    notes = []
    for other in metrics_with_direction(rows):
        if other in out:
            continue
        try:
            built = build_leaderboards(
                rows,
                metric=other,
                row_fields=row_fields,
                col_fields=col_fields,
                baseline=baseline,
                filters=filters,
                target_drop=target_drop,
                read_configs=read_configs,
            )
        except LeaderboardError as e:
            notes.append(f"dashboard: metric {other} left out: {e}")
            continue
        if built:
            out[other] = (built, compare(built) if compare else ())
    return out, notes


def render_dashboard(
    loaded: RecordRows,
    boards: list[Leaderboard],
    generated: str | None = None,
    filters: dict[str, str] | None = None,
    not_run: Sequence[Published] = (),
    *,
    metrics: dict[str, MetricBoards] | None = None,
    configs: Callable[[list[str]], list[dict[str, Any] | None]] | None = None,
    lazy_above: int = LAZY_ABOVE,
    gzip_above: int = GZIP_ABOVE,
) -> str:
    """The whole dashboard as one HTML document (a string). `boards` (with the published
    cells no board shows, `not_run`) are the first metric's; `metrics` may add other
    metrics' boards built with the same options (boards_per_metric). Counts and runs cover
    the runs placed in the boards (pass the leaderboards' `filters` to drop seed/status
    filtered runs too); unreadable records are all reported. `configs` reads the records'
    configs (default: table.load_configs). Pages of more than `lazy_above` cells draw their
    parts as they are scrolled to; data of more than `gzip_above` bytes is compressed."""
    first = boards[0].metric if boards else "test/acc"
    by_metric: dict[str, MetricBoards] = {first: (boards, not_run)}
    for name, value in (metrics or {}).items():
        by_metric.setdefault(name, value)
    rows = in_view(loaded.rows, boards, filters)
    when = generated or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = dashboard_data(by_metric, rows, configs or ConfigCache(), when, _store_dir(loaded))
    data["lazyAbove"] = lazy_above
    css = (ASSETS / "dashboard.css").read_text(encoding="utf-8")
    js = (ASSETS / "dashboard.js").read_text(encoding="utf-8")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>labelbench dashboard — {esc(first)}</title>",
        f"<style>{css}</style></head><body>",
        _header(loaded, rows, boards, when),
        '<div id="controls" class="controls" aria-label="view controls"></div>',
        '<noscript><p class="note">This dashboard needs JavaScript to draw its tables and'
        " charts. Without it, use <code>labelbench leaderboard --format html</code>.</p>"
        "</noscript>",
        '<section id="leaderboards"><h2>Leaderboards</h2><div id="boards"></div></section>',
        '<section id="curves"><h2>Budget curves</h2><div id="charts" class="charts"></div>'
        "</section>",
        '<section id="realised"><h2>Realised label statistics</h2><div id="realised-body">'
        "</div></section>",
        '<section id="compute"><h2>Compute and label cost</h2><div id="compute-body"></div>'
        "</section>",
        '<section id="failed"><h2>Failed runs</h2><div id="failed-body"></div></section>',
        '<aside id="runs" class="drawer" hidden aria-label="runs of a cell"></aside>',
        '<div id="tip" class="tip" role="tooltip" hidden></div>',
        data_block(embed_json(data), gzip_above),
        f"<script>{js}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _u_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def embed_json(data: Any) -> str:
    """JSON for a `<script type="application/json">` block, ASCII only, with `<`, `>` and
    `&` as \\u escapes, so that no string in it can close the script (`</script>`) or open
    a comment (`<!--`); JSON.parse reads the escapes back as the characters. NaN (a config
    may hold one) becomes null."""
    import orjson

    text = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _NON_ASCII.sub(_u_escape, text)


def data_block(text: str, gzip_above: int = GZIP_ABOVE) -> str:
    """The `<script>` element holding the page's data: the escaped JSON (`embed_json`) as
    application/json, or, above `gzip_above` bytes, gzip-compressed and base64-encoded (no
    `<` in either)."""
    if len(text) <= gzip_above:
        return f'<script type="application/json" id="lb-data">{text}</script>'
    import base64
    import gzip

    packed = base64.b64encode(gzip.compress(text.encode(), compresslevel=6, mtime=0)).decode()
    return (
        '<script type="application/octet-stream" id="lb-data" data-encoding="gzip+base64">'
        f"{packed}</script>"
    )


def page_data(page: str) -> dict[str, Any]:
    """The data embedded in a dashboard page (for tests and tools)."""
    start = page.index('id="lb-data"')
    tag_end = page.index(">", start)
    block = page[tag_end + 1 : page.index("</script>", start)]
    if 'data-encoding="gzip+base64"' in page[start:tag_end]:
        import base64
        import gzip

        block = gzip.decompress(base64.b64decode(block)).decode()
    return json.loads(block)


# --- the data -------------------------------------------------------------------------------


def _q(value: float | None, digits: int = 3) -> int | None:
    """`value` as the integer count of 10**-digits that fmt(value, digits) prints."""
    if value is None:
        return None
    scaled = value * 10**digits
    if abs(scaled - math.floor(scaled) - 0.5) > 1e-6:
        return round(scaled)
    return round(float(f"{value:.{digits}f}") * 10**digits)  # near a tie: as printed


def _p(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def dashboard_data(
    by_metric: dict[str, MetricBoards],
    rows: list[dict[str, Any]],
    read_configs: Callable[[list[str]], list[dict[str, Any] | None]],
    generated: str,
    store: str | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data (layout: the module docstring).
    The boards of every metric share their tables, rows, columns and runs (they were built
    from the same rows with the same options); only their statistics differ."""
    first = next(iter(by_metric))
    boards = by_metric[first][0]
    metric_names = list(by_metric)
    runs: list[dict[str, Any]] = []
    index: dict[str, int] = {}  # record path -> run index
    board_data = []
    for lb in boards:
        by_cell: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for rk, ck, r in lb.entries:
            by_cell[(rk, ck)].append(r)
        counts, placed, fails, cpu, gpu = [], [], {}, [], []
        for i, rk in enumerate(lb.rows):
            for j, ck in enumerate(lb.cols):
                cell_runs = sorted(
                    by_cell.get((rk, ck), ()),
                    key=lambda r: (r["status"] == "ok", r["seed"], r["run_key"]),
                )
                counts.append(len(cell_runs))
                k = i * len(lb.cols) + j
                failed = sum(r["status"] != "ok" for r in cell_runs)
                if failed:
                    fails[k] = failed
                cpu_s, gpu_s = compute_seconds(cell_runs)
                cpu.append(round(cpu_s, 1))  # a knn run takes well under a second
                gpu.append(round(gpu_s, 1))
                for r in cell_runs:
                    if r["path"] not in index:
                        index[r["path"]] = len(runs)
                        runs.append(r)
                    placed.append(index[r["path"]])
        budget_at = lb.col_fields.index("budget") if "budget" in lb.col_fields else None
        sizes = {r["budget_label"]: r["budget_size"] for _, _, r in lb.entries}
        board_data.append(
            {
                "scope": lb.scope,
                "rows": [list(rk) for rk in lb.rows],
                "names": [lb.row_name(rk) for rk in lb.rows],
                "cols": [list(ck) for ck in lb.cols],
                "base": lb.rows.index(lb.baseline) if lb.baseline in lb.rows else None,
                "groups": [list(g) for g in lb.groups],
                "size": [sizes.get(ck[budget_at]) for ck in lb.cols]
                if budget_at is not None
                else None,
                "cnt": counts,
                "idx": _ranges(placed),
                "fail": fails,
                "cpu": cpu,
                "gpu": gpu,
            }
        )
    per_metric = {}
    for name, (mboards, not_run) in by_metric.items():
        if [(lb.scope, lb.rows, lb.cols) for lb in mboards] != [
            (lb.scope, lb.rows, lb.cols) for lb in boards
        ]:
            raise ValueError(f"the boards of {name} do not have the tables of {first}")
        stats = [_board_stats(lb) for lb in mboards]
        for shape, st in zip(board_data, stats, strict=True):
            shape.setdefault("cost", st["cost"]["c"])
            if st["cost"]["c"] == shape["cost"]:  # as a rule: label costs are the metrics'
                del st["cost"]["c"]
        per_metric[name] = {
            "dir": mboards[0].direction,
            "boards": stats,
            "notRun": render.not_run_lines(not_run),
        }
    sections, shapes, run_cfg = _interned_configs(runs, read_configs([r["path"] for r in runs]))
    values = {
        name: [
            None if (v := r["metrics"].get(name)) is None else round(v * RUN_SCALE) for r in runs
        ]
        for name in metric_names
    }
    return {
        "version": 1,
        "generated": generated,
        "store": store,
        "metric": first,
        "fields": list(FIELDS),
        "rowFields": list(boards[0].row_fields) if boards else [],
        "colFields": list(boards[0].col_fields) if boards else [],
        "noModel": NO_MODEL,
        "scale": SCALE,
        "runScale": RUN_SCALE,
        "sym": {
            "better": render.BETTER,
            "worse": render.WORSE,
            "short": render.SHORT,
            "failed": render.FAILED,
            "dup": render.DUPLICATE,
            "improving": render.IMPROVING,
            "outside": render.OUTSIDE,
        },
        "metrics": per_metric,
        "boards": board_data,
        "runs": {
            "key": [r["run_key"] for r in runs],
            "seed": [r["seed"] for r in runs],
            "err": {
                str(i): r["error"] or "failed" for i, r in enumerate(runs) if r["status"] != "ok"
            },
            "file": {
                str(i): os.path.basename(r["path"])
                for i, r in enumerate(runs)
                if os.path.basename(r["path"]) != f"{r['run_key']}.json"
            },
            "val": values,
            "cfg": run_cfg,
        },
        "cfg": {"sections": sections, "shapes": shapes},
        "realised": realised_stats(rows),
    }


def _ranges(indices: list[int]) -> list[list[int]]:
    """[start, length] runs of consecutive integers: cells list their runs in this order."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1][1] += 1
        else:
            out.append([i, 1])
    return out


def compute_seconds(runs: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(CPU seconds, GPU seconds) of runs: each run's total_s times its device count, on
    the GPU where its trainer ran on one, else on the CPU (rows' `cpu_s`, `gpu_s`). Runs
    without a total_s count nothing."""
    cpu = math.fsum(r["cpu_s"] for r in runs if r["cpu_s"] is not None)
    gpu = math.fsum(r["gpu_s"] for r in runs if r["gpu_s"] is not None)
    return cpu, gpu


def _board_stats(lb: Leaderboard) -> dict[str, Any]:
    """One metric's statistics of one board, one entry per cell (row-major) where it is a
    per-cell figure; every number computed by the leaderboard code, rounded as shown."""
    cells = [lb.cell(rk, ck) for rk in lb.rows for ck in lb.cols]
    means = [c.mean for c in cells]
    nc = len(lb.cols)
    at = {(rk, ck): i * nc + j for i, rk in enumerate(lb.rows) for j, ck in enumerate(lb.cols)}
    out: dict[str, Any] = {
        "title": render.title(lb),
        "legend": "; ".join(
            [render.legend(lb), *(f"Tuning cost of {t}" for t in render.tuning_lines(lb))]
        ),
        "warn": lb.warnings,
        "m": [_q(m) for m in means],
        "s": _column([_q(c.std) for c in cells]),
        "n": [c.n for c in cells],
        "d": _column([_q(c.delta) for c in cells]),
        "p": _column([_p(c.p_value) for c in cells]),
        # flags: 1 best in column, 2 fewer seeds than the row's others, 4 significantly
        # better than the baseline, 8 significantly worse
        "f": _column(
            [
                c.best | c.short << 1 | (c.significance > 0) << 2 | (c.significance < 0) << 3
                for c in cells
            ],
            default=0,
        ),
        # paired seeds, where they are not the cell's n (a baseline lacking some seeds)
        "pairs": {
            str(k): c.n_pairs
            for k, c in enumerate(cells)
            if c.delta is not None and c.n_pairs != c.n
        },
        "extra": {
            str(k): [c.duplicates, c.still_improving]
            for k, c in enumerate(cells)
            if c.duplicates or c.still_improving
        },
        "differs": {str(k): c.differs for k, c in enumerate(cells) if c.differs},
        "rank": [_q(lb.avg_rank[rk], 2) for rk in lb.rows],
        "borda": [lb.borda[rk] for rk in lb.rows],
        "aubcGroups": [lb.groups.index(g) for g in lb.aubc_groups],
        "aubc": [
            [_q(e.aubc) if (e := lb.efficiency.get((rk, g))) else None for rk in lb.rows]
            for g in lb.aubc_groups
        ],
        "reach": [
            [e.labels_to_target if (e := lb.efficiency.get((rk, g))) else None for rk in lb.rows]
            for g in lb.aubc_groups
        ],
        "target": [_target(lb, g) for g in lb.groups],
        "curves": _curves(lb, cells, means),
        # the label-cost Pareto: cells, their mean label cost, the metric's mean where it is
        # not the cell's (duplicate seeds count there), the cells on the front
        "cost": {
            "c": _cell_costs(lb, at),
            "m": {
                str(k): _q(p.mean)
                for p in lb.costs
                if _q(p.mean) != _q(means[k := at[(p.row, p.col)]])
            },
            "front": [at[(p.row, p.col)] for p in lb.costs if p.pareto],
        },
    }
    if lb.published is not None:
        out["pub"] = {
            str(at[key]): [
                render.published_text(c),
                int(c.flagged),
                f"published: {c.published.reported or fmt(c.published.value)} — "
                f"{c.published.source}",
            ]
            for key, c in lb.published.items()
        }
        out["pubLine"] = render.published_line(lb)
    return out


def _column(values: list[Any], default: Any = None) -> list[Any] | dict[str, Any] | None:
    """One figure per cell: the list; {cell: value} of the cells that differ from `default`
    where there are few of them; None where none does."""
    present = {
        str(k): v
        for k, v in enumerate(values)
        if (v is not None if default is None else v != default)
    }
    if not present:
        return None
    return present if len(present) * 4 < len(values) else values


def _cell_costs(lb: Leaderboard, at: dict[tuple, int]) -> list[float | None]:
    """The mean label cost of each cell (None: no ok run with a cost), row-major."""
    out: list[float | None] = [None] * (len(lb.rows) * len(lb.cols))
    for p in lb.costs:
        out[at[(p.row, p.col)]] = int(p.cost) if float(p.cost).is_integer() else p.cost
    return out


def _target(lb: Leaderboard, group: tuple[str, ...]) -> int | None:
    targets = {e.target for (_, g), e in lb.efficiency.items() if g == group}
    targets.discard(None)
    return _q(targets.pop()) if len(targets) == 1 else None


def _curves(lb: Leaderboard, cells: list, means: list[float | None]) -> list[list[Any]]:
    """Per column group, per row with a curve: the row's index where the curve is its cells
    with runs in the group (one point per budget: the cell's mean, sd and n are the
    point's), else [row, [[labels, mean, sd, n], ...]] (active learning's per-round points)."""
    if "budget" not in lb.col_fields:
        return []
    b = lb.col_fields.index("budget")
    nc = len(lb.cols)
    by_group: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, ck in enumerate(lb.cols):
        by_group[ck[:b] + ck[b + 1 :]].append(j)
    out = []
    for group in lb.groups:
        series = []
        for i, rk in enumerate(lb.rows):
            eff = lb.efficiency.get((rk, group))
            if eff is None:
                continue
            ks = [i * nc + j for j in by_group[group] if cells[i * nc + j].n]
            if [(n, m) for _, m, _, n in eff.curve] == [(cells[k].n, means[k]) for k in ks]:
                series.append(i)
            else:
                series.append([i, [[x, _q(m), _q(s), n] for x, m, s, n in eff.curve]])
        out.append(series)
    return out


def realised_stats(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and regime (its label, with the setting): the runs' realised label
    statistics (rows' `realised`) as [mean, min, max] over the runs that have each, and
    the number of runs."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["regime_label"])].append(r.get("realised") or {})
    out = []
    for (dataset, regime), found in sorted(groups.items()):
        values: dict[str, list[float]] = defaultdict(list)
        for stats in found:
            for k, v in stats.items():
                values[k].append(v)
        out.append(
            {
                "dataset": dataset,
                "regime": regime,
                "n": len(found),
                "stats": {
                    k: [round(sum(v) / len(v), 4), round(min(v), 4), round(max(v), 4), len(v)]
                    for k, v in sorted(values.items())
                },
            }
        )
    return out


def _interned_configs(
    runs: Sequence[dict[str, Any]], configs: Sequence[dict[str, Any] | None]
) -> tuple[list[list[Any]], list[list[int]], list[int]]:
    """(sections, shapes, per run a shape id or -1): each distinct top-level section of a
    config ([key, value]) once; a shape is a config as its section ids, where -1 stands for
    a top-level `seed` equal to the run's seed (which would make every run's shape
    distinct)."""
    import orjson

    sections: list[list[Any]] = []
    section_id: dict[tuple[str, bytes], int] = {}
    shapes: list[list[int]] = []
    shape_id: dict[bytes, int] = {}
    per_run = []
    for r, config in zip(runs, configs, strict=True):
        if not isinstance(config, dict):
            per_run.append(-1)
            continue
        implicit = config.get("seed") == r["seed"] and not isinstance(config.get("seed"), bool)
        if implicit:
            config = {k: v for k, v in config.items() if k != "seed"}
        whole = orjson.dumps(config, option=orjson.OPT_SORT_KEYS) + (b"+seed" if implicit else b"")
        sid = shape_id.get(whole)
        if sid is None:
            ids = [-1] if implicit else []  # -1: `seed`, the run's
            for key in sorted(config):
                part = (key, orjson.dumps(config[key], option=orjson.OPT_SORT_KEYS))
                if part not in section_id:
                    section_id[part] = len(sections)
                    sections.append([key, config[key]])
                ids.append(section_id[part])
            sid = shape_id[whole] = len(shapes)
            shapes.append(ids)
        per_run.append(sid)
    return sections, shapes, per_run


# --- header ---------------------------------------------------------------------------------


def _store_dir(loaded: RecordRows) -> str | None:
    """`<results>` from `<results>/runs/<key>.json` of the first record, if any."""
    paths = [r["path"] for r in loaded.rows[:1]] + [p for p, _ in loaded.problems[:1]]
    return os.path.dirname(os.path.dirname(paths[0])) if paths else None


def in_view(
    rows: list[dict[str, Any]], boards: Sequence[Leaderboard], filters: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The rows that fall in some cell of `boards` (and match `filters`' fields, if given;
    config-key filters are the boards' own)."""
    fields = {k: v for k, v in (filters or {}).items() if is_field(k)}
    if fields:
        rows = [r for r in rows if matches(r, fields)]
    if not boards:
        return rows
    placed = {r["path"] for lb in boards for _, _, r in lb.entries}
    return [r for r in rows if r["path"] in placed]


def _header(
    loaded: RecordRows, rows: list[dict[str, Any]], boards: list[Leaderboard], when: str
) -> str:
    ok = sum(1 for r in rows if r["status"] == "ok")
    failed = len(rows) - ok
    store = _store_dir(loaded)
    meta = [f"generated {esc(when)}"]
    if len(rows) != len(loaded.rows):
        meta.insert(
            0, f"{len(rows)} of the {len(loaded.rows)} readable records match these leaderboards"
        )
    if store:
        meta.insert(0, f"store <code>{esc(store)}</code>")
    cards = [
        ("runs", len(rows), False),
        ("ok", ok, False),
        ("failed", failed, failed > 0),
        ("unreadable", len(loaded.problems), bool(loaded.problems)),
        ("leaderboards", len(boards), False),
    ]
    out = [
        "<header><h1>labelbench dashboard</h1>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        '<nav><a href="#leaderboards">Leaderboards</a><a href="#curves">Budget curves</a>'
        '<a href="#realised">Realised labels</a><a href="#compute">Compute &amp; cost</a>'
        '<a href="#failed">Failed runs</a></nav>',
        '<div class="cards">',
        *(
            f'<div class="card{" bad" if bad else ""}"><div class="n">{n}</div>'
            f'<div class="k">{k}</div></div>'
            for k, n, bad in cards
        ),
        "</div>",
    ]
    if loaded.problems:
        shown = loaded.problems[:SHOW_PROBLEMS]
        out.append(
            f'<div class="note"><b>{len(loaded.problems)} unreadable record(s)</b>, left out of'
            " every table below:<ul>"
        )
        out += [f"<li><code>{esc(p)}</code>: {esc(why)}</li>" for p, why in shown]
        if len(loaded.problems) > len(shown):
            out.append(f"<li>… and {len(loaded.problems) - len(shown)} more</li>")
        out.append("</ul></div>")
    out.append("</header>")
    return "\n".join(out)
