"""The vote-file crowd regime: real crowd votes read from a CSV (crowd-kit's columns) or a
Parquet file (CIFAR-10H's), aligned with the dataset's items. The revealed items carry exactly
the file's votes; a run on the command line records the crowd's statistics and the file's
hash; bad files are refused with one line naming the file and the row, exit 2, no record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import refusal_lines, run_cli
from labelbench.config import ConfigError
from labelbench.data.sources import Digits
from labelbench.labels import Full, Observed, Total, VoteFile, reveal, shape

N_WORKERS = 8
DIGITS = 1797  # items of the digits dataset: a vote file's item ids are 0..1796
FAST = ["strategy.max_steps=20", "strategy.eval_every=10", "logger=none"]
CIFAR10H = {  # CIFAR-10H raw's column names (cifar10h-raw.csv)
    "item_column": "cifar10_test_test_idx",
    "worker_column": "annotator_id",
    "label_column": "chosen_label",
}


@pytest.fixture(scope="module")
def digits():
    return Digits().load(split_seed=0)


def _crowd(y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Votes on the dataset items with true labels y, in shuffled row order: each of 8
    workers labels about 45% of the items, right 75% of the time; items i % 7 == 3 get no
    vote at all. Worker w's id is 3w + 1 (1, 4, ..., 22: in text, 10 sorts before 4)."""
    r = np.random.default_rng(seed)
    asked = r.random((len(y), N_WORKERS)) < 0.45
    asked[np.arange(len(y)) % 7 == 3] = False
    item, worker = np.nonzero(asked)
    wrong = (y[item] + r.integers(1, 10, len(item))) % 10
    label = np.where(r.random(len(item)) < 0.75, y[item], wrong)
    order = r.permutation(len(item))
    return {"item": item[order], "worker": 3 * worker[order] + 1, "label": label[order]}


def _write(fmt: str, folder: Path, votes: dict[str, np.ndarray]) -> tuple[Path, dict]:
    """The votes as a crowd-kit CSV (task, worker, label; an extra column) or a CIFAR-10H-like
    Parquet file (its column names, text worker ids); (path, the regime's column settings)."""
    if fmt == "csv":
        path = folder / "votes.csv"
        rows = zip(votes["item"], votes["worker"], votes["label"], strict=True)
        text = "".join(f"{i},{w},{c},{(i * 7) % 30}\n" for i, w, c in rows)
        path.write_text("task,worker,label,seconds\n" + text)
        return path, {}
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "cifar10h-raw.parquet"
    table = pa.table(
        {
            "annotator_id": [f"annotator-{w}" for w in votes["worker"]],
            "is_attn_check": np.zeros(len(votes["item"]), dtype=np.int64),
            "cifar10_test_test_idx": votes["item"],
            "chosen_label": votes["label"].astype(np.int32),
        }
    )
    pq.write_table(table, path)
    return path, CIFAR10H


def _worker_id(fmt: str, worker: int) -> int | str:
    """How the regime names a worker of the file: its number, or its text id."""
    return int(worker) if fmt == "csv" else f"annotator-{worker}"


def _triples(votes: dict[str, np.ndarray], fmt: str, items) -> set[tuple]:
    """The file's (item, worker, label) rows on `items`."""
    keep = np.isin(votes["item"], np.asarray(items))
    rows = zip(votes["item"][keep], votes["worker"][keep], votes["label"][keep], strict=True)
    return {(int(i), _worker_id(fmt, w), int(c)) for i, w, c in rows}


