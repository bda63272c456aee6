"""The dashboard: one self-contained static HTML page of a record store.

Header counts, the leaderboards, budget curves (hand-written inline SVG), the failed runs
and each run's resolved config. No JavaScript, no external CSS, fonts or images, so the file
opens from disk anywhere. Every string that comes from a record is escaped.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from labelbench.results.leaderboard import (
    LABEL_OF,
    Efficiency,
    Leaderboard,
    fmt,
    is_field,
    matches,
)
from labelbench.results.render import html_tables
from labelbench.results.table import CHOICES, RecordRows

if TYPE_CHECKING:
    from labelbench.results.published import Published

MAX_RUNS = 2000  # runs whose config is shown; the rest are counted, not rendered
MAX_FAILED = 500
SHOW_PROBLEMS = 5
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
DASHES = ("", "7 4", "2 3")  # after ten colours, lines differ by dash pattern too

esc = html.escape

CSS = """
:root{--fg:#1d2330;--muted:#5f6b7a;--line:#d5dbe3;--zebra:#f5f7fa;--accent:#2563eb;--bad:#b42318;--ok:#157f3b}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 48px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#fff}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:15px;margin:18px 0 8px}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.meta{color:var(--muted);margin:0 0 14px}
nav{margin:0 0 8px}
nav a{color:var(--accent);text-decoration:none;margin-right:16px}
nav a:hover{text-decoration:underline}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 16px;min-width:120px;background:#fbfcfd}
.card .n{font-size:22px;font-weight:600}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card.bad .n{color:var(--bad)}
.note{background:#fff8e6;border:1px solid #f0d48a;border-radius:6px;padding:8px 12px;margin:10px 0}
.note ul{margin:4px 0 0;padding-left:20px}
.board{overflow-x:auto;margin-bottom:22px}
table{border-collapse:collapse;margin:4px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
thead th{background:#eef1f5;font-weight:600;white-space:nowrap}
tbody tr:nth-child(even){background:var(--zebra)}
tbody th{font-weight:600;white-space:nowrap}
.board td{white-space:nowrap;font-variant-numeric:tabular-nums;font-size:13px}
.board td b{color:#0b3d91}
.legend{color:var(--muted);font-size:12.5px;max-width:1100px}
.board td.outside{background:#fdecea}
.board td[title]{cursor:help}
.charts{display:flex;flex-wrap:wrap;gap:18px}
figure{width:min-content;margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fff}
figcaption{font-weight:600;margin-bottom:6px}
svg{display:block;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.failed td.err{white-space:pre-wrap;word-break:break-word;max-width:640px;color:var(--bad)}
.status{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600;color:#fff}
.status.ok{background:var(--ok)}
.status.failed{background:var(--bad)}
details.run{border:1px solid var(--line);border-radius:6px;margin:4px 0;background:#fff}
details.run[open]{background:#fbfcfd}
details.run summary{cursor:pointer;padding:5px 10px;list-style-position:inside}
details.run summary .key{color:var(--muted)}
details.run .body{padding:4px 14px 10px}
details.run pre{background:#f3f5f8;border:1px solid var(--line);border-radius:4px;padding:8px 10px;overflow-x:auto;margin:6px 0 0;white-space:pre}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:4px 0}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-word}
.muted{color:var(--muted)}
"""


def render_dashboard(
    loaded: RecordRows,
    boards: list[Leaderboard],
    max_runs: int = MAX_RUNS,
    generated: str | None = None,
    filters: dict[str, str] | None = None,
    not_run: Sequence[Published] = (),
) -> str:
    """The whole dashboard as one HTML document (a string). Counts and the run list cover
    the runs in `boards` (pass the leaderboards' `filters` to drop seed/status filtered runs
    too); unreadable records are all reported. Published values compared into the boards
    (published.compare) show in their cells, `not_run` under the leaderboards."""
    metric = boards[0].metric if boards else "test/acc"
    rows = in_view(loaded.rows, boards, filters)
    colours = _colours(boards)
    when = generated or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>labelbench dashboard — {esc(metric)}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(loaded, rows, boards, metric, when),
        '<h2 id="leaderboards">Leaderboards</h2>',
        html_tables(boards, not_run) if boards else '<p class="muted">No leaderboard: no runs.</p>',
        '<h2 id="curves">Budget curves</h2>',
        _curves(boards, colours),
        '<h2 id="failed">Failed runs</h2>',
        _failed(boards),
        '<h2 id="runs">Runs and their resolved configs</h2>',
        _runs(rows, metric, max_runs),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


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
    loaded: RecordRows,
    rows: list[dict[str, Any]],
    boards: list[Leaderboard],
    metric: str,
    when: str,
) -> str:
    ok = sum(1 for r in rows if r["status"] == "ok")
    failed = len(rows) - ok
    store = _store_dir(loaded)
    meta = [f"metric <code>{esc(metric)}</code>", f"generated {esc(when)}"]
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
        '<a href="#failed">Failed runs</a><a href="#runs">Runs &amp; configs</a></nav>',
        '<div class="cards">',
        *(
            f'<div class="card{" bad" if bad else ""}"><div class="n">{n}</div><div class="k">{k}</div></div>'
            for k, n, bad in cards
        ),
        "</div>",
    ]
    if loaded.problems:
        shown = loaded.problems[:SHOW_PROBLEMS]
        out.append(
            f'<div class="note"><b>{len(loaded.problems)} unreadable record(s)</b>, left out of every'
            " table below:<ul>"
        )
        out += [f"<li><code>{esc(p)}</code>: {esc(why)}</li>" for p, why in shown]
        if len(loaded.problems) > len(shown):
            out.append(f"<li>… and {len(loaded.problems) - len(shown)} more</li>")
        out.append("</ul></div>")
    out.append("</header>")
    return "\n".join(out)


# --- budget curves --------------------------------------------------------------------------


def _colours(boards: Sequence[Leaderboard]) -> dict[tuple[str, ...], tuple[str, str]]:
    """(colour, dash) per row, the same in every chart."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for lb in boards:
        for rk in lb.rows:
            if rk not in out:
                i = len(out)
                out[rk] = (PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)])
    return out


def _group_name(lb: Leaderboard, group: tuple[str, ...]) -> str:
    names = [f for f in lb.col_fields if f != "budget"]
    return " · ".join(f"{k}={v}" for k, v in zip(names, group, strict=True))


def _curves(boards: Sequence[Leaderboard], colours) -> str:
    charts = []
    for lb in boards:
        for group in lb.groups:
            charts.append(_chart(lb, group, colours))
    if not charts:
        return '<p class="muted">No budget curves: the columns do not include the budget.</p>'
    return '<div class="charts">\n' + "\n".join(charts) + "\n</div>"


def nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], int]:
    """Round tick values covering [lo, hi] (about n of them) and the decimals to print."""
    span = hi - lo
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if span / (m * mag) <= n)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (
        1 if str(step / mag)[:3] == "2.5" else 0
    )
    first = math.floor(lo / step + 1e-9) * step
    ticks, t = [], first
    while t < hi + step * 0.999:
        ticks.append(round(t, 12))
        t += step
    return ticks, decimals


def _chart(lb: Leaderboard, group: tuple[str, ...], colours) -> str:
    series = [(rk, eff) for rk in lb.rows if (eff := lb.efficiency.get((rk, group))) is not None]
    scope = " · ".join(f"{k}={v}" for k, v in lb.scope.items())
    where = " · ".join(s for s in (scope, _group_name(lb, group)) if s) or "all runs"
    better = "higher is better" if lb.direction == "max" else "lower is better"
    name = f"{where} — {lb.metric} vs labels ({better})"
    if not series:
        return (
            f"<figure><figcaption>{esc(name)}</figcaption><p class='muted'>no ok runs</p></figure>"
        )
    svg = budget_svg(
        series,
        lb.metric,
        colours,
        baseline=lb.baseline,
        title_text=name,
        row_names=[lb.row_name(rk) for rk, _ in series],
    )
    return f"<figure><figcaption>{esc(name)}</figcaption>\n{svg}\n</figure>"


def budget_svg(
    series: Sequence[tuple[tuple[str, ...], Efficiency]],
    metric: str,
    colours: dict[tuple[str, ...], tuple[str, str]],
    baseline: tuple[str, ...] | None = None,
    title_text: str = "",
    row_names: Sequence[str] | None = None,
) -> str:
    """metric vs labels: one polyline per row with ±std error bars, a legend, axis labels.
    x is log10 when the budgets span more than a factor of ten; ticks are the budgets.
    `row_names`: the rows' names (default: their fields joined by '/')."""
    pw, ph = 440, 260  # plot area
    left, top, bottom, right = 64, 12, 50, 16
    if row_names is None:
        row_names = ["/".join(rk) for rk, _ in series]
    names = [
        n + (" (baseline)" if rk == baseline else "")
        for (rk, _), n in zip(series, row_names, strict=True)
    ]
    shown = [n if len(n) <= 40 else n[:39] + "…" for n in names]
    width = left + pw + right
    # legend under the plot, in as many columns as fit
    col_w = int(40 + 6.6 * max(len(n) for n in shown))
    ncols = max(1, min(len(series), (width - 12) // col_w))
    nrows = -(-len(series) // ncols)
    height = top + ph + bottom + 8 + 20 * nrows

    xs = sorted({x for _, eff in series for x, *_ in eff.curve})
    log = xs[0] > 0 and xs[-1] / xs[0] > 10
    f = math.log10 if log else float
    x0, x1 = f(xs[0]), f(xs[-1])
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def sx(x: float) -> float:
        return left + pw * (0.04 + 0.92 * (f(x) - x0) / (x1 - x0))

    lows = [m - (s or 0) for _, eff in series for _, m, s, _ in eff.curve]
    highs = [m + (s or 0) for _, eff in series for _, m, s, _ in eff.curve]
    targets = {eff.target for _, eff in series if eff.target is not None}
    lo, hi = min(lows + list(targets)), max(highs + list(targets))
    pad = (hi - lo) * 0.06 if hi > lo else max(abs(hi) * 0.05, 0.01)
    y0, y1 = lo - pad, hi + pad
    yticks, decimals = nice_ticks(y0, y1)
    yticks = [t for t in yticks if y0 - 1e-12 <= t <= y1 + 1e-12]

    def sy(y: float) -> float:
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'font-size="12">',
        f"<title>{esc(title_text)}</title>",
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfcfd" stroke="#c3cad4"/>',
    ]
    for t in yticks:
        y = sy(t)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ee"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{t:.{decimals}f}</text>'
        )
    last = -1e9
    for x in xs:
        px = sx(x)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + ph}" stroke="#eef0f3"/>'
        )
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top + ph}" y2="{top + ph + 5}" stroke="#777"/>'
        )
        if px - last >= 8 * len(str(x)) + 6:  # skip labels that would collide
            out.append(
                f'<text x="{px:.1f}" y="{top + ph + 18}" text-anchor="middle" fill="#444">{x}</text>'
            )
            last = px
    xlabel = "labels (log scale)" if log else "labels"
    out.append(
        f'<text x="{left + pw / 2}" y="{top + ph + 40}" text-anchor="middle" fill="#222">{xlabel}</text>'
    )
    cy = top + ph / 2
    out.append(
        f'<text x="16" y="{cy}" text-anchor="middle" fill="#222" transform="rotate(-90 16 {cy})">'
        f"{esc(metric)}</text>"
    )
    for target in sorted(targets):
        y = sy(target)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" '
            f'stroke-dasharray="5 4"><title>target {target:.3f}</title></line>'
        )
        out.append(
            f'<text x="{left + 6}" y="{y - 4:.1f}" fill="#777" font-size="11">target {target:.3f}</text>'
        )

    k = len(series)
    for i, ((rk, eff), name) in enumerate(zip(series, names, strict=True)):
        colour, dash = colours.get(rk, (PALETTE[i % len(PALETTE)], ""))
        nudge = (i - (k - 1) / 2) * min(3.0, 12.0 / k)  # keep error bars of equal budgets apart
        pts = [(sx(x) + nudge, sy(m), x, m, s, n) for x, m, s, n in eff.curve]
        width_px = 2.6 if rk == baseline else 1.8
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series"><title>{esc(name)}</title>')
        if len(pts) > 1:
            line = " ".join(f"{px:.1f},{py:.1f}" for px, py, *_ in pts)
            out.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="{width_px}"'
                f'{dash_attr} stroke-linejoin="round"/>'
            )
        for px, py, x, m, s, n in pts:
            tip = (
                f"{name}: {x} labels, {fmt(m)}"
                + (f" ± {fmt(s)}" if s is not None else "")
                + f" (n={n})"
            )
            if s:
                ya, yb = sy(m - s), sy(m + s)
                out.append(
                    f'<path d="M{px:.1f} {ya:.1f}V{yb:.1f}M{px - 4:.1f} {ya:.1f}h8M{px - 4:.1f} {yb:.1f}h8" '
                    f'stroke="{colour}" stroke-width="1.2" fill="none" opacity="0.8"/>'
                )
            out.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.4" fill="{colour}" stroke="#fff" '
                f'stroke-width="1"><title>{esc(tip)}</title></circle>'
            )
        out.append("</g>")
        # legend entry
        lx, ly = 12 + col_w * (i % ncols), top + ph + bottom + 14 + 20 * (i // ncols)
        out.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="{width_px + 0.6}"{dash_attr}/>'
            f'<circle cx="{lx + 12}" cy="{ly}" r="3.4" fill="{colour}"/>'
            f'<text x="{lx + 32}" y="{ly + 4}" fill="#222">{esc(shown[i])}<title>{esc(name)}</title></text>'
        )
    out.append("</svg>")
    return "\n".join(out)


