"""Leaderboards as Markdown, CSV, LaTeX, JSON and HTML tables."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labelbench.results.leaderboard import (
    IGNORED_KEYS,
    NO_MODEL,
    SHOW_KEYS,
    Cell,
    Leaderboard,
    Tuning,
    fmt,
    natural,
)

if TYPE_CHECKING:
    from labelbench.results.published import Comparison, Published

FORMATS = ("md", "csv", "tex", "json", "html")
BETTER, WORSE, SHORT, FAILED, DUPLICATE, IMPROVING = "▲", "▼", "†", "✗", "‡", "↗"
OUTSIDE = "⚑"  # ours differs from the published value by more than the tolerance
SHOW_SOURCES = 3  # sources named under a table ...
SOURCE_CHARS = 60  # ... each cut to this many characters (the CSV and tooltips keep it all)


def _key(parts: Sequence[str]) -> str:
    return " ".join(parts)


def title(lb: Leaderboard) -> str:
    scope = " · ".join(f"{k}={v}" for k, v in lb.scope.items()) or "all runs"
    better = "higher is better" if lb.direction == "max" else "lower is better"
    return f"{scope} — {lb.metric} ({better})"


def legend(lb: Leaderboard) -> str:
    parts = ["mean ± std (n seeds)", "bold: best in column"]
    if lb.baseline:
        parts.append(
            f"Δ: mean paired difference to {'/'.join(lb.baseline)} over shared seeds;"
            f" {BETTER}/{WORSE}: significantly better/worse (Wilcoxon signed-rank, p < 0.05)"
        )
    parts += [
        f"{SHORT}: fewer seeds than the row's others",
        f"{FAILED}k: k failed runs",
        "missing: no run",
    ]
    if any(c.duplicates for c in lb.cells.values()):
        parts.append(_duplicates_legend(lb))
    if any(c.still_improving for c in lb.cells.values()):
        parts.append(
            f"{IMPROVING}k: k runs still improving when training stopped (best validation score"
            " at their last step)"
        )
    if lb.aubc_groups:
        one = any(e.aubc is None for (_, g), e in lb.efficiency.items() if g in lb.aubc_groups)
        parts.append(
            "AUBC: area under the budget curve / budget range"
            + (" (–: a single budget, no curve)" if one else "")
        )
        if lb.baseline:
            parts.append(
                f"→target: fewest labels within 1 point of {lb.row_name(lb.baseline)} at its largest budget"
            )
    if lb.tuning:
        parts.append(
            "[tuned]: hyper-parameters chosen by a study of trials on the validation labels, then"
            " run over the seeds; what the trials took is under Tuning cost"
        )
    if lb.model_free_rows:
        parts.append(
            f"(model {NO_MODEL}): a strategy that trains no network; its runs do not depend on the"
            " model and are shown in every model's table"
        )
    if lb.published:
        parts.append(_published_legend(next(iter(lb.published.values()))))
    return "; ".join(parts)


def _published_legend(c: Comparison) -> str:
    return (
        "pub v ± s Δd: the published value (± its spread, where the source gives one) and ours"
        f" − published; {OUTSIDE}: outside tolerance, |Δ| > {c.tolerance_sd:g} × the published"
        f" spread, or > {c.tolerance:g} where the source gives none"
    )


def published_text(c: Comparison) -> str:
    """'pub 0.917 ± 0.018 Δ-0.005', 'pub 0.917 Δ+0.031 ⚑'; 'pub 0.917' without our value."""
    p = c.published
    out = f"pub {fmt(p.value)}" + (f" ± {fmt(p.spread)}" if p.spread is not None else "")
    if c.delta is not None:
        out += f" Δ{c.delta:+.3f}" + (f" {OUTSIDE}" if c.flagged else "")
    return out


def published_line(lb: Leaderboard) -> str | None:
    """'published: 4 cells compared, 1 outside tolerance; sources: ...' (None: nothing
    published in this table)."""
    if not lb.published:
        return None
    found = list(lb.published.values())
    compared = [c for c in found if c.delta is not None]
    outside = sum(c.flagged for c in compared)
    unrun = len(found) - len(compared)
    sources = [
        s if len(s) <= SOURCE_CHARS else s[: SOURCE_CHARS - 1] + "…"
        for s in dict.fromkeys(c.published.source for c in found)
    ]
    more = f" and {len(sources) - SHOW_SOURCES} more" if len(sources) > SHOW_SOURCES else ""
    return (
        f"published: {len(compared)} cell{'s' if len(compared) != 1 else ''} compared"
        + (f" ({unrun} more without an ok run)" if unrun else "")
        + f", {outside} outside tolerance; sources: {'; '.join(sources[:SHOW_SOURCES])}{more}"
    )


def _duration(seconds: float, unit: str = "") -> str:
    """'4.2 s', '312 s', '2.8 h' (from 10000 s); `unit` goes before the s or h ('device-')."""
    if seconds >= 10_000:
        return f"{seconds / 3600:.1f} {unit}h"
    return f"{seconds:.{1 if seconds < 10 else 0}f} {unit}s"


def tuning_text(t: Tuning) -> str:
    """'study fixmatch-3f2a9c01, 20 trials (1 failed), 312 s fitting, 340 device-s'; '12 of
    20 trials' where trial records are missing."""
    counted = (
        f"{t.trials} of {t.planned} trials"
        if t.planned is not None and t.trials != t.planned
        else f"{t.trials} trial{'' if t.trials == 1 else 's'}"
    )
    return (
        f"{'studies' if len(t.studies) > 1 else 'study'} {', '.join(t.studies)}, {counted}"
        + (f" ({t.failed} failed)" if t.failed else "")
        + f", {_duration(t.fit_s)} fitting, {_duration(t.device_s, 'device-')}"
    )


