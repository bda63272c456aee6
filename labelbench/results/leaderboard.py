"""Leaderboards from run rows: cells of mean ± std over seeds, ranks, paired tests against a
baseline, label efficiency (AUBC, labels to reach a target) and label cost.

Everything here is plain Python on rows from `table.load_rows`, the paired test included:
importing scipy.stats alone took longer (about a second) than building the tables of a
100k-run store.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("dataset", "model", "regime", "budget", "strategy")
DEFAULT_ROWS = ("strategy",)
DEFAULT_COLS = ("regime", "budget")
ALPHA = 0.05


class LeaderboardError(ValueError):
    """A bad leaderboard request (unknown field, metric, baseline)."""


def average_ranks(values: Sequence[float], direction: str) -> list[float]:
    """Rank 1 = best; tied values share the mean of their ranks (scipy's 'average')."""
    sign = -1.0 if direction == "max" else 1.0
    order = sorted(range(len(values)), key=lambda i: sign * values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def paired_tests(pairs: Sequence[tuple[Sequence[float], Sequence[float]]]) -> list[float | None]:
    """Two-sided Wilcoxon signed-rank p-values of a - b for many (a, b) pairs. None where
    there are no pairs; 1 where every difference is zero."""
    out: list[float | None] = []
    for a, b in pairs:
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        out.append(None if not diffs else wilcoxon_p(diffs) if any(diffs) else 1.0)
    return out


# The same choices as scipy.stats.wilcoxon(zero_method="wilcox", method="auto"): zero
# differences are dropped; with no ties and no zeros the null distribution is exact up to
# this many pairs; with ties or zeros, every sign flip is enumerated up to this many ...
EXACT_MAX_N, FLIPS_MAX_N = 50, 13
# ... and beyond, the normal approximation with the tie correction (no continuity correction).


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired differences (at least
    one non-zero), equal to scipy.stats.wilcoxon's for one pair of samples."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    ranks = average_ranks([abs(x) for x in d], "min")
    r_plus = math.fsum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    ties = [t for t in Counter(abs(x) for x in d).values() if t > 1]
    if len(diffs) <= FLIPS_MAX_N or (len(diffs) <= EXACT_MAX_N and not ties and n == len(diffs)):
        return _all_sign_flips_p([round(2 * r) for r in ranks], round(2 * r_plus))
    mean = n * (n + 1) / 4
    sd = math.sqrt((n * (n + 1) * (2 * n + 1) - sum(t**3 - t for t in ties) / 2) / 24)
    return math.erfc(abs(r_plus - mean) / sd / math.sqrt(2))


def _all_sign_flips_p(ranks2: list[int], observed2: int) -> float:
    """2 min(P(S >= observed), P(S <= observed)), capped at 1, where S is the sum of the
    (doubled, so integral) ranks given a + sign, over all 2^n equally likely sign flips."""
    counts = [1] + [0] * sum(ranks2)  # counts[s]: sign flips whose + ranks sum to s
    top = 0
    for r in ranks2:
        top += r
        for s in range(top, r - 1, -1):
            counts[s] += counts[s - r]
    total = 2 ** len(ranks2)
    below = sum(counts[: observed2 + 1]) / total
    above = sum(counts[observed2:]) / total
    return min(1.0, 2 * min(below, above))


def paired_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """`paired_tests` for one pair."""
    return paired_tests([(a, b)])[0]


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return math.fsum(values) / len(values)


def stdev(values: Iterable[float]) -> float:
    """Sample standard deviation (n - 1)."""
    values = list(values)
    m = mean(values)
    return math.sqrt(math.fsum((x - m) ** 2 for x in values) / (len(values) - 1))


@dataclass
class Cell:
    """One (row, column) of a leaderboard."""

    values: dict[int, float] = field(default_factory=dict)  # seed -> metric, ok runs
    failed: int = 0
    duplicates: int = 0  # further ok runs with a seed already in the cell (not averaged)
    short: bool = False  # fewer seeds than the row's fullest cell
    best: bool = False
    delta: float | None = None  # mean paired difference to the baseline (this - baseline)
    p_value: float | None = None
    n_pairs: int = 0
    significance: int = 0  # +1 significantly better than the baseline, -1 worse, 0 neither

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def missing(self) -> bool:
        return not self.values and not self.failed

    @property
    def mean(self) -> float | None:
        return mean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        return stdev(self.values.values()) if self.n > 1 else None


@dataclass
class Efficiency:
    """Label efficiency of one row within one group of columns (e.g. one regime)."""

    curve: list[tuple[int, float, float | None, int]]  # (labels, mean, std, n) by budget
    aubc: float | None  # area under the budget curve / budget range
    target: float | None
    labels_to_target: int | None  # smallest budget whose mean reaches the target


@dataclass
class CostPoint:
    row: tuple[str, ...]
    col: tuple[str, ...]
    cost: float
    mean: float
    pareto: bool = False


@dataclass
class Leaderboard:
    """One table: rows x columns of cells within fixed values of the other fields."""

    scope: dict[str, str]  # e.g. {'dataset': 'digits', 'model': 'mlp'}
    metric: str
    direction: str
    row_fields: tuple[str, ...]
    col_fields: tuple[str, ...]
    rows: list[tuple[str, ...]]
    cols: list[tuple[str, ...]]
    cells: dict[tuple[tuple[str, ...], tuple[str, ...]], Cell]
    baseline: tuple[str, ...] | None
    avg_rank: dict[tuple[str, ...], float | None]
    borda: dict[tuple[str, ...], float]
    efficiency: dict[tuple[tuple[str, ...], tuple[str, ...]], Efficiency]  # (row, group)
    groups: list[tuple[str, ...]]  # column groups for efficiency (cols without budget)
    costs: list[CostPoint]
    failed_runs: list[dict[str, Any]]

    def cell(self, row: tuple[str, ...], col: tuple[str, ...]) -> Cell:
        return self.cells.get((row, col)) or Cell()


# Fields shown by their table label (with the setting), filterable by either name.
LABEL_OF = {"budget": "budget_label", "regime": "regime_label"}


def _getter(fields: Sequence[str]):
    """row -> tuple of the fields' values ('budget' and 'regime' read their table labels:
    '20', 'symmetric(0.4)')."""
    keys = [LABEL_OF.get(f, f) for f in fields]
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return operator.itemgetter(*keys) if keys else lambda row: ()


def matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    """True if every `key=value` filter holds (keys: the choice fields, seed, status)."""
    for key, want in filters.items():
        have = str(row["seed"]) if key == "seed" else row.get(key)
        if key in LABEL_OF and want in (row[LABEL_OF[key]], row[key]):
            continue
        if have != want:
            return False
    return True


def direction_of(rows: Iterable[dict[str, Any]], metric: str) -> str:
    seen = {r["directions"].get(metric) for r in rows if metric in r["directions"]}
    seen.discard(None)
    if len(seen) > 1:
        raise LeaderboardError(f"records disagree on the direction of {metric}: {sorted(seen)}")
    return seen.pop() if seen else "max"


def build_leaderboards(
    rows: list[dict[str, Any]],
    metric: str = "test/acc",
    row_fields: Sequence[str] = DEFAULT_ROWS,
    col_fields: Sequence[str] = DEFAULT_COLS,
    baseline: str | None = "supervised",
    filters: dict[str, str] | None = None,
    target_drop: float = 0.01,
    alpha: float = ALPHA,
) -> list[Leaderboard]:
    """Split rows into tables by the fields that are neither rows nor columns, then fill
    cells. `baseline` names a row (its fields joined by '/') for paired comparisons; it is
    ignored in tables that lack it. Raises LeaderboardError for unknown fields or metrics."""
    row_fields, col_fields = tuple(row_fields), tuple(col_fields)
    for name in (*row_fields, *col_fields):
        if name not in FIELDS:
            raise LeaderboardError(f"{name!r} is not a field; allowed: {', '.join(FIELDS)}")
    if set(row_fields) & set(col_fields) or not row_fields or not col_fields:
        raise LeaderboardError(
            f"--rows {','.join(row_fields)} and --cols {','.join(col_fields)} must be non-empty and disjoint"
        )
    if filters:
        rows = [r for r in rows if matches(r, filters)]
    if not any(metric in r["metrics"] for r in rows) and any(r["status"] == "ok" for r in rows):
        known = sorted({m for r in rows for m in r["metrics"]})
        raise LeaderboardError(f"metric={metric} is in no record; metrics: {', '.join(known)}")
    direction = direction_of(rows, metric)
    scope_fields = tuple(f for f in FIELDS if f not in row_fields and f not in col_fields)

    scope_of, row_of, col_of = _getter(scope_fields), _getter(row_fields), _getter(col_fields)
    by_scope: dict[tuple[str, ...], list[tuple]] = defaultdict(list)
    for r in rows:
        by_scope[scope_of(r)].append((row_of(r), col_of(r), r))
    baseline_key = tuple(baseline.split("/")) if baseline else None
    return [
        _one_table(
            dict(zip(scope_fields, scope, strict=True)),
            group,
            metric,
            direction,
            row_fields,
            col_fields,
            baseline_key,
            target_drop,
            alpha,
        )
        for scope, group in sorted(by_scope.items())
    ]


def _one_table(
    scope, rows, metric, direction, row_fields, col_fields, baseline, target_drop, alpha
) -> Leaderboard:
    cells: dict[tuple, Cell] = defaultdict(Cell)
    costs: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    rounds: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    size_of: dict[str, int] = {}
    failed_runs = []
    for rk, ck, r in rows:
        size_of.setdefault(r["budget_label"], r["budget_size"])
        cell = cells[(rk, ck)]
        if r["status"] != "ok":
            cell.failed += 1
            failed_runs.append(r)
        elif metric in r["metrics"]:
            value = float(r["metrics"][metric])
            if r["seed"] in cell.values:
                cell.duplicates += 1  # same seed again: configs differ beyond the fields shown
            else:
                cell.values[r["seed"]] = value
            if r.get("cost") is not None:
                costs[(rk, ck)].append((float(r["cost"]), value))
            for point in r["curve"]:  # per-round points (active learning): labels -> metric
                if metric in point and "labels" in point:
                    rounds[(rk, ck)][int(point["labels"])].append(float(point[metric]))

    def col_order(col: tuple[str, ...]):
        return tuple(
            (size_of.get(v, 0), v) if f == "budget" else (0, v)
            for f, v in zip(col_fields, col, strict=True)
        )

    row_keys = sorted({k[0] for k in cells})
    col_keys = sorted({k[1] for k in cells}, key=col_order)
    if baseline not in row_keys:
        baseline = None

    # Flags: fewer seeds than the row's fullest cell.
    for rk in row_keys:
        most = max((cells[(rk, ck)].n for ck in col_keys if (rk, ck) in cells), default=0)
        for ck in col_keys:
            if (rk, ck) in cells and 0 < cells[(rk, ck)].n < most:
                cells[(rk, ck)].short = True

    sign = 1 if direction == "max" else -1
    ranks: dict[tuple, list[float]] = defaultdict(list)
    borda: dict[tuple, float] = defaultdict(float)
    tests: list[tuple[Cell, tuple[list[float], list[float]]]] = []
    for ck in col_keys:
        present = [rk for rk in row_keys if cells.get((rk, ck)) and cells[(rk, ck)].n]
        means = [cells[(rk, ck)].mean for rk in present]
        if not means:
            continue
        top = max(sign * m for m in means)
        for rk, m, rank in zip(present, means, average_ranks(means, direction), strict=True):
            cells[(rk, ck)].best = sign * m == top
            ranks[rk].append(rank)
            borda[rk] += len(present) - rank  # rows beaten, ties counting half
        if baseline is not None and (baseline, ck) in cells:
            base = cells[(baseline, ck)].values
            for rk in present:
                cell = cells[(rk, ck)]
                seeds = sorted(set(cell.values) & set(base))
                cell.n_pairs = len(seeds)
                if rk != baseline and seeds:
                    a, b = [cell.values[s] for s in seeds], [base[s] for s in seeds]
                    cell.delta = mean(x - y for x, y in zip(a, b, strict=True))
                    tests.append((cell, (a, b)))
    for (cell, _), p in zip(tests, paired_tests([pair for _, pair in tests]), strict=True):
        cell.p_value = p
        if p is not None and p < alpha and cell.delta != 0:
            cell.significance = 1 if sign * cell.delta > 0 else -1

    groups, efficiency = _efficiency(
        cells, rounds, row_keys, col_keys, col_fields, size_of, baseline, direction, target_drop
    )
    return Leaderboard(
        scope=scope,
        metric=metric,
        direction=direction,
        row_fields=row_fields,
        col_fields=col_fields,
        rows=row_keys,
        cols=col_keys,
        cells=dict(cells),
        baseline=baseline,
        avg_rank={rk: mean(ranks[rk]) if ranks[rk] else None for rk in row_keys},
        borda={rk: borda[rk] for rk in row_keys},
        efficiency=efficiency,
        groups=groups,
        costs=_pareto(costs, direction),
        failed_runs=failed_runs,
    )


def aubc(points: Sequence[tuple[float, float]]) -> float | None:
    """Trapezoid area under (labels, metric) points divided by the labels range; the value
    itself for a single point."""
    pts = sorted(points)
    if not pts:
        return None
    if len(pts) == 1 or pts[-1][0] == pts[0][0]:
        return pts[0][1]
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(pts))
    return area / (pts[-1][0] - pts[0][0])


def _efficiency(
    cells, rounds, row_keys, col_keys, col_fields, size_of, baseline, direction, target_drop
):
    """Per row and column group (the columns without budget): the budget curve, its AUBC
    and the labels needed to come within `target_drop` of the baseline's largest budget.
    The curve comes from the runs' per-round points where they have them (active learning),
    else from the cells' final values across budgets."""
    if "budget" not in col_fields:
        return [], {}
    b = col_fields.index("budget")
    groups = sorted({ck[:b] + ck[b + 1 :] for ck in col_keys})
    out = {}
    for group in groups:
        cols = [ck for ck in col_keys if ck[:b] + ck[b + 1 :] == group]
        target = None
        if baseline is not None:
            full = [
                cells[(baseline, ck)]
                for ck in cols
                if (baseline, ck) in cells and cells[(baseline, ck)].n
            ]
            if full:
                top = full[-1].mean  # columns are ordered by budget: the last is the largest
                target = top - target_drop if direction == "max" else top + target_drop
        for rk in row_keys:
            points: dict[int, list[float]] = defaultdict(list)
            for ck in cols:
                for labels, values in rounds.get((rk, ck), {}).items():
                    points[labels] += values
            curve = [
                (x, mean(v), stdev(v) if len(v) > 1 else None, len(v))
                for x, v in sorted(points.items())
            ] or [
                (size_of[ck[b]], c.mean, c.std, c.n)
                for ck in cols
                if (c := cells.get((rk, ck))) is not None and c.n
            ]
            if not curve:
                continue
            reach = None
            if target is not None:
                reach = next(
                    (
                        x
                        for x, m, _, _ in curve
                        if (m >= target if direction == "max" else m <= target)
                    ),
                    None,
                )
            out[(rk, group)] = Efficiency(
                curve, aubc([(x, m) for x, m, _, _ in curve]), target, reach
            )
    return groups, out


def _pareto(costs: dict[tuple, list[tuple[float, float]]], direction: str) -> list[CostPoint]:
    """Mean label cost and metric per cell, with the Pareto set marked: no other point is at
    least as cheap and at least as good, and strictly better in one."""
    points = [
        CostPoint(rk, ck, mean(c for c, _ in v), mean(m for _, m in v))
        for (rk, ck), v in sorted(costs.items())
    ]
    sign = 1 if direction == "max" else -1
    for p in points:
        p.pareto = not any(
            q.cost <= p.cost
            and sign * q.mean >= sign * p.mean
            and (q.cost < p.cost or sign * q.mean > sign * p.mean)
            for q in points
        )
    points.sort(key=lambda p: (p.cost, -sign * p.mean))
    return points


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"
