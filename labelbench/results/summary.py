"""A first aggregate: mean ± std of one metric per (strategy, budget), straight from records.

Plain Python on purpose: it runs where users wait and imports neither torch nor pandas."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

from labelbench.results.record import RunRecord


def matches(record: RunRecord, filters: dict[str, str]) -> bool:
    """True if every `key=value` filter equals the record's choice (or seed)."""
    fields = {**record.choices, "seed": str(record.seed), "status": record.status}
    return all(fields.get(k) == v for k, v in filters.items())


def summary_table(records: Iterable[RunRecord], metric: str = "test/acc") -> str:
    """Markdown table: rows are strategies, columns budgets ordered by label count; each cell
    'mean ± std (n)' over ok runs. Failed runs are counted in a last column, never averaged."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    budget_size: dict[str, int] = {}
    for r in records:
        strategy, budget = r.choices["strategy"], r.labels["budget"]
        budget_size.setdefault(budget, r.labels["budget_size"])
        if r.status != "ok":
            failed[strategy] += 1
        elif metric in r.metrics:
            values[(strategy, budget)].append(r.metrics[metric])
    strategies = sorted({s for s, _ in values} | set(failed))
    budgets = sorted(budget_size, key=lambda b: (budget_size[b], b))
    if not strategies:
        return f"(no records with {metric})"

    def cell(xs: list[float]) -> str:
        if not xs:
            return "–"
        if len(xs) == 1:
            return f"{xs[0]:.3f} (1)"
        return f"{statistics.fmean(xs):.3f} ± {statistics.stdev(xs):.3f} ({len(xs)})"

    head = [
        "strategy",
        *(f"{b} labels" if b[0].isdigit() and b.isdigit() else b for b in budgets),
        "failed",
    ]
    rows = [
        [s, *(cell(values.get((s, b), [])) for b in budgets), str(failed.get(s, 0))]
        for s in strategies
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)
