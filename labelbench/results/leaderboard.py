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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

FIELDS = ("dataset", "model", "regime", "budget", "strategy")
# A row's own values, usable like the fields; any other name is a key of the runs' configs.
RUN_FIELDS = ("seed", "status")
DEFAULT_ROWS = ("strategy",)
DEFAULT_COLS = ("regime", "budget")
ALPHA = 0.05
# choices.model of a strategy that trains no network (logreg, knn ...): its runs do not
# depend on the model, so they sit beside every model's runs.
NO_MODEL = "–"
# Config keys that never tell two runs apart: where files go, how they are logged and
# checkpointed, the seeds (already a field), the plugin allowlist, the sweep-wide training
# length (resolved into each strategy's own keys).
IGNORED_KEYS = ("paths", "logger", "checkpoint", "seed", "split_seed", "allow_targets", "train")
ABSENT_TEXT = "–"  # a config key a record does not have, as shown in rows and columns
SHOW_KEYS = 3  # differing config keys named in the ‡ legend
SHOW_ROWS = 5  # rows named in a warning


class LeaderboardError(ValueError):
    """A bad leaderboard request (unknown field or config key, metric, baseline)."""


class _Absent:
    """A config key a record does not have (None is a value: YAML's null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def is_field(name: str) -> bool:
    """A name a row answers itself (the five fields, seed, status); anything else is a key
    into the records' resolved configs."""
    return name in FIELDS or name in RUN_FIELDS


def config_value(config: dict[str, Any] | None, key: str) -> Any:
    """The value at dotted `key` ('strategy.max_steps') of a nested config, or ABSENT."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: leaf value}; lists and empty dicts are leaves."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def value_text(value: Any) -> str:
    """A config value as a YAML scalar reads: 200, 0.3, true, null, [256], a string as is;
    ABSENT as '–'."""
    if value is ABSENT:
        return ABSENT_TEXT
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def natural(text: str) -> tuple:
    """Sort key for values shown as text: numbers by value, then other text, '–' last."""
    if text == ABSENT_TEXT:
        return (2, 0.0, text)
    try:
        number = float(text)
    except ValueError:
        return (1, 0.0, text)
    return (0, number, text) if math.isfinite(number) else (1, 0.0, text)


def parse_wanted(text: str) -> tuple[str, Any]:
    """A filter value as (raw text, YAML value): '200' -> 200, 'true' -> True, 'null' ->
    None, '[256]' -> [256]; text YAML cannot read stays the text."""
    import yaml  # only when a config key is filtered on

    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError:
        return text, text


def value_matches(have: Any, wanted: tuple[str, Any]) -> bool:
    """Does a record's config value equal a filter value, compared as YAML scalars are? A
    string compares as the string; '–' matches a record without the key."""
    raw, parsed = wanted
    if have is ABSENT:
        return raw == ABSENT_TEXT
    if isinstance(have, str):
        return have == raw or (isinstance(parsed, str) and have == parsed)
    if isinstance(have, bool) or isinstance(parsed, bool):
        return isinstance(have, bool) and isinstance(parsed, bool) and have == parsed
    if isinstance(have, int | float) and isinstance(parsed, str):
        try:  # '1e-3': YAML 1.1 reads it as text, the config as a float
            return float(raw) == have
        except ValueError:
            return False
    return have == parsed


def min_pairs(alpha: float) -> int | None:
    """The fewest paired seeds at which a two-sided Wilcoxon signed-rank test can reach
    p < alpha: its smallest p with n pairs is 2 / 2**n. None if no n can (alpha <= 0)."""
    if alpha <= 0:
        return None
    n = 1
    while 2 / 2**n >= alpha:
        n += 1
    return n


def row_name(rk: tuple[str, ...], n_fields: int) -> str:
    """'logreg', 'supervised/200'; a model-free row in a model's table: 'logreg (model –)'."""
    name = "/".join(rk[:n_fields])
    return f"{name} (model {rk[n_fields]})" if len(rk) > n_fields else name


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
    still_improving: int = 0  # ok runs whose best validation step was their last
    # Cells with duplicates: the config keys in which the cell's runs differ -> their values
    # as text (sorted), the keys that never identify a run left out.
    differs: dict[str, list[str]] = field(default_factory=dict)

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
class Tuning:
    """What choosing the hyper-parameters of one cell's tuned runs cost: the trial records of
    their studies (config.tune.study) among the loaded rows, the trials numbered below the
    planned count (a study may have gone on after its best was picked)."""

    studies: tuple[str, ...]
    planned: int | None  # trials the studies had when their best was picked (summed)
    trials: int = 0  # distinct trials with a record, ok or failed
    failed: int = 0  # trials with no ok record
    fit_s: float = 0.0  # timings.fit_s of those trials' records, summed
    device_s: float = 0.0  # their cpu_s + gpu_s (total_s times devices), summed

    @property
    def missing(self) -> int:
        """Planned trials without a record in the loaded rows."""
        return max(self.planned - self.trials, 0) if self.planned is not None else 0


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
    # Groups whose rows (one at least) have two or more budgets: they get AUBC and
    # →target columns; a row with a single budget shows '–' there.
    aubc_groups: list[tuple[str, ...]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # where a conclusion would be unsafe
    alpha: float = ALPHA
    # (row key, col key, row) of every run placed in the table, model-free rows included
    entries: list[tuple] = field(default_factory=list, repr=False)
    # (row key, col key) -> published.Comparison, set by published.compare; None: no
    # comparison asked for (the renderers then show nothing of it)
    published: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] | None = field(
        default=None, repr=False
    )
    # (row key, col key) -> the tuning cost of a cell of tuned runs; empty: none tuned
    tuning: dict[tuple[tuple[str, ...], tuple[str, ...]], Tuning] = field(default_factory=dict)

    def cell(self, row: tuple[str, ...], col: tuple[str, ...]) -> Cell:
        return self.cells.get((row, col)) or Cell()

    def row_name(self, rk: tuple[str, ...]) -> str:
        return row_name(rk, len(self.row_fields))

    @property
    def model_free_rows(self) -> list[tuple[str, ...]]:
        """Rows of strategies that train no network, placed beside this table's model."""
        return [rk for rk in self.rows if len(rk) > len(self.row_fields)]


