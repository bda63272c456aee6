"""Figures for papers from leaderboards: budget curves with ± sd bands, a regime grid on a
shared y-axis, and the label-cost Pareto front, as PDF, SVG or PNG.

matplotlib is imported only when a figure is drawn (the aggregator and `labelbench --help`
stay light), through its object API and the Agg canvas: pyplot and its global figure
state are never touched. Output is deterministic: the same leaderboards give the same
bytes (no dates, no random ids, everything iterated in sorted order).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelbench.results.leaderboard import CostPoint, Leaderboard, _pareto

FORMATS = (".pdf", ".svg", ".png")

# Okabe & Ito (2008), "Color Universal Design" (https://jfly.uni-koeln.de/color/), as
# recommended by Wong (2011), Nature Methods 8:441: colours told apart under the common
# colour-vision deficiencies. Black is kept for the baseline; yellow comes last (it is faint
# on white). Markers and line styles vary too, so the series survive a grayscale print.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
BASELINE_COLOUR = "#000000"
MARKERS = ("s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":")
BAND_ALPHA = 0.18

ONE_COLUMN_IN = 3.3  # a column of a two-column paper (ACL, NeurIPS, IEEE: 3.25-3.4 in)
FULL_WIDTH_IN = 7.0  # both columns
PANEL_HEIGHT_IN = 2.2
DPI = 300  # PNG: a single-column figure is 990 px wide
MAX_COLS = 3  # panels per figure row at full width
LOG_SPAN = 10  # log x-axis when the largest value is more than this times the smallest
TICKS_AT_VALUES = 6  # up to this many budgets: a tick at each; more: matplotlib's ticks
MAX_NAME = 40  # legend names longer than this are cut with '…'

# 8-9 pt text, as two-column venues ask for in figures; DejaVu Sans ships with matplotlib,
# so the glyphs (and the bytes) do not depend on the fonts a machine has installed.
RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.color": "#d9d9d9",
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "legend.frameon": False,
    "legend.handlelength": 2.6,  # long enough to show the dash pattern
    "pdf.fonttype": 42,  # TrueType, not Type 3: publishers' checks ask for it
    "svg.fonttype": "none",  # text stays text: searchable and editable
    "svg.hashsalt": "labelbench",  # fixed ids instead of random ones
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
# No creation date, no software version: only the figure decides the bytes.
METADATA: dict[str, dict[str, Any]] = {
    ".pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    ".svg": {"Date": None, "Creator": None},
    ".png": {"Software": None},
}


class PlotError(ValueError):
    """A figure that cannot be drawn from these leaderboards (bad format, nothing to show)."""


@dataclass(frozen=True)
class Style:
    colour: str
    marker: str
    linestyle: str
    order: int  # place in the legend
    baseline: bool = False


def check_format(out: str | Path) -> str:
    """The file format from `out`'s suffix ('.pdf', '.svg', '.png')."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(
            f"--out {out}: unknown figure format {suffix or '(no suffix)'!r};"
            f" allowed: {', '.join(FORMATS)}"
        )
    return suffix


def styles(boards: Sequence[Leaderboard]) -> dict[tuple[str, ...], Style]:
    """One style per row, the same in every panel and whichever rows are shown: the baseline
    black with circles and a solid, thicker line, first in the legend; the others by their
    sorted position."""
    baselines = sorted({lb.baseline for lb in boards if lb.baseline is not None})
    out: dict[tuple[str, ...], Style] = {
        rk: Style(BASELINE_COLOUR, "o", "-", i, baseline=True) for i, rk in enumerate(baselines)
    }
    others = sorted({rk for lb in boards for rk in lb.rows} - set(baselines))
    for i, rk in enumerate(others):
        out[rk] = Style(
            OKABE_ITO[i % len(OKABE_ITO)],
            MARKERS[i % len(MARKERS)],
            LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)],
            len(baselines) + i,
        )
    return out


def shown_rows(boards: Sequence[Leaderboard], show: Sequence[str]) -> set[tuple[str, ...]]:
    """The row keys named in `show` (as the leaderboard names rows: 'fixmatch',
    'supervised/200'; a model-free row also by its plain name: 'logreg'); all if empty."""
    everything = {rk for lb in boards for rk in lb.rows}
    if not show:
        return everything
    names: dict[str, set[tuple[str, ...]]] = {}
    for lb in boards:
        for rk in lb.rows:
            names.setdefault(lb.row_name(rk), set()).add(rk)
            names.setdefault("/".join(rk[: len(lb.row_fields)]), set()).add(rk)
    unknown = [n for n in show if n not in names]
    if unknown:
        known = sorted({"/".join(rk[: len(lb.row_fields)]) for lb in boards for rk in lb.rows})
        more = f" and {len(known) - 8} more" if len(known) > 8 else ""
        raise PlotError(
            f"--show {','.join(unknown)}: no such row in these tables; rows:"
            f" {', '.join(known[:8])}{more}"
        )
    return set().union(*(names[n] for n in show))


