"""Published numbers beside ours: the papers' cells from `results/published/<preset>.csv`,
matched to leaderboard cells, with our difference and a flag where it is outside the
tolerance.

A CSV row belongs to a cell when its metric is the table's and its dataset, model, regime,
budget and strategy are the texts the table shows for that cell (regime and budget by their
labels, `symmetric(0.5)`, `40`, `full`; the strategy as its row name, decorations included,
`supervised[loss=gce]`); a blank model matches any model. Plain `csv`, no numpy: the
aggregator imports neither torch nor lightning.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from labelbench.results.leaderboard import FIELDS, LABEL_OF, Leaderboard

COLUMNS = (
    "dataset", "model", "regime", "budget", "strategy", "metric",
    "value", "spread", "seeds", "reported", "source",
)  # fmt: skip
KEY = ("dataset", "model", "regime", "budget", "strategy", "metric")
REQUIRED = ("dataset", "regime", "budget", "strategy", "metric", "value", "source")
# The fields a table must show (scope, rows or columns) for its cells to be compared: the
# model alone may be missing (a blank CSV model matches any model anyway).
NEEDED = ("dataset", "regime", "budget", "strategy")
TOLERANCE = 0.02  # in the metric's units: 2 points of accuracy
TOLERANCE_SD = 2.0  # multiples of the published spread, where the source gives one
# |Δ| this close to the limit counts as on it: ours - published in floating point misses the
# exact boundary by an ulp (0.937 - 0.917 > 0.02).
EPS = 1e-9


def default_dir() -> Path:
    """The project's `results/published/`: beside the labelbench package (where the
    presets' published CSVs are; labelbench.presets names it)."""
    from labelbench.presets import PUBLISHED

    return PUBLISHED


class PublishedError(ValueError):
    """A bad published CSV or path: one line naming the file, the line and what is allowed."""


@dataclass(frozen=True)
class Published:
    """One published cell, converted to a record metric."""

    dataset: str
    model: str  # '' matches any model
    regime: str
    budget: str
    strategy: str
    metric: str
    value: float
    spread: float | None  # the source's std in the metric's units, where it gives one
    seeds: int | None
    reported: str  # the cell as the source prints it, with its unit
    source: str
    path: str  # where it was read: file and line, for messages
    line: int

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(getattr(self, k) for k in KEY)

    def where(self) -> str:
        """'dataset=cifar10 · model=any · regime=clean · budget=40 · strategy=fixmatch'"""
        return " · ".join(f"{k}={getattr(self, k) or 'any'}" for k in FIELDS)


@dataclass(frozen=True)
class Comparison:
    """One leaderboard cell against its published value."""

    published: Published
    ours: float | None  # the cell's mean over seeds; None without an ok run
    delta: float | None  # ours - published
    limit: float  # the largest |delta| within tolerance
    flagged: bool  # |delta| > limit
    tolerance: float
    tolerance_sd: float


@dataclass
class Compared:
    """What `compare` found beyond the cells: published rows no table shows, and notes for
    stderr (tables that cannot be compared, a metric no row has)."""

    not_run: list[Published]
    notes: list[str]


def resolve_paths(paths: Sequence[str], default: Path | None = None) -> list[Path]:
    """The CSV files named: each PATH a CSV file or a folder of them; none named: every
    *.csv in `default` (the project's results/published/)."""
    if not paths:
        folder = default if default is not None else default_dir()
        if not folder.is_dir():
            raise PublishedError(
                f"--published: no {folder} folder of published numbers; give a path"
                " (--published FILE.csv or FOLDER)"
            )
        paths = [str(folder)]
    out: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise PublishedError(f"--published {text}: no *.csv file in this folder")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise PublishedError(f"--published {text}: no such file or folder")
    return list(dict.fromkeys(out))


