"""Crowd votes read from a file: a real crowdsourced label set, one row per vote, in the
long (item, worker, label) format crowd-kit's datasets and CIFAR-10H's raw release use.

The item column holds dataset indices: item i is the dataset's i-th item as its source loads
it (the rule of the label file regime, labels/label_file.py), so CIFAR-10H's
`cifar10_test_test_idx` lines up with `dataset=cifar10 dataset.split=test
dataset.test_split=null`, whose rows are CIFAR-10's test images in order (its attention-check
rows, item -99999, are to be dropped from the file first). Worker ids are any values (numbers
or strings); they are numbered 0..W-1 in sorted order, and those numbers are the Votes'
sources. Labels are class indices 0..K-1. Items the file has no vote on get none: the vote
strategies leave them out and count them (`fit/unvoted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from labelbench.config import ConfigError, check_number
from labelbench.labels.crowd import crowd_stats
from labelbench.labels.label_file import checked_path, file_sha256
from labelbench.labels.pool import NO_LABEL, Observed
from labelbench.labels.regime import Regime
from labelbench.labels.votes import Votes, gather

FORMATS = (".csv", ".parquet")
# Default column names, first found wins: crowd-kit's (task, worker, label), and `item`.
ITEM_COLUMNS = ("item", "task")
WORKER_COLUMN = "worker"
LABEL_COLUMN = "label"
WHOLE = r"^-?[0-9]{1,18}$"  # a whole number that fits int64, as text


class VoteFile(Regime):
    """The crowd votes in `path` (.csv or .parquet), one row per vote: the item (a dataset
    index), the worker who voted, and the class voted for. `item_column`, `worker_column`
    and `label_column` name the columns; by default `item` or `task`, `worker`, `label`
    (crowd-kit's names). Pool items get their votes from the file; validation items stay
    gold, as under every crowd regime.

    One vote costs `cost_per_annotation`. The budget counts annotations, and an item takes
    `annotations_per_item` of them: the file's mean votes per voted item, rounded (half
    up), at least 1. So a budget of N annotations buys N // annotations_per_item items, and
    the record's cost counts the votes those items really carry.

    `keep` ({column: value}) keeps only the rows whose every named column holds that value
    (compared as text), dropping the others before any check: CIFAR-10H's raw file with
    keep={is_attn_check: 0} loses its attention-check rows (item -99999), as its users
    filter them. The record counts the rows dropped (`vote_file_rows_dropped`).

    Every check names the file and the row (data rows, counted from 1; the header is not
    one; rows dropped by `keep` still count): a missing column, no votes, an item that is
    not a whole number >= 0 or past the dataset's end, a label outside the classes, two
    votes of one worker on one item."""

    name = "vote_file"
    kind = "crowd"

    def __init__(
        self,
        path: str,
        item_column: str | None = None,
        worker_column: str | None = None,
        label_column: str | None = None,
        cost_per_annotation: float = 1.0,
        keep: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = checked_path(path, FORMATS)
        if keep is not None and not isinstance(keep, Mapping):
            raise ConfigError(
                f"keep={keep!r} must map columns to the value their kept rows hold, e.g."
                " keep={is_attn_check: 0}"
            )
        self.keep = {str(k): v for k, v in (keep or {}).items()}
        self._file_rows: np.ndarray | None = None  # the kept rows' file rows, when keep drops
        for key, value in (
            ("item_column", item_column),
            ("worker_column", worker_column),
            ("label_column", label_column),
        ):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key}={value!r} must be a column name")
        self.cost_per_annotation = check_number("cost_per_annotation", cost_per_annotation)
        self._read(item_column, worker_column, label_column)
        # recorded, since the run key knows the path but not what the file held
        self.sha256 = file_sha256(self.path)

    # --- reading ------------------------------------------------------------------------

    def _file_row(self, row: int) -> int:
        """The file's data row (from 1) of row `row` (from 0) of the rows kept."""
        return int(row if self._file_rows is None else self._file_rows[row]) + 1

    def _where(self, row: int) -> str:
        """'path=F row r' for row `row` (from 0) of the rows kept."""
        return f"path={self.path} row {self._file_row(row)}"

    def _table(self, wanted: list[str], worker: str) -> Any:
        """The file's columns `wanted`, as a pyarrow Table; workers read as text from a CSV,
        so ids such as 007 and 7 stay two workers."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            if self.path.suffix.lower() == ".parquet":
                return pq.read_table(self.path, columns=wanted)
            options = pcsv.ConvertOptions(
                include_columns=wanted,
                column_types={worker: pa.string()},
                strings_can_be_null=True,  # an empty worker cell is no worker, not worker ""
            )
            return pcsv.read_csv(self.path, convert_options=options)
        except (pa.ArrowException, OSError) as e:
            raise ConfigError(f"path={self.path} cannot be read: {_first_line(e)}") from None

    def _columns(self) -> list[str]:
        """The file's column names (a CSV's header, a Parquet file's schema)."""
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            if self.path.suffix.lower() == ".parquet":
                return list(pq.read_schema(self.path).names)
            with pcsv.open_csv(self.path) as reader:  # parses the first block only
                return list(reader.schema.names)
        except (pa.ArrowException, OSError) as e:
            raise ConfigError(f"path={self.path} cannot be read: {_first_line(e)}") from None

    def _read(self, item: str | None, worker: str | None, label: str | None) -> None:
        if self.path.stat().st_size == 0:
            raise ConfigError(f"path={self.path} holds no votes: the file is empty")
        columns = self._columns()
        listed = ", ".join(columns)
        if item is None:
            found = [c for c in ITEM_COLUMNS if c in columns]
            if not found:
                raise ConfigError(
                    f"path={self.path} has no item column ({' or '.join(ITEM_COLUMNS)}); set"
                    f" item_column to one of its columns: {listed}"
                )
            item = found[0]
        worker, label = worker or WORKER_COLUMN, label or LABEL_COLUMN
        for key, name in (
            ("item_column", item),
            ("worker_column", worker),
            ("label_column", label),
        ):
            if name not in columns:
                raise ConfigError(
                    f"path={self.path} has no column {name!r} ({key}); columns: {listed}"
                )
        if len({item, worker, label}) < 3:
            raise ConfigError(
                f"path={self.path}: item, worker and label must be three columns; got {item},"
                f" {worker}, {label}"
            )
        self.columns = {"item": item, "worker": worker, "label": label}
        for name in self.keep:
            if name not in columns:
                raise ConfigError(
                    f"keep: path={self.path} has no column {name!r}; columns: {listed}"
                )
        wanted = [item, worker, label]
        table = self._table(wanted + [c for c in self.keep if c not in wanted], worker)
        if table.num_rows == 0:
            raise ConfigError(f"path={self.path} holds no votes: a header and no rows")
        self.rows_dropped = 0
        if self.keep:
            table = self._kept(table)
        items = self._whole(table.column(item), item, "item", "dataset indices 0, 1, ...")
        labels = self._whole(table.column(label), label, "label", "class indices 0..K-1")
        workers, self.worker_ids = self._workers(table.column(worker), worker)
        # Sorted by item, then worker: each item's votes are one slice (observe_at), and two
        # votes of one worker on one item sit side by side.
        n_workers = max(len(self.worker_ids), 1)
        if int(items.max()) < np.iinfo(np.int64).max // n_workers:  # always, but for absurd ids
            order = np.argsort(items * n_workers + workers, kind="stable")  # a radix sort: fast
        else:
            order = np.lexsort((workers, items))
        self._item, self._worker = items[order], workers[order]
        self._label, self._row = labels[order], order
        same = np.flatnonzero(
            (self._item[1:] == self._item[:-1]) & (self._worker[1:] == self._worker[:-1])
        )
        if len(same):
            v = same[np.argmin(order[same + 1])]  # the repeat that comes first in the file
            first, again = self._file_row(order[v]), self._file_row(order[v + 1])
            raise ConfigError(
                f"path={self.path} rows {first} and {again} both hold a vote of worker"
                f" {self.worker_ids[self._worker[v]]!r} on item {int(self._item[v])}; allowed:"
                " one vote per (item, worker) pair"
            )
        voted = int(np.count_nonzero(np.diff(self._item)) + 1)  # items is sorted, not empty
        self.n_votes, self.n_voted = len(order), voted
        self.annotations_per_item = max(1, int(self.n_votes / voted + 0.5))  # 2.5 -> 3

    def _kept(self, table: Any) -> Any:
        """The rows of `table` whose `keep` columns hold their values (compared as text: a
        YAML 0 matches a CSV's 0 and a Parquet int 0); remembers their file rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        mask = np.ones(table.num_rows, dtype=bool)
        for name, value in self.keep.items():
            text = pc.cast(table.column(name), pa.string())
            wanted = str(value).lower() if isinstance(value, bool) else str(value)
            mask &= pc.fill_null(pc.equal(text, wanted), False).to_numpy(zero_copy_only=False)
        if not mask.any():
            kept = ", ".join(f"{k}={v}" for k, v in self.keep.items())
            raise ConfigError(f"path={self.path} holds no votes where {kept} (keep)")
        self.rows_dropped = int((~mask).sum())
        self._file_rows = np.flatnonzero(mask)
        return table.filter(pa.array(mask))

    def _nulls(self, column: Any, name: str, role: str) -> None:
        """ConfigError at the first empty cell of `column`."""
        if column.null_count:
            import pyarrow.compute as pc

            row = int(pc.index(column.is_null(), True).as_py())
            raise ConfigError(f"{self._where(row)}: no {role} (column {name} is empty there)")

    def _whole(self, column: Any, name: str, role: str, allowed: str) -> np.ndarray:
        """`column` as int64, or ConfigError at the first row that is not a whole number
        >= 0."""
        values = self._integers(column, name, role, allowed)
        if len(values) and values.min() < 0:
            row = int(np.flatnonzero(values < 0)[0])
            raise ConfigError(
                f"{self._where(row)}: {role} {int(values[row])} (column {name}) is negative;"
                f" allowed: {allowed}"
            )
        return values

    def _integers(self, column: Any, name: str, role: str, allowed: str) -> np.ndarray:
        """`column` as int64, or ConfigError at the first row that is not a whole number."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        self._nulls(column, name, role)
        kind = column.type
        if pa.types.is_integer(kind):
            return column.to_numpy().astype(np.int64)
        if pa.types.is_floating(kind):  # a CSV cell such as 3.0, or a Parquet float column
            values = column.to_numpy()
            bad = ~np.isfinite(values) | (values != np.round(values))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            text = pc.utf8_trim_whitespace(column)
            bad = ~pc.match_substring_regex(text, WHOLE).to_numpy(zero_copy_only=False)
            values = column.to_numpy(zero_copy_only=False)
            if not bad.any():
                return pc.cast(text, pa.int64()).to_numpy()
        else:  # booleans, dates ...: no row is a class or an index
            raise ConfigError(
                f"{self._where(0)}: column {name} holds {kind} values; {role}s must be {allowed}"
            )
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"{self._where(row)}: {role} {_plain(values[row])!r} (column {name}) is not a"
                f" whole number; allowed: {allowed}"
            )
        return values.astype(np.int64)

    def _workers(self, column: Any, name: str) -> tuple[np.ndarray, list]:
        """(the row's worker number, the worker ids in number order): workers numbered by
        sorted id, numerically when every id is a whole number (worker 10 after worker 9)."""
        import pyarrow as pa

        column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        self._nulls(column, name, "worker")
        encoded = column.dictionary_encode()  # codes for the W distinct ids: vectorised
        ids = encoded.dictionary.to_pylist()
        keys: list = ids
        if ids and all(isinstance(i, str) for i in ids):
            stripped = [i.strip() for i in ids]
            if all(_is_whole(s) for s in stripped) and len({int(s) for s in stripped}) == len(ids):
                keys = [int(s) for s in stripped]  # "9" before "10"; unless "07" and "7" both
        rank = sorted(range(len(ids)), key=keys.__getitem__)
        number = np.empty(len(ids), dtype=np.int64)
        number[rank] = np.arange(len(ids))
        codes = encoded.indices.to_numpy().astype(np.int64)
        return number[codes], [keys[r] for r in rank]

    # --- the regime ---------------------------------------------------------------------

    @property
    def n_workers(self) -> int:
        return len(self.worker_ids)

    def _first(self, bad: np.ndarray) -> int:
        """Of the sorted votes where `bad` holds, the one that comes first in the file."""
        where = np.flatnonzero(bad)
        return int(where[np.argmin(self._row[where])])

    def check(self, num_classes: int) -> None:
        if self._label.max() >= num_classes:
            v = self._first(self._label >= num_classes)
            raise ConfigError(
                f"{self._where(int(self._row[v]))}: label {int(self._label[v])} (column"
                f" {self.columns['label']}) is outside the dataset's {num_classes} classes;"
                f" allowed: 0..{num_classes - 1}"
            )

    def check_dataset(self, size: int) -> None:
        if self._item[-1] >= size:
            v = self._first(self._item >= size)
            raise ConfigError(
                f"{self._where(int(self._row[v]))}: item {int(self._item[v])} (column"
                f" {self.columns['item']}) is past the dataset's {size} items; allowed:"
                f" 0..{size - 1} (item i is the dataset's i-th item as its source loads it)"
            )

    def votes_at(self, items: np.ndarray) -> Votes:
        """The file's votes on the dataset items `items`: vote rows renumbered so item
        items[r] is row r; an item the file has no vote on gets none."""
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        first = np.searchsorted(self._item, items, side="left")
        sizes = np.searchsorted(self._item, items, side="right") - first
        rows, picks = gather(first, sizes)
        return Votes(rows, self._worker[picks], self._label[picks], len(items), self.n_workers)

    def observe(self, given, x, num_classes, rng):
        raise ValueError("a vote file needs the items' dataset indices: call observe_at")

    def observe_at(self, given, x, items, num_classes, rng):
        self.check(num_classes)
        votes = self.votes_at(items)
        return Observed("crowd", np.full(len(votes), NO_LABEL), votes=votes)

    def cost(self, bought: Observed) -> float:
        return float(bought.votes.n_votes * self.cost_per_annotation)

    def stats(self, observed, y_true):
        return {
            **crowd_stats(observed.votes, y_true),
            "vote_file": str(self.path),
            "vote_file_sha256": self.sha256,
            "workers": self.n_workers,
            **({"vote_file_rows_dropped": self.rows_dropped} if self.keep else {}),
        }

    def label(self) -> str:
        return f"vote_file({self.path.stem})"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (shown as 4.5, not np.float64(4.5))."""
    return value.item() if isinstance(value, np.generic) else value


def _is_whole(text: str) -> bool:
    body = text[1:] if text.startswith("-") else text
    return 0 < len(body) <= 18 and body.isascii() and body.isdigit()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