def legend_name(lb: Leaderboard, rk: tuple[str, ...]) -> str:
    name = lb.row_name(rk)
    name = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
    return name + (" (baseline)" if rk == lb.baseline else "")


def _scope_text(lb: Leaderboard) -> str:
    return " · ".join(lb.scope.values())


def _title(lb: Leaderboard, group: tuple[str, ...], with_scope: bool) -> str:
    parts = [_scope_text(lb)] if with_scope else []
    parts.append(" · ".join(group))
    return " — ".join(p for p in parts if p)


def _metric_label(lb: Leaderboard) -> str:
    return f"{lb.metric} {'↑' if lb.direction == 'max' else '↓'}"


def _x_axis(ax, xs: Sequence[float], integer: bool) -> None:
    """Log scale when the values span more than LOG_SPAN (as the dashboard's budget curves
    decide); a tick at each value when there are few of them."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    xs = sorted(set(xs))
    if not xs:
        return
    if xs[0] > 0 and xs[-1] / xs[0] > LOG_SPAN:
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
    if len(xs) <= TICKS_AT_VALUES:
        ax.set_xticks(xs, [f"{x:g}" if not integer else str(round(x)) for x in xs])
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if len(xs) == 1:  # one budget: some room either side
        x = xs[0]
        ax.set_xlim(x * 0.5, x * 1.5) if x > 0 else ax.set_xlim(x - 1, x + 1)


def _budget_panel(ax, lb: Leaderboard, group, rows, style, handles: dict) -> bool:
    """Draw the rows' budget curves of one column group; False if none has a point."""
    drawn = False
    xs: list[float] = []
    for rk in lb.rows:
        eff = lb.efficiency.get((rk, group))
        if rk not in rows or eff is None or not eff.curve:
            continue
        st = style[rk]
        x = [p[0] for p in eff.curve]
        m = [p[1] for p in eff.curve]
        sd = [p[2] or 0.0 for p in eff.curve]
        xs += x
        width = 1.8 if st.baseline else 1.2
        z = 3 if st.baseline else 2
        if any(sd):
            lo = [a - b for a, b in zip(m, sd, strict=True)]
            hi = [a + b for a, b in zip(m, sd, strict=True)]
            if len(x) > 1:
                ax.fill_between(x, lo, hi, color=st.colour, alpha=BAND_ALPHA, lw=0, zorder=z - 1)
            else:
                ax.errorbar(x, m, yerr=sd, color=st.colour, lw=width, capsize=2, zorder=z)
        (line,) = ax.plot(
            x,
            m,
            color=st.colour,
            marker=st.marker,
            linestyle=st.linestyle,
            linewidth=width,
            markersize=4 if st.baseline else 3.5,
            zorder=z,
        )
        handles.setdefault(legend_name(lb, rk), (st.order, line))
        drawn = True
    _x_axis(ax, xs, integer=True)
    return drawn