def _number(text: str, column: str, where: str, allowed: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PublishedError(
            f"{where}: {column} {text!r} is not a number; allowed: {allowed}"
        ) from None
    if not math.isfinite(value):
        raise PublishedError(f"{where}: {column} {text!r} is not finite; allowed: {allowed}")
    return value


def _row(path: Path, line: int, cells: dict[str, str]) -> Published:
    where = f"{path} line {line}"
    for col in REQUIRED:
        if not cells[col].strip():
            raise PublishedError(
                f"{where}: {col} is empty; allowed: "
                + (
                    "the paper and its table, or a repository file and commit"
                    if col == "source"
                    else f"the {col} as the leaderboard shows it"
                    if col in FIELDS
                    else "a record metric, e.g. test/acc"
                    if col == "metric"
                    else "a number in the metric's units, e.g. 0.917"
                )
            )
    value = _number(cells["value"], "value", where, "a number in the metric's units, e.g. 0.917")
    spread = None
    if cells["spread"].strip():
        allowed = "a std >= 0 in the metric's units, or blank"
        spread = _number(cells["spread"], "spread", where, allowed)
        if spread < 0:
            raise PublishedError(
                f"{where}: spread {cells['spread']!r} is negative; allowed: {allowed}"
            )
    seeds = None
    if cells["seeds"].strip():
        text = cells["seeds"].strip()
        if not text.isdigit() or int(text) < 1:
            raise PublishedError(
                f"{where}: seeds {cells['seeds']!r} is not a count of runs; allowed: a whole"
                " number >= 1, or blank"
            )
        seeds = int(text)
    return Published(
        **{k: cells[k].strip() for k in KEY},
        value=value,
        spread=spread,
        seeds=seeds,
        reported=cells["reported"].strip(),
        source=cells["source"].strip(),
        path=str(path),
        line=line,
    )


def read_csv(path: Path) -> list[Published]:
    """The rows of one published CSV, checked; PublishedError names the first problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise PublishedError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise PublishedError(
            f"{path}: empty; the first line must be the header {','.join(COLUMNS)}"
        )
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise PublishedError(
            f"{path} line 1: unknown column {unknown[0]!r}; allowed: {','.join(COLUMNS)}"
        )
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PublishedError(
            f"{path} line 1: missing column{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)}; the header must name {','.join(COLUMNS)}"
        )
    twice = [h for i, h in enumerate(header) if h in header[:i]]
    if twice:
        raise PublishedError(f"{path} line 1: column {twice[0]!r} twice; allowed: each once")
    out = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise PublishedError(
                f"{path} line {line}: {len(cells)} fields, the header has {len(header)};"
                " allowed: one per column (quote a text that holds a comma)"
            )
        out.append(_row(path, line, dict(zip(header, cells, strict=True))))
    return out


def load_published(paths: Iterable[Path | str]) -> list[Published]:
    """Every row of the CSV files, checked; the same cell twice with different values (in
    one file or two) is refused. Identical repeats are kept once."""
    seen: dict[tuple[str, ...], Published] = {}
    out = []
    for path in paths:
        for p in read_csv(Path(path)):
            first = seen.get(p.key)
            if first is None:
                seen[p.key] = p
                out.append(p)
            elif first.value != p.value:
                raise PublishedError(
                    f"{p.path} line {p.line}: value {p.value:g} for {p.where()} {p.metric}, but"
                    f" {first.value:g} at {first.path} line {first.line}; allowed: one value per"
                    " cell (give the rows different models, or drop one)"
                )
    return out


def _field_texts(lb: Leaderboard, rk: tuple[str, ...], ck: tuple[str, ...]) -> dict[str, str]:
    """The texts a cell shows for the five fields, wherever the table shows them."""
    texts = {f: v for f, v in lb.scope.items() if f in FIELDS}
    # zip stops at the row fields: a model-free row has one more part, its model '–'
    texts |= {f: v for f, v in zip(lb.row_fields, rk, strict=False) if f in FIELDS}
    texts |= {f: v for f, v in zip(lb.col_fields, ck, strict=True) if f in FIELDS}
    if len(rk) > len(lb.row_fields):  # a model-free row beside this table's model
        texts["model"] = rk[len(lb.row_fields)]
    return texts


def _passes(p: Published, filters: dict[str, str]) -> bool:
    """Do the user's field filters keep this row (for the 'not run' list)? Regime and budget
    filters may name the YAML option ('symmetric'), which the CSV lacks: a regime label
    'symmetric(0.5)' passes 'symmetric'."""
    for key, want in filters.items():
        if key not in FIELDS:
            continue  # seed, status, config keys: about our runs only
        have = getattr(p, key)
        if key == "model" and not have:
            continue
        if have == want or (key in LABEL_OF and have.split("(", 1)[0] == want):
            continue
        return False
    return True


def compare(
    boards: Sequence[Leaderboard],
    published: Sequence[Published],
    tolerance: float = TOLERANCE,
    tolerance_sd: float = TOLERANCE_SD,
    filters: dict[str, str] | None = None,
) -> Compared:
    """Set each board's `published` to {(row, col): Comparison} for its cells that have a
    published value (a model given in the CSV before a blank one). A cell is flagged when
    |ours - published| > tolerance_sd x spread where the source gives a spread, else >
    tolerance. Returns the published rows of the boards' metric that match no cell (and
    pass the `filters`' fields) and notes for stderr."""
    by_cell: dict[tuple[str, ...], list[Published]] = {}
    for p in published:
        by_cell.setdefault((p.dataset, p.regime, p.budget, p.strategy, p.metric), []).append(p)
    used: set[tuple[str, ...]] = set()
    skipped = []
    for lb in boards:
        lb.published = {}
        shown = set(lb.scope) | set(lb.row_fields) | set(lb.col_fields)
        if not set(NEEDED) <= shown:
            skipped.append(lb)
            continue
        for rk in lb.rows:
            for ck in lb.cols:
                texts = _field_texts(lb, rk, ck)
                found = by_cell.get((*(texts[f] for f in NEEDED), lb.metric))
                if not found:
                    continue
                model = texts.get("model")
                fits = [p for p in found if model is None or p.model in (model, "")]
                if not fits:
                    continue
                used.update(p.key for p in fits)
                # the table's model before a blank one (which fits any model); a table that
                # shows no model takes the blank one first
                match = next((p for p in fits if bool(p.model) == (model is not None)), fits[0])
                lb.published[(rk, ck)] = _comparison(lb, rk, ck, match, tolerance, tolerance_sd)
    notes = []
    if skipped:
        notes.append(
            f"published: no comparison in {len(skipped)} table(s), e.g."
            f" {' · '.join(f'{k}={v}' for k, v in skipped[0].scope.items()) or 'all runs'}:"
            f" their scope, rows and columns do not show all of {', '.join(NEEDED)}"
        )
    metrics = {lb.metric for lb in boards}
    if published and not any(p.metric in metrics for p in published):
        have = sorted({p.metric for p in published})
        notes.append(
            f"published: no row has the metric {', '.join(sorted(metrics))};"
            f" they have {', '.join(have)} (--metric {have[0]})"
        )
    not_run = [
        p
        for p in published
        if p.key not in used and p.metric in metrics and _passes(p, filters or {})
    ]
    return Compared(not_run=not_run, notes=notes)


def _comparison(
    lb: Leaderboard,
    rk: tuple[str, ...],
    ck: tuple[str, ...],
    p: Published,
    tolerance: float,
    tolerance_sd: float,
) -> Comparison:
    ours = lb.cell(rk, ck).mean
    limit = tolerance_sd * p.spread if p.spread is not None else tolerance
    delta = None if ours is None else ours - p.value
    flagged = delta is not None and abs(delta) > limit + EPS
    return Comparison(p, ours, delta, limit, flagged, tolerance, tolerance_sd)