# --- failed runs ----------------------------------------------------------------------------


def _failed(boards: Iterable[Leaderboard]) -> str:
    seen: dict[str, dict[str, Any]] = {}
    for lb in boards:
        for r in lb.failed_runs:
            seen.setdefault(r["path"], r)
    if not seen:
        return '<p class="muted">No failed runs.</p>'
    rows = sorted(seen.values(), key=_order)
    out = [
        f"<p>{len(rows)} failed run(s); their cells count them as ✗k. "
        "Re-launching the same sweep runs them again.</p>",
        '<div class="board"><table class="failed"><thead><tr><th>run</th>'
        + "".join(f"<th>{c}</th>" for c in CHOICES)
        + "<th>seed</th><th>error</th><th>record</th></tr></thead><tbody>",
    ]
    for r in rows[:MAX_FAILED]:
        choices = "".join(f"<td>{esc(_choice(r, c))}</td>" for c in CHOICES)
        out.append(
            f'<tr><td class="mono">{esc(str(r["run_key"]))}</td>{choices}<td>{r["seed"]}</td>'
            f'<td class="err mono">{esc(str(r["error"]))}</td><td class="mono">{esc(r["path"])}</td></tr>'
        )
    out.append("</tbody></table></div>")
    if len(rows) > MAX_FAILED:
        out.append(
            f'<p class="note">… and {len(rows) - MAX_FAILED} more failed runs not listed.</p>'
        )
    return "\n".join(out)