# Fields shown by their table label (with the setting), filterable by either name.
LABEL_OF = {"budget": "budget_label", "regime": "regime_label"}
CONFIG_PREFIX = "config:"  # row copies carry a config key's value under this prefix


def _getter(fields: Sequence[str]):
    """row -> tuple of the fields' values as text ('budget' and 'regime' read their table
    labels: '20', 'symmetric(0.4)'; a config key its value: '200', 'null', '–')."""
    if all(f in FIELDS for f in fields):  # the usual case: plain lookups
        keys = [LABEL_OF.get(f, f) for f in fields]
        if len(keys) == 1:
            (key,) = keys
            return lambda row: (row[key],)
        return operator.itemgetter(*keys) if keys else lambda row: ()
    parts = [
        operator.itemgetter(LABEL_OF.get(f, f))
        if f in FIELDS
        else (lambda row, f=f: str(row[f]))
        if f in RUN_FIELDS
        else (lambda row, k=CONFIG_PREFIX + f: value_text(row[k]))
        for f in fields
    ]
    return lambda row: tuple(part(row) for part in parts)


def _sort_key(fields: Sequence[str]):
    """Sort key of row keys: the fields as text, config keys and seeds by value (200 before
    1500); None where plain sorting does (no config keys)."""
    if all(f in FIELDS for f in fields):
        return None
    natural_at = {i for i, f in enumerate(fields) if f not in FIELDS}
    return lambda key: tuple(
        natural(v) if i in natural_at else (0, 0.0, v) for i, v in enumerate(key)
    )


def matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    """True if every `key=value` filter holds (keys: the choice fields, seed, status). A
    model-free row ('–': its strategy trains no network) matches any model."""
    for key, want in filters.items():
        have = str(row["seed"]) if key == "seed" else row.get(key)
        if key in LABEL_OF and want in (row[LABEL_OF[key]], row[key]):
            continue
        if key == "model" and have == NO_MODEL:
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