def tuning_lines(lb: Leaderboard) -> list[str]:
    """'fixmatch[tuned] @ clean 40: study ..., 20 trials ...', one per cell of tuned runs,
    row by row; none for a board without tuned runs."""
    return [
        f"{lb.row_name(rk)} @ {_key(ck)}: {tuning_text(t)}"
        for rk in lb.rows
        for ck in lb.cols
        if (t := lb.tuning.get((rk, ck))) is not None
    ]


def not_run_lines(not_run: Sequence[Published]) -> list[str]:
    """The published cells no table shows, one line each."""
    return [f"{p.where()}: {p.metric} {fmt(p.value)} ({p.path}:{p.line})" for p in not_run]


def _duplicates_legend(lb: Leaderboard) -> str:
    """'‡k: ...; their configs differ in strategy.max_steps (200, 1500): --filter ...'"""
    values: dict[str, set[str]] = {}
    for cell in lb.cells.values():
        for key, texts in cell.differs.items():
            values.setdefault(key, set()).update(texts)
    head = f"{DUPLICATE}k: k more runs of a seed already counted"
    if not values:
        return (
            f"{head}; their configs differ only in keys that identify no run"
            f" ({', '.join(IGNORED_KEYS)}): the same run recorded twice?"
        )
    keys = sorted(values)
    named = ", ".join(
        f"{k} ({', '.join(sorted(values[k], key=natural))})" for k in keys[:SHOW_KEYS]
    )
    more = f" and {len(keys) - SHOW_KEYS} more" if len(keys) > SHOW_KEYS else ""
    return (
        f"{head}; their configs differ in {named}{more}: --filter {keys[0]}=... or"
        f" --rows {','.join(lb.row_fields)},{keys[0]}"
    )


