"""Active learning with a proxy choosing the items (LabelBench's selection via proxy): both
models' curves in the record, point evaluation (`evaluate`), resume between rounds, the
inner's and proxy's own model checks, and the refusals. Digits, logreg as the proxy, a
small supervised MLP as the inner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelbench.config import ConfigError
from labelbench.results.leaderboard import aubc, build_leaderboards
from labelbench.results.record import RunRecord
from labelbench.results.table import load_rows
from labelbench.run import Curve, run
from labelbench.strategies.active import Active
from labelbench.strategies.logreg import LogReg
from labelbench.strategies.supervised import Supervised

BASE = ["dataset=digits", "logger=none", "strategy=active", "strategy.inner.max_steps=40",
        "strategy.inner.eval_every=20", "budget.total=40", "strategy.initial=10",
        "strategy.query_size=10"]  # fmt: skip
PROXY = [*BASE, "+strategy@strategy.proxy=logreg"]
TEST_KEYS = {"test/acc", "test/balanced_acc", "test/macro_f1", "test/ece", "test/nll"}


def acc_points(curve: list[dict]) -> list[tuple[int, float]]:
    return [(p["labels"], p["test/acc"]) for p in curve]


@pytest.fixture
def fits(monkeypatch):
    """Counts of the inner's (Supervised) and the proxy's (LogReg) fits, the real fits run."""
    counts = {"inner": 0, "proxy": 0}
    for role, cls in (("inner", Supervised), ("proxy", LogReg)):
        real = cls.fit

        def counted(self, *args, _real=real, _role=role, **kwargs):
            counts[_role] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", counted)
    return counts


def test_the_record_holds_both_curves_and_the_leaderboard_reads_the_inners(compose_fast, fits):
    cfg, choices = compose_fast(*PROXY, fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert fits == {"inner": 4, "proxy": 4}  # the proxy in the last round too: its last point
    for curve in (record.curve, record.proxy_curve):
        assert [(p["round"], p["labels"]) for p in curve] == [(0, 10), (1, 20), (2, 30), (3, 40)]
        assert set(curve[0]) >= TEST_KEYS
    assert record.curve[-1]["test/acc"] == record.metrics["test/acc"]  # final: the inner's
    assert acc_points(record.curve) != acc_points(record.proxy_curve)  # two models
    # The proxy's curve is what the run scores for logreg as the inner on the same labels.
    cheap = run(*compose_fast(*[a for a in BASE if "inner" not in a],
                              "strategy@strategy.inner=logreg", fast=False))  # fmt: skip
    assert cheap.labels["indices"] == record.labels["indices"] and cheap.proxy_curve == []
    assert cheap.curve == record.proxy_curve
    # Both AUBCs from the record; the leaderboard's AUBC is the inner's.
    inner_aubc, proxy_aubc = aubc(acc_points(record.curve)), aubc(acc_points(record.proxy_curve))
    assert inner_aubc is not None and proxy_aubc == aubc(acc_points(cheap.curve))
    (lb,) = build_leaderboards(
        [r for r in load_rows(cfg.paths.results_dir).rows if r["run_key"] == record.run_key],
        baseline=None,
    )
    (eff,) = lb.efficiency.values()
    assert [(x, m) for x, m, _, _ in eff.curve] == acc_points(record.curve)
    assert eff.aubc == pytest.approx(inner_aubc)
    # The record file round-trips; a record from before proxy_curve still reads.
    path = Path(cfg.paths.results_dir) / "runs" / f"{record.run_key}.json"
    data = json.loads(path.read_text())
    assert RunRecord.from_dict(data).proxy_curve == record.proxy_curve
    del data["proxy_curve"]
    assert RunRecord.from_dict(data).proxy_curve == []


def test_point_evaluation_fits_the_inner_once_on_the_same_labels(compose_fast, fits):
    every = run(*compose_fast(*PROXY, fast=False))
    fits.update(inner=0, proxy=0)
    end = run(*compose_fast(*PROXY, "strategy.evaluate=end", fast=False))
    assert end.status == "ok", end.error
    assert fits == {"inner": 1, "proxy": 4}
    assert end.labels["indices"] == every.labels["indices"]  # the inner chooses nothing
    assert end.proxy_curve == every.proxy_curve
    assert end.curve == [every.curve[-1]]  # round 3, 40 labels: the one inner point
    assert end.metrics == every.metrics  # the inner's, on the final labels
    fits.update(inner=0, proxy=0)
    two = run(*compose_fast(*PROXY, "budget.total=50", "strategy.evaluate=2", fast=False))
    assert two.status == "ok", two.error
    assert fits == {"inner": 3, "proxy": 5}
    assert [(p["round"], p["labels"]) for p in two.curve] == [(0, 10), (2, 30), (4, 50)]
    assert [p["labels"] for p in two.proxy_curve] == [10, 20, 30, 40, 50]
    assert two.labels["indices"][:40] == every.labels["indices"]
    assert two.metrics["test/acc"] == two.curve[-1]["test/acc"]


@pytest.mark.parametrize("evaluate", ["every_round", "end"])
def test_killed_between_rounds_resumes_to_the_same_record(
    evaluate, compose_fast, tmp_path, monkeypatch
):
    args = [*PROXY, f"strategy.evaluate={evaluate}"]
    whole = run(*compose_fast(*args, fast=False))
    assert whole.status == "ok", whole.error
    cfg, choices = compose_fast(*args, fast=False)
    cfg.paths.results_dir = str(tmp_path / "interrupted")
    original = Active._scores

    def crash_in_round_two(self, predictor, pool, task):  # after round 2's reports
        if len(pool) == 30:
            raise RuntimeError("simulated kill")
        return original(self, predictor, pool, task)

    monkeypatch.setattr(Active, "_scores", crash_in_round_two)
    crashed = run(cfg, choices)
    assert crashed.status == "failed" and crashed.error["message"] == "simulated kill"
    folder = tmp_path / "interrupted" / "checkpoints" / crashed.run_key
    assert json.loads((folder / "rounds.json").read_text())["round"] == 2
    assert [p["labels"] for p in crashed.proxy_curve] == [10, 20, 30]  # round 2 scored, unsaved
    monkeypatch.setattr(Active, "_scores", original)
    resumed = run(cfg, choices)
    assert resumed.status == "ok", resumed.error
    assert resumed.labels["indices"] == whole.labels["indices"]
    assert resumed.curve == whole.curve and resumed.proxy_curve == whole.proxy_curve
    assert resumed.metrics == whole.metrics
    assert not folder.exists()


def test_curve_rounds_and_rescoring(tmp_path):
    """A point's round is its place among the label counts reported; a round scored again
    replaces that role's point and drops later ones; a checkpoint's plain list is the inner's."""
    curve = Curve(tmp_path)
    for n in (10, 20, 30):
        curve.add(n, {"test/acc": n / 100}, "proxy")
    curve.add(30, {"test/acc": 0.9})
    assert [(p["round"], p["labels"]) for p in curve.points] == [(2, 30)]
    again = Curve(tmp_path)  # a resumed run, killed in the round of 20 labels
    again.add(20, {"test/acc": 0.25}, "proxy")
    assert again.points == [] and [p["test/acc"] for p in again.proxy_points] == [0.1, 0.25]
    (tmp_path / Curve.FILE).write_text(json.dumps([{"round": 0, "labels": 10, "test/acc": 0.5}]))
    assert Curve(tmp_path).points[0]["test/acc"] == 0.5 and Curve(tmp_path).proxy_points == []
    with pytest.raises(ValueError, match="role='teacher'"):
        curve.add(40, {}, "teacher")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["strategy.evaluate=end"], "strategy.evaluate=end needs a proxy to choose the items"),
        (["strategy.evaluate=3"], "strategy.evaluate=3 needs a proxy to choose the items"),
        ([*PROXY[len(BASE):], "strategy.evaluate=sometimes"],
         "strategy.evaluate=sometimes is not one of every_round, end or a positive integer k"),
        ([*PROXY[len(BASE):], "strategy.evaluate=0"],
         "strategy.evaluate=0 is not one of every_round, end or a positive integer k"),
        (["strategy.inner.layer_decay=0.7"],
         "strategy.inner.layer_decay=0.7 needs a network with layer groups"),
        (["+strategy@strategy.proxy=supervised", "strategy.proxy.layer_decay=0.7"],
         "strategy.proxy.layer_decay=0.7 needs a network with layer groups"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_in_one_line_before_training(compose_fast, fits, args, line):
    with pytest.raises(ConfigError) as refused:
        run(*compose_fast(*BASE, *args, fast=False))
    message = str(refused.value)
    assert line in message and "\n" not in message, message
    assert fits == {"inner": 0, "proxy": 0}