# --- runs and configs -----------------------------------------------------------------------


def _choice(row: dict[str, Any], name: str) -> str:
    return str(row.get(LABEL_OF.get(name, name), "?"))


def _order(row: dict[str, Any]):
    return (
        row["status"] == "ok",  # failed first: they are what one opens the page for
        row["dataset"],
        row["model"],
        row["regime"],
        row["budget_size"],
        row["strategy"],
        row["seed"],
        row["run_key"],
    )


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        plain = (
            value
            and value.strip() == value
            and ": " not in value
            and not value.startswith(("{", "[", "#"))
        )
        return value if plain else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def yamlish(obj: Any, indent: int = 0) -> list[str]:
    """A config as YAML-like lines (plain text, to be escaped by the caller)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict | list) and value and not _flat_list(value):
                lines.append(f"{pad}{key}:")
                lines += yamlish(value, indent + 2)
            else:
                lines.append(f"{pad}{key}: {_inline(value)}")
    elif isinstance(obj, list):
        for item in obj:
            sub = yamlish(item, indent + 2)
            if sub and isinstance(item, dict | list) and not _flat_list(item):
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines += sub[1:]
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(pad + _scalar(obj))
    return lines


def _flat_list(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def _inline(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}"
    return _scalar(value)


def _read_record(path: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return None, f"{type(e).__name__}: {e}"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


def _run_details(row: dict[str, Any], metric: str) -> str:
    choices = "/".join(_choice(row, c) for c in CHOICES)
    value = row["metrics"].get(metric)
    shown = f" · {esc(metric)} <b>{fmt(value)}</b>" if value is not None else ""
    status = esc(str(row["status"]))
    summary = (
        f'<summary><span class="status {status}">{status}</span> <b>{esc(choices)}</b> · seed {row["seed"]}'
        f'{shown} <span class="key mono">{esc(str(row["run_key"]))}</span></summary>'
    )
    data, problem = _read_record(row["path"])
    facts = [("record", f'<span class="mono">{esc(row["path"])}</span>')]
    if row.get("error"):
        facts.append(
            (
                "error",
                f'<span class="mono" style="color:var(--bad)">{esc(str(row["error"]))}</span>',
            )
        )
    facts.append(
        ("labels", f"{row['labels']} (budget {esc(str(row['budget_label']))}, cost {row['cost']})")
    )
    if row["metrics"]:
        facts.append(
            ("metrics", ", ".join(f"{esc(k)} {_num(v)}" for k, v in sorted(row["metrics"].items())))
        )
    if data is not None:
        timings = data.get("timings") or {}
        if isinstance(timings, dict) and timings:
            facts.append(
                ("timings", ", ".join(f"{esc(str(k))} {_num(v)}" for k, v in timings.items()))
            )
        git = data.get("git") or {}
        if isinstance(git, dict) and git.get("sha"):
            dirty = " (dirty)" if git.get("dirty") else ""
            facts.append(("git", f'<span class="mono">{esc(str(git["sha"]))}</span>{dirty}'))
        if data.get("created"):
            facts.append(("created", esc(str(data["created"]))))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    if data is None:
        config = f'<p class="muted">config could not be read: {esc(problem or "")}</p>'
    else:
        config = "<pre>" + esc("\n".join(yamlish(data.get("config", {})))) + "</pre>"
    return f'<details class="run">{summary}<div class="body"><dl class="kv">{body}</dl>{config}</div></details>'


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return esc(str(value))


def _runs(rows: list[dict[str, Any]], metric: str, max_runs: int) -> str:
    if not rows:
        return '<p class="muted">No readable run records.</p>'
    ordered = sorted(rows, key=_order)
    shown = ordered[:max_runs]
    out = [
        f"<p>{len(rows)} run(s), failed first, then by dataset, model, regime, budget, strategy and"
        " seed. Click a run for its label accounting, metrics and resolved config.</p>"
    ]
    if len(rows) > len(shown):
        out.append(
            f'<p class="note">Showing the first {len(shown)} of {len(rows)} runs; '
            f"{len(rows) - len(shown)} left out to keep this page small.</p>"
        )
    out += [_run_details(r, metric) for r in shown]
    return "\n".join(out)