def cell_text(cell: Cell, bold: tuple[str, str] = ("**", "**")) -> str:
    """'0.922 ± 0.006 (3) Δ+0.006▲ ✗1', 'missing', ..."""
    if cell.missing:
        return "missing"
    out = []
    if cell.n:
        value = fmt(cell.mean) + (f" ± {fmt(cell.std)}" if cell.std is not None else "")
        out.append(f"{bold[0]}{value}{bold[1]}" if cell.best else value)
        out.append(f"({cell.n}{SHORT if cell.short else ''})")
        if cell.delta is not None:
            mark = BETTER if cell.significance > 0 else WORSE if cell.significance < 0 else ""
            out.append(f"Δ{cell.delta:+.3f}{mark}")
    if cell.failed:
        out.append(f"{FAILED}{cell.failed}")
    if cell.duplicates:
        out.append(f"{DUPLICATE}{cell.duplicates}")
    if cell.still_improving:
        out.append(f"{IMPROVING}{cell.still_improving}")
    return " ".join(out)


def _extra_headers(lb: Leaderboard) -> list[str]:
    heads = ["avg rank", "Borda"]
    for group in lb.aubc_groups:
        suffix = f" {_key(group)}" if len(lb.groups) > 1 else ""
        heads.append(f"AUBC{suffix}")
        if lb.baseline:
            heads.append(f"→target{suffix}")
    return heads


def _extra_values(lb: Leaderboard, rk: tuple[str, ...]) -> list[str]:
    vals = [fmt(lb.avg_rank[rk], 2), f"{lb.borda[rk]:g}"]
    for group in lb.aubc_groups:
        eff = lb.efficiency.get((rk, group))
        vals.append(fmt(eff.aubc if eff else None))
        if lb.baseline:
            reach = eff.labels_to_target if eff else None
            vals.append(str(reach) if reach is not None else "–")
    return vals


def _matrix(lb: Leaderboard, bold: tuple[str, str]) -> tuple[list[str], list[list[str]]]:
    head = ["/".join(lb.row_fields), *(_key(ck) for ck in lb.cols), *_extra_headers(lb)]
    body = []
    compared = lb.published or {}
    for rk in lb.rows:
        name = lb.row_name(rk) + (" (baseline)" if rk == lb.baseline else "")
        cells = [
            cell_text(lb.cell(rk, ck), bold)
            + (f" · {published_text(c)}" if (c := compared.get((rk, ck))) else "")
            for ck in lb.cols
        ]
        body.append([name, *cells, *_extra_values(lb, rk)])
    return head, body


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]


def to_markdown(
    boards: list[Leaderboard], failed_limit: int = 10, not_run: Sequence[Published] = ()
) -> str:
    """`not_run`: published cells no table shows (from published.compare), listed last."""
    out: list[str] = []
    for lb in boards:
        head, body = _matrix(lb, ("**", "**"))
        out += [f"### {title(lb)}", "", *_md_table(head, body), "", legend(lb), ""]
        if (line := published_line(lb)) is not None:
            out += [line, ""]
        if lb.tuning:
            out += ["Tuning cost:", *(f"- {t}" for t in tuning_lines(lb)), ""]
        if lb.warnings:
            out += ["Warnings:", *(f"- {w}" for w in lb.warnings), ""]
        pareto = [p for p in lb.costs if p.pareto]
        if pareto and len(lb.costs) > 1:
            out += [f"Label cost vs {lb.metric}, Pareto set (cheapest first):", ""]
            out += _md_table(
                ["/".join(lb.row_fields), "/".join(lb.col_fields), "label cost", lb.metric],
                [[lb.row_name(p.row), _key(p.col), f"{p.cost:g}", fmt(p.mean)] for p in pareto],
            )
            out.append("")
        if lb.failed_runs:
            out.append(f"Failed runs ({len(lb.failed_runs)}):")
            out += [f"- {r['path']}: {r['error']}" for r in lb.failed_runs[:failed_limit]]
            if len(lb.failed_runs) > failed_limit:
                out.append(f"- ... and {len(lb.failed_runs) - failed_limit} more")
            out.append("")
    if not_run:
        out += [
            f"published, not run ({len(not_run)}):",
            *(f"- {x}" for x in not_run_lines(not_run)),
        ]
    return "\n".join(out).rstrip() + "\n"