def _revealed_triples(regime: VoteFile, pool) -> set[tuple]:
    """The pool's votes as (dataset item, worker id, label)."""
    v = pool.votes
    rows = zip(pool.indices[v.item], v.source, v.label, strict=True)
    return {(int(i), regime.worker_ids[s], int(c)) for i, s, c in rows}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_revealed_items_carry_exactly_the_files_votes(fmt, digits, tmp_path):
    votes = _crowd(digits.y)
    path, columns = _write(fmt, tmp_path, votes)
    regime = VoteFile(str(path), **columns)
    regime.check(digits.num_classes)
    task = shape(digits, regime, 0, 0)
    pool, acc = reveal(task, regime, Full(), seed=0, split_seed=0)

    assert regime.n_workers == N_WORKERS
    assert regime.worker_ids == sorted(_worker_id(fmt, 3 * w + 1) for w in range(N_WORKERS))
    assert _revealed_triples(regime, pool) == _triples(votes, fmt, pool.indices)
    # items the file has no vote on are bought and carry none
    per_item = np.bincount(votes["item"], minlength=DIGITS)
    assert np.array_equal(pool.votes.per_item(), per_item[pool.indices])
    assert (pool.indices % 7 == 3).any() and not pool.votes.per_item()[pool.indices % 7 == 3].any()
    # validation items stay gold, as under every crowd regime
    assert np.array_equal(pool.val_labels, digits.y[pool.val_indices])
    # the budget counts annotations: an item takes the mean votes per voted item
    mean = len(votes["item"]) / np.count_nonzero(per_item)
    assert regime.annotations_per_item == round(mean) == 4
    assert acc.count == len(task.split.pool) == acc.budget_size // 4  # budget=full
    assert acc.cost == pool.votes.n_votes == per_item[pool.indices].sum()  # votes really bought
    realised = acc.realised
    assert acc.kind == "crowd" and acc.regime == f"vote_file({path.stem})"
    assert realised["annotations"] == pool.votes.n_votes
    right = pool.votes.label == digits.y[pool.indices][pool.votes.item]
    assert realised["annotation_acc"] == pytest.approx(right.mean())
    assert 0.7 < realised["annotation_acc"] < 0.8
    assert realised["vote_file"] == str(path) and realised["workers"] == N_WORKERS
    assert realised["vote_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_a_budget_buys_items_by_the_mean_votes_and_pays_for_the_real_ones(digits, tmp_path):
    votes = _crowd(digits.y)
    path, _ = _write("csv", tmp_path, votes)
    regime = VoteFile(str(path), cost_per_annotation=0.5)
    pool, acc = reveal(shape(digits, regime, 0, 0), regime, Total(200), seed=0, split_seed=0)
    assert acc.count == 200 // 4 == len(pool.indices)
    per_item = np.bincount(votes["item"], minlength=DIGITS)[pool.indices]
    assert acc.cost == 0.5 * per_item.sum() and per_item.sum() != 200  # not budget x 1
    # the file's row order changes nothing: the same items, the same votes
    flipped = {k: v[::-1] for k, v in votes.items()}
    other = tmp_path / "flipped"
    other.mkdir()
    again = VoteFile(str(_write("csv", other, flipped)[0]), cost_per_annotation=0.5)
    pool2, _ = reveal(shape(digits, again, 0, 0), again, Total(200), seed=0, split_seed=0)
    assert np.array_equal(pool2.indices, pool.indices) and pool2.votes == pool.votes


def test_observe_needs_the_items_and_unknown_items_get_no_votes(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("item,worker,label\n4,b,1\n0,a,2\n4,a,1\n")
    regime = VoteFile(str(path))
    given = Observed.of_labels(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="call observe_at"):
        regime.observe(given, None, 3, np.random.default_rng(0))
    seen = regime.observe_at(given, None, np.array([4, 7, 0]), 3, np.random.default_rng(0))
    assert seen.kind == "crowd" and (seen.labels == -1).all()
    assert regime.worker_ids == ["a", "b"]
    assert seen.votes.dense().tolist() == [[1, 1], [-1, -1], [2, -1]]


def test_worker_ids_are_numbered_in_sorted_order(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("task,worker,label\n0,10,1\n0,9,1\n1, 2,0\n")
    assert VoteFile(str(path)).worker_ids == [2, 9, 10]  # as numbers: 9 before 10
    path.write_text("task,worker,label\n0,07,1\n0,7,1\n")  # two workers, though 07 == 7
    assert VoteFile(str(path)).worker_ids == ["07", "7"]


# --- a run on the command line --------------------------------------------------------


def test_cli_run_on_a_vote_file_records_the_crowd_and_the_file(digits, tmp_path):
    votes = _crowd(digits.y)
    path, columns = _write("parquet", tmp_path, votes)
    results = tmp_path / "results"
    settings = [f"regime.{k}={v}" for k, v in columns.items()]
    proc = run_cli(
        "labelbench-run",
        "dataset=digits",
        "regime=vote_file",
        f"regime.path={path}",
        *settings,
        "strategy=dawid_skene",
        "budget=full",
        *FAST,
        f"paths.results_dir={results}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = (json.loads(p.read_text()) for p in results.glob("runs/*.json"))
    assert record["status"] == "ok", record.get("error")
    labels, metrics = record["labels"], record["metrics"]
    assert labels["kind"] == "crowd" and labels["regime"] == "vote_file(cifar10h-raw)"
    bought = np.asarray(labels["indices"])
    per_item = np.bincount(votes["item"], minlength=DIGITS)[bought]
    assert labels["cost"] == per_item.sum()
    realised = labels["realised"]
    assert realised["annotations"] == per_item.sum()
    assert realised["vote_file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert realised["workers"] == N_WORKERS and len(realised["annotator_acc"]) == N_WORKERS
    assert 0.7 < realised["annotation_acc"] < 0.8 and "majority_vote_acc" in realised
    # the items without votes were bought, left out of training and counted
    assert metrics["fit/unvoted"] == (per_item == 0).sum() > 0
    assert metrics["fit/trained_on"] == (per_item > 0).sum()


HEADER = "task,worker,label\n"
GOOD = "0,a,1\n1,a,2\n1,b,2\n"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            GOOD + f"{DIGITS},b,3\n",
            f"row 4: item {DIGITS} (column task) is past the dataset's {DIGITS} items; allowed:"
            f" 0..{DIGITS - 1} (item i is the dataset's i-th item as its source loads it)",
        ),
        (GOOD + "5,c,10\n", "row 4: label 10 (column label) is outside the dataset's 10 classes"),
        (GOOD + "2,a,0\n1,b,3\n", "rows 3 and 5 both hold a vote of worker 'b' on item 1"),
        ("", "holds no votes: a header and no rows"),
    ],
    ids=["unknown_item", "label_outside_classes", "duplicate_pair", "no_votes"],
)
def test_cli_refuses_a_bad_vote_file_with_one_line(body, fragment, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(HEADER + body)
    lines = refusal_lines(
        tmp_path, "dataset=digits", "regime=vote_file", f"regime.path={path}",
        "strategy=majority_vote", "budget=full", *FAST,
    )  # fmt: skip
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"labelbench-run: error: regime.path={path} "), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("name", "text", "settings", "message"),
    [
        ("votes.txt", HEADER + GOOD, {}, "has extension '.txt'; allowed: .csv, .parquet"),
        ("votes.csv", None, {}, "does not exist or is not a file"),
        ("votes.csv", "", {}, "holds no votes: the file is empty"),
        ("votes.csv", "id,who,y\n0,a,1\n", {}, "has no item column (item or task); set"),
        (
            "votes.csv",
            "id,who,y\n0,a,1\n",
            {"item_column": "id", "worker_column": "annotator"},
            "has no column 'annotator' (worker_column); columns: id, who, y",
        ),
        ("votes.csv", HEADER + GOOD + "x,b,3\n", {}, "row 4: item 'x' (column task) is not a"),
        ("votes.csv", HEADER + GOOD + "2.5,b,3\n", {}, "row 4: item 2.5 (column task) is not a"),
        ("votes.csv", HEADER + "-1,a,1\n" + GOOD, {}, "row 1: item -1 (column task) is negative"),
        ("votes.csv", HEADER + GOOD + "3,,3\n", {}, "row 4: no worker (column worker is empty"),
        ("votes.csv", HEADER + GOOD + "3,c,\n", {}, "row 4: no label (column label is empty"),
        ("votes.csv", HEADER + GOOD + "3,c,cat\n", {}, "row 4: label 'cat' (column label) is not"),
        ("votes.csv", HEADER + GOOD + "3,c,-2\n", {}, "row 4: label -2 (column label) is negative"),
        ("votes.csv", HEADER + GOOD + "3,c,1,9\n", {}, "cannot be read: CSV parse error"),
    ],
)
def test_bad_vote_files_are_refused_with_one_line(name, text, settings, message, tmp_path):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        VoteFile(str(path), **settings)
    assert str(info.value).startswith(f"path={path}"), info.value
    assert message in str(info.value) and "\n" not in str(info.value), info.value


def test_vote_files_checked_against_the_dataset_name_the_first_bad_row(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(HEADER + "9,a,1\n3,a,12\n0,b,11\n20,b,0\n12,c,2\n")
    regime = VoteFile(str(path))
    with pytest.raises(ConfigError, match=r"row 2: label 12 .* classes; allowed: 0\.\.9$"):
        regime.check(10)
    regime.check(13)
    with pytest.raises(ConfigError, match=r"row 1: item 9 .* past the dataset's 5 items"):
        regime.check_dataset(5)
    with pytest.raises(ConfigError, match=r"row 4: item 20 .* past the dataset's 20 items"):
        regime.check_dataset(20)
    regime.check_dataset(21)


# --- keep: CIFAR-10H's attention checks -------------------------------------------------

RAW = "cifar10_test_test_idx,annotator_id,chosen_label,is_attn_check\n"
RAW_COLUMNS = {
    "item_column": "cifar10_test_test_idx",
    "worker_column": "annotator_id",
    "label_column": "chosen_label",
}


def test_keep_drops_rows_and_the_rest_keep_their_file_rows(tmp_path):
    path = tmp_path / "cifar10h-raw.csv"
    path.write_text(RAW + "0,1,3,0\n-99999,1,5,1\n1,2,4,0\n1,1,12,0\n")
    with pytest.raises(ConfigError, match=r"row 2: item -99999 .* is negative"):
        VoteFile(str(path), **RAW_COLUMNS)  # the attention check is no item
    regime = VoteFile(str(path), **RAW_COLUMNS, keep={"is_attn_check": 0})
    assert regime.n_votes == 3 and regime.rows_dropped == 1
    with pytest.raises(ConfigError, match=r"row 4: label 12 .* classes"):  # the file's row 4
        regime.check(10)
    votes = regime.votes_at(np.array([1, 0]))
    assert votes.dense().tolist() == [[12, 4], [3, -1]]  # workers 1, 2 are sources 0, 1
    for keep, message in (
        ({"attention": 0}, "keep: path=.* has no column 'attention'; columns: cifar10"),
        ({"is_attn_check": 2}, "holds no votes where is_attn_check=2 \\(keep\\)"),
    ):
        with pytest.raises(ConfigError, match=message):
            VoteFile(str(path), **RAW_COLUMNS, keep=keep)
    with pytest.raises(ConfigError, match=r"keep=.* must map columns"):
        VoteFile(str(path), **RAW_COLUMNS, keep=["is_attn_check"])


def test_cli_keep_reads_cifar10h_style_votes_without_their_attention_checks(tmp_path):
    path = tmp_path / "cifar10h-raw.csv"
    rows = [f"{i},{w},{(i + w) % 10},0" for i in range(0, 60) for w in range(3)]
    rows[5:5] = ["-99999,0,3,1", "-99999,2,7,1"]
    path.write_text(RAW + "\n".join(rows) + "\n")
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run", "dataset=digits", "regime=vote_file", f"regime.path={path}",
        *[f"regime.{k}={v}" for k, v in RAW_COLUMNS.items()], "regime.keep={is_attn_check:0}",
        "strategy=majority_vote", "budget=full", *FAST, f"paths.results_dir={results}",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = (json.loads(p.read_text()) for p in results.glob("runs/*.json"))
    realised = record["labels"]["realised"]
    assert record["status"] == "ok" and realised["vote_file_rows_dropped"] == 2
    assert realised["workers"] == 3 and record["metrics"]["fit/trained_on"] > 0