ConfigReader = Callable[[list[str]], list[dict[str, Any] | None]]


def build_leaderboards(
    rows: list[dict[str, Any]],
    metric: str = "test/acc",
    row_fields: Sequence[str] = DEFAULT_ROWS,
    col_fields: Sequence[str] = DEFAULT_COLS,
    baseline: str | None = "supervised",
    filters: dict[str, str] | None = None,
    target_drop: float = 0.01,
    alpha: float = ALPHA,
    read_configs: ConfigReader | None = None,
) -> list[Leaderboard]:
    """Split rows into tables by the fields that are neither rows nor columns, then fill
    cells. Rows, columns and filters take the fields, seed, status or any key of the
    records' resolved configs ('strategy.max_steps'), read (with `read_configs`, from the
    rows' record files by default) only when asked for, and only for the rows still in play.
    `baseline` names a row (its fields joined by '/') for paired comparisons; it is ignored
    in tables that lack it. The rows of tuning trials (row['trial'] set) are placed in no
    cell: they are the cost of the tuned rows (Leaderboard.tuning), found among all `rows`
    whatever the filters. Raises LeaderboardError for unknown keys or metrics."""
    row_fields, col_fields = tuple(row_fields), tuple(col_fields)
    if set(row_fields) & set(col_fields) or not row_fields or not col_fields:
        raise LeaderboardError(
            f"--rows {','.join(row_fields)} and --cols {','.join(col_fields)} must be non-empty and disjoint"
        )
    if read_configs is None:
        from labelbench.results.table import load_configs as read_configs
    # Before any filter: `--filter strategy=fixmatch[tuned]` drops the trials (strategy
    # 'fixmatch'), yet they are what its rows cost.
    trials = _trials_by_study(rows)
    if trials:
        rows = [r for r in rows if r.get("trial") is None]
    filters = dict(filters or {})
    field_filters = {k: v for k, v in filters.items() if is_field(k)}
    if field_filters:
        rows = [r for r in rows if matches(r, field_filters)]
    asked = {k: "--filter" for k in filters if not is_field(k)}
    for flag, names in (("--rows", row_fields), ("--cols", col_fields)):
        asked.update({k: flag for k in names if not is_field(k) and k not in asked})
    if asked and rows:
        rows = _with_config_keys(rows, asked, filters, read_configs, bool(field_filters))
    if not any(metric in r["metrics"] for r in rows) and any(r["status"] == "ok" for r in rows):
        known = sorted({m for r in rows for m in r["metrics"]})
        raise LeaderboardError(f"metric={metric} is in no record; metrics: {', '.join(known)}")
    direction = direction_of(rows, metric)
    scope_fields = tuple(f for f in FIELDS if f not in row_fields and f not in col_fields)

    scope_of, row_of, col_of = _getter(scope_fields), _getter(row_fields), _getter(col_fields)
    by_scope: dict[tuple[str, ...], list[tuple]] = defaultdict(list)
    for r in rows:
        by_scope[scope_of(r)].append((row_of(r), col_of(r), r))
    if "model" in scope_fields:
        _place_model_free(by_scope, scope_fields.index("model"))
    baseline_key = tuple(baseline.split("/")) if baseline else None
    built = [
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
    _explain_duplicates(built, read_configs)
    boards = [lb for lb, _ in built]
    if any(r.get("study") is not None for r in rows):
        for lb in boards:
            lb.tuning = _tuning(lb.entries, trials)
            lb.warnings += _tuning_warnings(lb)
    return boards


def _trials_by_study(rows: Iterable[dict[str, Any]]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """{study id: {trial number: its records' rows}} of the trial rows."""
    out: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if (n := r.get("trial")) is not None:
            out[r["study"]][n].append(r)
    return out


def _tuning(
    entries: Iterable[tuple], trials: dict[str, dict[int, list[dict[str, Any]]]]
) -> dict[tuple, Tuning]:
    """The Tuning of each cell with tuned runs: their studies' trials, counted once each."""
    planned: dict[tuple, dict[str, int | None]] = defaultdict(dict)
    for rk, ck, r in entries:
        if (study := r.get("study")) is not None:
            # runs of one study re-picked after more trials: the latest (largest) count
            known = [
                n for n in (planned[(rk, ck)].get(study), r.get("tuned_trials")) if n is not None
            ]
            planned[(rk, ck)][study] = max(known) if known else None
    out = {}
    for key, studies in planned.items():
        t = Tuning(studies=tuple(sorted(studies)), planned=None)
        for study, n_planned in sorted(studies.items()):
            if n_planned is not None:
                t.planned = (t.planned or 0) + n_planned
            for number, records in trials.get(study, {}).items():
                if n_planned is not None and number >= n_planned:
                    continue
                t.trials += 1
                t.failed += all(r["status"] != "ok" for r in records)
                # every record's time counts: a failed attempt and its rerun were both spent
                t.fit_s += math.fsum(r["fit_s"] for r in records if r.get("fit_s") is not None)
                t.device_s += math.fsum(
                    r["cpu_s"] + r["gpu_s"] for r in records if r.get("cpu_s") is not None
                )
        out[key] = t
    return out


def _tuning_warnings(lb: Leaderboard) -> list[str]:
    """Where tuning makes a comparison unequal (tuned rows of one column with different
    trial budgets) or its cost understated (trial records missing from the store)."""
    out = []
    by_text: dict[str, list[str]] = defaultdict(list)  # the differing budgets -> columns
    for ck in lb.cols:
        tuned = [
            (lb.row_name(rk), t.planned)
            for rk in lb.rows
            if (t := lb.tuning.get((rk, ck))) is not None and t.planned is not None
        ]
        if len({n for _, n in tuned}) > 1:
            by_text[", ".join(f"{name} {n} trials" for name, n in tuned)].append(" ".join(ck))
    for text, cols in by_text.items():
        more = f" and {len(cols) - SHOW_ROWS} more" if len(cols) > SHOW_ROWS else ""
        out.append(
            f"tuning budgets differ in {', '.join(cols[:SHOW_ROWS])}{more}: {text} — an unequal"
            " comparison; tune every row with the same number of trials"
        )
    short = [
        f"{lb.row_name(rk)} @ {' '.join(ck)}, {'studies' if len(t.studies) > 1 else 'study'}"
        f" {', '.join(t.studies)}: {t.trials} of {t.planned} trial records in this store"
        for rk in lb.rows
        for ck in lb.cols
        if (t := lb.tuning.get((rk, ck))) is not None and t.missing
    ]
    if short:
        more = f" and {len(short) - SHOW_ROWS} more" if len(short) > SHOW_ROWS else ""
        out.append(
            f"{'; '.join(short[:SHOW_ROWS])}{more}: the tuning cost shown counts only the trials"
            " found; load the store that holds the studies' trial records"
        )
    return out


def _place_model_free(by_scope: dict[tuple[str, ...], list[tuple]], m: int) -> None:
    """Move the runs of model-free strategies (model '–') into every table whose other scope
    fields match, as rows of their own ('logreg (model –)'); they keep a table of their own
    only where there is no such table."""
    free = [s for s in by_scope if s[m] == NO_MODEL]
    for scope in free:
        rest = scope[:m] + scope[m + 1 :]
        hosts = [t for t in by_scope if t[m] != NO_MODEL and t[:m] + t[m + 1 :] == rest]
        if hosts:
            entries = by_scope.pop(scope)
            for host in hosts:
                by_scope[host] += [((*rk, NO_MODEL), ck, r) for rk, ck, r in entries]


def _with_config_keys(
    rows: list[dict[str, Any]],
    asked: dict[str, str],
    filters: dict[str, str],
    read_configs: ConfigReader,
    selected: bool,
) -> list[dict[str, Any]]:
    """The rows whose configs match the config-key filters, as copies that carry each asked
    key's value (and the config, for explaining duplicates). Refuses a key no record has."""
    configs = read_configs([r["path"] for r in rows])
    for key, flag in asked.items():
        if all(config_value(c, key) is ABSENT for c in configs):
            raise LeaderboardError(_unknown_key(flag, key, configs, selected))
    wanted = {k: parse_wanted(v) for k, v in filters.items() if k in asked}
    out = []
    for r, config in zip(rows, configs, strict=True):
        values = {key: config_value(config, key) for key in asked}
        if all(value_matches(values[k], want) for k, want in wanted.items()):
            out.append(
                {**r, **{CONFIG_PREFIX + k: v for k, v in values.items()}, "_config": config}
            )
    return out


def _unknown_key(
    flag: str, key: str, configs: Sequence[dict[str, Any] | None], selected: bool
) -> str:
    """'--filter strategy.max_stepz: no record has this key; did you mean ...? fields: ...'"""
    import difflib

    values: dict[str, set[str]] = defaultdict(set)
    for config in configs:
        if config is not None:
            for k, v in flatten(config).items():
                if k.split(".", 1)[0] not in IGNORED_KEYS:
                    values[k].add(value_text(v))
    # 'max_steps' -> 'strategy.max_steps'; then typos ('strategy.max_stepz')
    close = sorted(k for k in values if k.endswith(f".{key}"))[:3]
    close += [
        k
        for k in difflib.get_close_matches(key, [*FIELDS, *RUN_FIELDS, *values], n=3, cutoff=0.75)
        if k not in close
    ][: 3 - len(close)]
    hint = f" did you mean {' or '.join(close)}?" if close else ""
    # examples: the keys that tell these records apart, else any
    varying = sorted(k for k, v in values.items() if len(v) > 1) or sorted(values)
    examples = f" ({', '.join(varying[:2])} ...)" if varying else ""
    who = "no selected record" if selected else "no record"
    return (
        f"{flag} {key}: {who} has this key;{hint} fields: {', '.join(FIELDS + RUN_FIELDS)},"
        f" or any config key{examples}"
    )


def _explain_duplicates(
    built: list[tuple[Leaderboard, dict[tuple, list[dict[str, Any]]]]],
    read_configs: ConfigReader,
) -> None:
    """For each cell with duplicates: the config keys in which its runs differ, from the
    configs of those runs only."""
    pending = [(lb, key, runs) for lb, dups in built for key, runs in dups.items()]
    if not pending:
        return
    # rows filtered on config keys carry their config already
    need = sorted({r["path"] for _, _, runs in pending for r in runs if "_config" not in r})
    read = dict(zip(need, read_configs(need), strict=True)) if need else {}
    for lb, key, runs in pending:
        configs = [r["_config"] if "_config" in r else read[r["path"]] for r in runs]
        lb.cells[key].differs = config_differences([c for c in configs if c is not None])


def config_differences(configs: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The dotted keys whose values are not the same in all `configs` (a key some lack
    counts, as '–'), with their distinct values as text, sorted; the keys that never
    identify a run (IGNORED_KEYS) left out."""
    flats = [
        {k: v for k, v in flatten(c).items() if k.split(".", 1)[0] not in IGNORED_KEYS}
        for c in configs
    ]
    out = {}
    for key in sorted(set().union(*flats)):
        texts = {value_text(f.get(key, ABSENT)) for f in flats}
        if len(texts) > 1:
            out[key] = sorted(texts, key=natural)
    return out


def _one_table(
    scope, rows, metric, direction, row_fields, col_fields, baseline, target_drop, alpha
) -> tuple[Leaderboard, dict[tuple, list[dict[str, Any]]]]:
    """The table of one scope, and the ok runs of each cell with duplicates (to explain)."""
    cells: dict[tuple, Cell] = defaultdict(Cell)
    costs: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    rounds: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    size_of: dict[str, int] = {}
    failed_runs = []
    duplicated: set[tuple] = set()
    for rk, ck, r in rows:
        size_of.setdefault(r["budget_label"], r["budget_size"])
        cell = cells[(rk, ck)]
        if r["status"] != "ok":
            cell.failed += 1
            failed_runs.append(r)
        elif metric in (metrics := r["metrics"]):
            value = float(metrics[metric])
            if r["seed"] in cell.values:
                cell.duplicates += 1  # same seed again: configs differ beyond the fields shown
                duplicated.add((rk, ck))
            else:
                cell.values[r["seed"]] = value
            # A network run whose best validation step was its last: still improving.
            best = metrics.get("fit/best_step")
            if best is not None and best > 0 and best == metrics.get("fit/steps"):
                cell.still_improving += 1
            if r.get("cost") is not None:
                costs[(rk, ck)].append((float(r["cost"]), value))
            for point in r["curve"]:  # per-round points (active learning): labels -> metric
                if metric in point and "labels" in point:
                    rounds[(rk, ck)][int(point["labels"])].append(float(point[metric]))
    dup_runs: dict[tuple, list[dict[str, Any]]] = {key: [] for key in duplicated}
    if dup_runs:
        for rk, ck, r in rows:
            if (rk, ck) in dup_runs and r["status"] == "ok" and metric in r["metrics"]:
                dup_runs[(rk, ck)].append(r)

    def col_order(col: tuple[str, ...]):
        return tuple(
            (size_of.get(v, 0), v) if f == "budget" else (0, v) if f in FIELDS else natural(v)
            for f, v in zip(col_fields, col, strict=True)
        )

    row_keys = sorted({k[0] for k in cells}, key=_sort_key(row_fields))
    col_keys = sorted({k[1] for k in cells}, key=col_order)
    if baseline not in row_keys and baseline is not None and (*baseline, NO_MODEL) in row_keys:
        baseline = (*baseline, NO_MODEL)  # a model-free baseline beside this table's model
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
    lb = Leaderboard(
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
        aubc_groups=[
            g
            for g in groups
            if any(len(e.curve) > 1 for (_, eg), e in efficiency.items() if eg == g)
        ],
        alpha=alpha,
        entries=rows,
    )
    lb.warnings = _warnings(lb)
    return lb, dup_runs


def _warnings(lb: Leaderboard) -> list[str]:
    """Where reading the table would mislead: paired tests that cannot succeed, runs that
    were still improving when training stopped."""
    out = []
    need = min_pairs(lb.alpha)
    if lb.baseline is not None and need is not None:
        pairs = [c.n_pairs for (rk, _), c in lb.cells.items() if rk != lb.baseline and c.n]
        most = max(pairs, default=None)
        if most == 0:
            out.append(
                f"no cell shares a seed with {lb.row_name(lb.baseline)}: no paired test can run;"
                " run them with the same seeds"
            )
        elif most is not None and most < need:
            out.append(
                f"at most {most} paired seed{'s' if most > 1 else ''} per cell: the Wilcoxon"
                f" signed-rank test cannot reach p < {lb.alpha:g} below {need}, so no ▲/▼ can"
                " appear; run more seeds"
            )
    improving: dict[tuple[str, ...], int] = defaultdict(int)
    for (rk, _), c in lb.cells.items():
        if c.still_improving:
            improving[rk] += c.still_improving
    if improving:
        total = sum(improving.values())
        names = [lb.row_name(rk) for rk in lb.rows if rk in improving]
        more = f" and {len(names) - SHOW_ROWS} more" if len(names) > SHOW_ROWS else ""
        out.append(
            f"{total} run{'s were' if total > 1 else ' was'} still improving when training"
            f" stopped (best validation score at the last step; ↗) in {', '.join(names[:SHOW_ROWS])}"
            f"{more}: more training may change the results; train longer (train.max_steps=...)"
        )
    return out


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
            if len(curve) < 2:  # one budget: its AUBC is just its value, →target says nothing
                out[(rk, group)] = Efficiency(curve, None, target, None)
                continue
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
    points.sort(key=lambda p: (p.cost, -sign * p.mean))
    # One sweep by cost (n log n; a table of 100k runs has thousands of cells): a point is
    # dominated by a strictly cheaper one at least as good, or by one as cheap and better;
    # within a cost the best comes first, so it is the one to beat.
    best_cheaper = -math.inf  # the best sign * mean among strictly cheaper points
    i = 0
    while i < len(points):
        j = i
        while j < len(points) and points[j].cost == points[i].cost:
            j += 1
        top = sign * points[i].mean
        for p in points[i:j]:
            p.pareto = sign * p.mean > best_cheaper and sign * p.mean == top
        best_cheaper = max(best_cheaper, top)
        i = j
    return points


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"