def _pareto_panel(ax, lb: Leaderboard, rows, style, handles: dict) -> bool:
    """Mean metric vs mean label cost per cell of the shown rows; their Pareto front (among
    the shown cells) as a staircase, its points filled and named by their column."""
    shown = [p for p in lb.costs if p.row in rows]
    if not shown:
        return False
    # The same rule as the leaderboard's Pareto table, among the cells shown here.
    points: list[CostPoint] = _pareto(
        {(p.row, p.col): [(p.cost, p.mean)] for p in shown}, lb.direction
    )
    for rk in lb.rows:
        mine = [p for p in points if p.row == rk]
        if not mine:
            continue
        st = style[rk]
        (line,) = ax.plot(
            [p.cost for p in mine],
            [p.mean for p in mine],
            linestyle="none",
            marker=st.marker,
            color=st.colour,
            markerfacecolor="white",
            markeredgewidth=1.0,
            markersize=4.5,
            zorder=3,
        )
        handles.setdefault(legend_name(lb, rk), (st.order, line))
    front = sorted((p for p in points if p.pareto), key=lambda p: (p.cost, p.mean))
    (step,) = ax.plot(
        [p.cost for p in front],
        [p.mean for p in front],
        drawstyle="steps-post",
        color="#000000",
        linewidth=0.9,
        linestyle="--",
        zorder=2,
    )
    handles.setdefault("Pareto front", (len(style), step))  # last in the legend
    # No point lies up-left of a front point (it would dominate it; down-left where lower is
    # better), nor does the staircase: the columns' names go there. The cheapest one's goes
    # to its right, where only costlier front points can be, so it stays inside the axes.
    up = lb.direction == "max"
    for i, p in enumerate(front):
        st = style[p.row]
        ax.plot(
            [p.cost],
            [p.mean],
            linestyle="none",
            marker=st.marker,
            color=st.colour,
            markeredgecolor="#000000",
            markeredgewidth=0.8,
            markersize=6,
            zorder=4,
        )
        ax.annotate(
            " ".join(p.col),
            (p.cost, p.mean),
            xytext=(4 if i == 0 else -4, 4 if up else -4),
            textcoords="offset points",
            ha="left" if i == 0 else "right",
            va="bottom" if up else "top",
            fontsize=6,
            color="#333333",
            zorder=5,
        )
    _x_axis(ax, [p.cost for p in points], integer=False)
    return True


def _legend(fig, handles: dict[str, tuple[int, Any]], width_in: float) -> None:
    """One legend for the figure, under the panels, in as many columns as fit; entries in
    the rows' order (baseline first), filled row by row."""
    if not handles:
        return
    entries = sorted(handles.items(), key=lambda item: item[1][0])
    ncol = _legend_cols([n for n, _ in entries], width_in)
    # matplotlib fills a legend column by column: reorder so that it reads row by row
    by_row = [entries[i] for c in range(ncol) for i in range(c, len(entries), ncol)]
    fig.legend(
        [h for _, (_, h) in by_row],
        [n for n, _ in by_row],
        loc="outside lower center",
        ncol=ncol,
        columnspacing=1.2,
        handletextpad=0.5,
    )