CSV_COLUMNS = [
    "table", "row", "col", "metric", "direction", "mean", "std", "n", "seeds", "failed", "flags",
    "best", "delta_vs_baseline", "p_value", "significance", "avg_rank", "borda", "aubc",
    "labels_to_target", "label_cost", "pareto",
]  # fmt: skip
# after CSV_COLUMNS when published values were compared (empty where a cell has none)
PUBLISHED_COLUMNS = [
    "published", "published_spread", "published_delta", "outside_tolerance", "published_source",
]  # fmt: skip
# last, where some cell holds tuned runs: their studies' trials (empty for other cells)
TUNING_COLUMNS = [
    "tuning_studies", "tuning_planned", "tuning_trials", "tuning_failed", "tuning_fit_s",
    "tuning_device_s",
]  # fmt: skip


def _tuning_values(t: Tuning | None) -> list:
    if t is None:
        return [""] * len(TUNING_COLUMNS)
    planned = "" if t.planned is None else t.planned
    return [" ".join(t.studies), planned, t.trials, t.failed, _num(t.fit_s), _num(t.device_s)]


def _published_values(c: Comparison | None) -> list:
    if c is None:
        return ["", "", "", "", ""]
    flag = "" if c.delta is None else int(c.flagged)
    p = c.published
    return [_num(p.value), _num(p.spread), _num(c.delta), flag, p.source]


def to_csv(boards: list[Leaderboard], not_run: Sequence[Published] = ()) -> str:
    """Long format: one line per cell, with the row's rank and efficiency repeated; the
    PUBLISHED_COLUMNS too where published values were compared, the TUNING_COLUMNS where a
    cell holds tuned runs. `not_run` is not listed here (one line per cell shown)."""
    with_published = any(lb.published is not None for lb in boards)
    with_tuning = any(lb.tuning for lb in boards)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        CSV_COLUMNS
        + (PUBLISHED_COLUMNS if with_published else [])
        + (TUNING_COLUMNS if with_tuning else [])
    )
    for lb in boards:
        scope = " ".join(f"{k}={v}" for k, v in lb.scope.items())
        costs = {(p.row, p.col): p for p in lb.costs}
        b = lb.col_fields.index("budget") if "budget" in lb.col_fields else None
        for rk in lb.rows:
            for ck in lb.cols:
                cell = lb.cell(rk, ck)
                flags = [
                    f
                    for f, on in (
                        ("missing", cell.missing),
                        ("short", cell.short),
                        ("failed", cell.failed),
                        ("duplicate", cell.duplicates),
                        ("still_improving", cell.still_improving),
                    )
                    if on
                ]
                eff = lb.efficiency.get((rk, ck[:b] + ck[b + 1 :])) if b is not None else None
                cost = costs.get((rk, ck))
                extra = (
                    _published_values((lb.published or {}).get((rk, ck))) if with_published else []
                ) + (_tuning_values(lb.tuning.get((rk, ck))) if with_tuning else [])
                writer.writerow([
                    scope, lb.row_name(rk), _key(ck), lb.metric, lb.direction,
                    _num(cell.mean), _num(cell.std), cell.n, " ".join(map(str, sorted(cell.values))),
                    cell.failed, " ".join(flags), int(cell.best), _num(cell.delta), _num(cell.p_value),
                    cell.significance, _num(lb.avg_rank[rk]), f"{lb.borda[rk]:g}",
                    _num(eff.aubc if eff else None), eff.labels_to_target if eff and eff.labels_to_target is not None else "",
                    _num(cost.cost if cost else None), int(cost.pareto) if cost else "",
                    *extra,
                ])  # fmt: skip
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _tex_escape(text: str) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
    return "".join(table.get(c, c) for c in text)