def _legend_cols(names: Sequence[str], width_in: float) -> int:
    """Legend columns that fit the width: about 3.7 pt per character at 7 pt, plus the
    handle and the gaps."""
    per_col = max((len(s) for s in names), default=0) * 3.7 + 34
    return max(1, min(len(names), int((width_in * 72 - 12) // per_col)))


def _legend_rows(names: Sequence[str], width_in: float) -> int:
    return -(-len(names) // _legend_cols(names, width_in))


def _figure(nrows: int, ncols: int, legend_entries: Sequence[str], sharey: str | bool = False):
    """A figure of nrows x ncols panels: one column wide for a single panel, full width else;
    room under the panels for the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = ONE_COLUMN_IN if ncols == 1 else FULL_WIDTH_IN
    panel_h = PANEL_HEIGHT_IN if ncols == 1 else min(PANEL_HEIGHT_IN, width / ncols * 0.8)
    legend_h = 0.12 + 0.15 * _legend_rows(legend_entries, width)
    fig = Figure(figsize=(width, round(nrows * panel_h + legend_h, 2)), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas draws PNG; PDF and SVG switch canvas on save
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.06)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes, width


def _shape(n: int) -> tuple[int, int]:
    """(rows, columns) of a full-width grid of n panels: MAX_COLS a row, four as 2 x 2."""
    ncols = min(n, MAX_COLS if n != 4 else 2)
    return -(-n // ncols), ncols


def _hide_unused(flat: Sequence[Any], used: int) -> None:
    for ax in flat[used:]:
        ax.set_axis_off()


def _panels(boards: Sequence[Leaderboard]) -> list[tuple[Leaderboard, tuple[str, ...]]]:
    return [(lb, g) for lb in boards for g in lb.groups]


def _names_in(boards, rows) -> list[str]:
    names = dict.fromkeys(legend_name(lb, rk) for lb in boards for rk in lb.rows if rk in rows)
    return list(names)


def draw_curves(boards, rows, style):
    """Budget curves: one panel per (table, column group), each on its own y-axis."""
    panels = [
        (lb, g)
        for lb, g in _panels(boards)
        if any(rk in rows and (rk, g) in lb.efficiency for rk in lb.rows)
    ]
    if not panels:
        raise PlotError(_no_curves(boards))
    fig, axes, width = _figure(*_shape(len(panels)), _names_in(boards, rows))
    handles: dict[str, tuple[int, Any]] = {}
    with_scope = len({_scope_text(lb) for lb, _ in panels}) > 1
    flat = [ax for row in axes for ax in row]
    for ax, (lb, group) in zip(flat, panels, strict=False):
        _budget_panel(ax, lb, group, rows, style, handles)
        if len(panels) > 1:
            ax.set_title(_title(lb, group, with_scope))
        ax.set_xlabel("labels")
        ax.set_ylabel(_metric_label(lb))
    _hide_unused(flat, len(panels))
    _legend(fig, handles, width)
    return fig


def draw_grid(boards, rows, style):
    """The regime grid: a row of panels per table, a panel per column group (regime),
    the y-axis shared within each table (one table: wrapped at MAX_COLS + 1 panels)."""
    boards = [
        lb
        for lb in boards
        if any((rk, g) in lb.efficiency for g in lb.groups for rk in lb.rows if rk in rows)
    ]
    if not boards:
        raise PlotError(_no_curves(boards))
    if len(boards) == 1:
        groups = list(boards[0].groups)
        ncols = min(len(groups), MAX_COLS + 1)
        cells = [(boards[0], g) for g in groups]
        sharey: str | bool = True
    else:
        groups = list(dict.fromkeys(g for lb in boards for g in lb.groups))
        ncols = len(groups)
        cells = [(lb, g if g in lb.groups else None) for lb in boards for g in groups]
        sharey = "row"
    nrows = -(-len(cells) // ncols)
    fig, axes, width = _figure(nrows, ncols, _names_in(boards, rows), sharey=sharey)
    flat = [ax for row in axes for ax in row]
    handles: dict[str, tuple[int, Any]] = {}
    with_scope = len(boards) > 1
    drawn = set()
    for i, (ax, (lb, group)) in enumerate(zip(flat, cells, strict=False)):
        if group is None or not _budget_panel(ax, lb, group, rows, style, handles):
            ax.set_axis_off()
            continue
        drawn.add(i)
        ax.set_title(_title(lb, group, with_scope))
        if i % ncols == 0:
            ax.set_ylabel(_metric_label(lb))
    for i in drawn:  # the x label under each column's lowest panel
        if not any(j in drawn for j in range(i + ncols, len(cells), ncols)):
            flat[i].set_xlabel("labels")
    _hide_unused(flat, len(cells))
    _legend(fig, handles, width)
    return fig


def draw_pareto(boards, rows, style):
    """Label cost vs metric: one panel per table."""
    shown = [lb for lb in boards if any(p.row in rows for p in lb.costs)]
    if not shown:
        raise PlotError(
            "no label costs to plot: no ok run of the shown rows records labels.cost"
            " with the metric"
        )
    fig, axes, width = _figure(*_shape(len(shown)), [*_names_in(shown, rows), "Pareto front"])
    flat = [ax for row in axes for ax in row]
    handles: dict[str, tuple[int, Any]] = {}
    for ax, lb in zip(flat, shown, strict=False):
        _pareto_panel(ax, lb, rows, style, handles)
        if len(shown) > 1:
            ax.set_title(_scope_text(lb))
        ax.set_xlabel("label cost")
        ax.set_ylabel(_metric_label(lb))
    _hide_unused(flat, len(shown))
    _legend(fig, handles, width)
    return fig


def _no_curves(boards: Sequence[Leaderboard]) -> str:
    if boards and all("budget" not in lb.col_fields for lb in boards):
        return "no budget curves: --cols must include budget (e.g. --cols regime,budget)"
    return "nothing to plot: no ok run of the shown rows has the metric"


DRAW = {"curves": draw_curves, "grid": draw_grid, "pareto": draw_pareto}


def render_figure(
    boards: Sequence[Leaderboard], kind: str, fmt: str, show: Sequence[str] = ()
) -> bytes:
    """The figure of `kind` (curves, grid, pareto) as the bytes of a `fmt` ('.pdf', '.svg', '.png') file;
    `show`: the rows to draw, by name (all if empty)."""
    import matplotlib

    if kind not in DRAW:
        raise PlotError(f"--kind {kind!r}: allowed: {', '.join(DRAW)}")
    if fmt not in FORMATS:
        raise PlotError(f"format {fmt!r}: allowed: {', '.join(FORMATS)}")
    boards = sorted(boards, key=lambda lb: sorted(lb.scope.items()))
    rows = shown_rows(boards, show)
    with matplotlib.rc_context(RC):
        fig = DRAW[kind](boards, rows, styles(boards))
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt[1:], metadata=METADATA[fmt])
    return buf.getvalue()