def to_tex(boards: list[Leaderboard], not_run: Sequence[Published] = ()) -> str:
    """booktabs tables; best cells in bold; needs \\usepackage{booktabs} (and amssymb for ▲▼);
    cells outside the published tolerance marked $^{!}$."""
    out = []
    for lb in boards:
        head, body = _matrix(lb, ("\x00", "\x01"))  # placeholders survive escaping
        fix = lambda s: (  # noqa: E731
            _tex_escape(s).replace("\x00", r"\textbf{").replace("\x01", "}").replace("±", r"$\pm$")
            .replace(BETTER, r"$\blacktriangle$").replace(WORSE, r"$\blacktriangledown$")
            .replace("Δ", r"$\Delta$").replace(SHORT, r"$^\dagger$").replace(FAILED, r"$\times$")
            .replace("→", r"$\rightarrow$").replace("–", "--")
            .replace(DUPLICATE, r"$^\ddagger$").replace(IMPROVING, r"$\nearrow$")
            .replace(OUTSIDE, r"$^{!}$").replace("·", r"$\cdot$")
        )  # fmt: skip
        line = published_line(lb)
        out += [
            f"% {title(lb)}",
            *(f"% warning: {w}" for w in lb.warnings),
            *(f"% tuning: {t}" for t in tuning_lines(lb)),
            *(
                [f"% {line}", f"% {_published_legend(c).replace(OUTSIDE, '$^{!}$')}"]
                if line and lb.published and (c := next(iter(lb.published.values())))
                else []
            ),
            r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
            r"\toprule",
            " & ".join(fix(h) for h in head) + r" \\",
            r"\midrule",
            *(" & ".join(fix(c) for c in row) + r" \\" for row in body),
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    if not_run:
        out += [
            f"% published, not run ({len(not_run)}):",
            *(f"%   {x}" for x in not_run_lines(not_run)),
        ]
    return "\n".join(out)


def to_json(boards: list[Leaderboard], not_run: Sequence[Published] = ()) -> str:
    """A list of tables; with published values compared, each cell has the published_*
    keys (null where it has none); where some cell holds tuned runs, each has `tuning` (its
    studies' trials, null for other cells). `not_run` is not listed here (the list is of
    tables)."""
    with_tuning = any(lb.tuning for lb in boards)

    def tuning(lb: Leaderboard, rk: tuple[str, ...], ck: tuple[str, ...]) -> dict:
        if not with_tuning:
            return {}
        t = lb.tuning.get((rk, ck))
        return {"tuning": None if t is None else {
            "studies": list(t.studies), "planned": t.planned, "trials": t.trials, "failed": t.failed,
            "fit_s": t.fit_s, "device_s": t.device_s}}  # fmt: skip

    def published(lb: Leaderboard, rk: tuple[str, ...], ck: tuple[str, ...]) -> dict:
        if lb.published is None:
            return {}
        c = lb.published.get((rk, ck))
        if c is None:
            return dict.fromkeys(PUBLISHED_COLUMNS)
        return {"published": c.published.value, "published_spread": c.published.spread,
                "published_delta": c.delta, "outside_tolerance": None if c.delta is None else c.flagged,
                "published_source": c.published.source}  # fmt: skip

    def cell(c: Cell) -> dict:
        return {"mean": c.mean, "std": c.std, "n": c.n, "values": {str(s): v for s, v in sorted(c.values.items())},
                "failed": c.failed, "duplicates": c.duplicates, "short": c.short, "missing": c.missing, "best": c.best, "delta": c.delta,
                "p_value": c.p_value, "n_pairs": c.n_pairs, "significance": c.significance,
                "still_improving": c.still_improving, "differs": c.differs}  # fmt: skip

    data = []
    for lb in boards:
        data.append({
            "scope": lb.scope, "metric": lb.metric, "direction": lb.direction,
            "row_fields": list(lb.row_fields), "col_fields": list(lb.col_fields),
            "baseline": "/".join(lb.baseline) if lb.baseline else None,
            "rows": [
                {"row": lb.row_name(rk), "avg_rank": lb.avg_rank[rk], "borda": lb.borda[rk],
                 "cells": {_key(ck): cell(lb.cell(rk, ck)) | published(lb, rk, ck) | tuning(lb, rk, ck)
                           for ck in lb.cols},
                 "efficiency": {_key(g): {"aubc": e.aubc, "target": e.target, "labels_to_target": e.labels_to_target,
                                          "curve": [{"labels": x, "mean": m, "std": s, "n": n} for x, m, s, n in e.curve]}
                                for g in lb.groups if (e := lb.efficiency.get((rk, g)))}}
                for rk in lb.rows
            ],
            "costs": [{"row": lb.row_name(p.row), "col": _key(p.col), "cost": p.cost, "mean": p.mean, "pareto": p.pareto}
                      for p in lb.costs],
            "failed_runs": [{"path": r["path"], "run_key": r["run_key"], "error": r["error"]} for r in lb.failed_runs],
            "warnings": lb.warnings,
        })  # fmt: skip
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def html_tables(boards: list[Leaderboard], not_run: Sequence[Published] = ()) -> str:
    """The leaderboards as HTML <table>s; every string from a record or a published CSV is
    escaped. A cell with a published value carries it in its tooltip (as the source prints
    it, and the source) and the class `outside` when it is outside the tolerance."""
    esc = html.escape
    out = []
    for lb in boards:
        head, body = _matrix(lb, ("\x00", "\x01"))
        fix = lambda s: esc(s).replace("\x00", "<b>").replace("\x01", "</b>")  # noqa: E731
        out.append(f'<section class="board"><h3>{esc(title(lb))}</h3>')
        out.append(
            "<table><thead><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>"
        )
        compared = lb.published or {}
        for rk, row in zip(lb.rows, body, strict=True):
            tds = []
            for j, text in enumerate(row[1:]):
                c = compared.get((rk, lb.cols[j])) if j < len(lb.cols) else None
                if c is None:
                    tds.append(f"<td>{fix(text)}</td>")
                    continue
                p = c.published
                tip = f"published: {p.reported or fmt(p.value)} — {p.source}"
                attrs = f' title="{esc(tip)}"' + (' class="outside"' if c.flagged else "")
                tds.append(f"<td{attrs}>{fix(text)}</td>")
            out.append(f"<tr><th>{esc(row[0])}</th>{''.join(tds)}</tr>")
        warnings = (
            '<div class="note warnings"><b>Warnings:</b><ul>'
            + "".join(f"<li>{esc(w)}</li>" for w in lb.warnings)
            + "</ul></div>"
            if lb.warnings
            else ""
        )
        line = published_line(lb)
        line = f'<p class="legend published">{esc(line)}</p>' if line else ""
        if lb.tuning:
            line += (
                '<div class="note tuning"><b>Tuning cost:</b><ul>'
                + "".join(f"<li>{esc(t)}</li>" for t in tuning_lines(lb))
                + "</ul></div>"
            )
        out.append(
            f'</tbody></table><p class="legend">{esc(legend(lb))}</p>{line}{warnings}</section>'
        )
    if not_run:
        out.append(
            f'<section class="board not-run"><h3>published, not run ({len(not_run)})</h3><ul>'
            + "".join(f"<li>{esc(x)}</li>" for x in not_run_lines(not_run))
            + "</ul></section>"
        )
    return "\n".join(out)


def to_html(boards: list[Leaderboard], not_run: Sequence[Published] = ()) -> str:
    outside = "td.outside{background:#fdecea}" if any(lb.published for lb in boards) else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>labelbench leaderboard</title>"
        "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        f"{outside}</style></head><body>{html_tables(boards, not_run)}</body></html>\n"
    )


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_tex, "json": to_json, "html": to_html}
