"""Active learning through the run: rounds and the per-round curve, paired initial items,
new and unlabeled purchases, determinism, noisy answers, kill-and-resume between rounds,
selection via a proxy and replay of a recorded label order, and the refusals."""

from __future__ import annotations

import json

import pytest

from conftest import refusal_lines, revealed, run_here
from labelbench.config import run_key
from labelbench.labels import Total, reveal
from labelbench.run import build, run
from labelbench.strategies.active import Active

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "logger=none"]
INNER = ["strategy.inner.max_steps=40", "strategy.inner.eval_every=20"]
ACTIVE = [*SYNTHETIC, "strategy=active", *INNER, "budget.total=40", "strategy.initial=10",
          "strategy.query_size=10"]  # fmt: skip


def with_inner(inner: str, *extra: str) -> list[str]:
    """ACTIVE with another inner strategy (its own defaults: logreg has no max_steps)."""
    return [a for a in ACTIVE if a not in INNER] + [f"strategy@strategy.inner={inner}", *extra]


def test_rounds_buy_until_the_budget_and_record_a_curve(compose_fast):
    cfg, choices = compose_fast(*ACTIVE, fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert [p["labels"] for p in record.curve] == [10, 20, 30, 40]
    assert [p["round"] for p in record.curve] == [0, 1, 2, 3]
    assert record.curve[-1]["test/acc"] == record.metrics["test/acc"]  # the last round's model
    bought = record.labels["indices"]
    assert record.labels["count"] == 40 and len(set(bought)) == 40
    task = build(cfg, run_key(cfg)).source.load(0)
    assert set(bought) <= set(task.split.pool.tolist())  # pool items only: never val or test
    first, _ = reveal(task, build(cfg, run_key(cfg)).regime, Total(10), seed=0, split_seed=0)
    assert bought[:10] == first.indices.tolist()  # the initial items are the paired ones
    assert record.choices["strategy"] == "active"  # margin, the default query


def test_every_query_buys_new_unlabeled_items_the_same_way_twice(compose_fast):
    orders = {}
    for query in ("random", "margin", "entropy", "least_confidence", "coreset", "badge"):
        cfg, choices = compose_fast(*ACTIVE, f"strategy/query={query}", fast=False)
        record = run(cfg, choices)
        assert record.status == "ok", (query, record.error)
        orders[query] = record.labels["indices"]
        assert len(set(orders[query])) == 40
    assert len({tuple(o[:10]) for o in orders.values()}) == 1  # the same initial items
    assert len({tuple(o[10:]) for o in orders.values()}) > 3  # then each query its own
    cfg, choices = compose_fast(*ACTIVE, "strategy/query=badge", fast=False)
    cfg.paths.results_dir = cfg.paths.results_dir + "-again"
    assert run(cfg, choices).labels["indices"] == orders["badge"]  # same seed, same order


def test_rounds_can_stop_before_the_budget_and_inner_can_be_semi_supervised(compose_fast):
    fixmatch = ["strategy@strategy.inner=fixmatch", "strategy.inner.max_steps=20",
                "strategy.inner.eval_every=10", "strategy.inner.mu=2"]  # fmt: skip
    args = [a for a in ACTIVE if a not in INNER]
    record = run(*compose_fast(*args, *fixmatch, "strategy.rounds=2", fast=False))
    assert record.status == "ok", record.error
    assert [p["labels"] for p in record.curve] == [10, 20] and record.labels["count"] == 20
    assert record.choices["strategy"] == "active[inner=fixmatch]"


def test_cold_start_picks_typical_inputs_without_a_model(compose_fast):
    record = run(*compose_fast(*ACTIVE, "strategy.initial_pick=cold_start", fast=False))
    assert record.status == "ok", record.error
    paired = run(*compose_fast(*ACTIVE, fast=False)).labels["indices"][:10]
    assert record.labels["indices"][:10] != paired and len(set(record.labels["indices"])) == 40


def test_a_queried_item_reveals_its_noisy_answer(compose_fast):
    cfg, choices = compose_fast(*ACTIVE, "regime=symmetric", "regime.rate=0.4", fast=False)
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert 0.2 < record.labels["noise_rate"] < 0.6
    assert record.labels["regime"] == "symmetric(0.4)"


def test_killed_between_rounds_resumes_to_the_same_record(compose_fast, tmp_path, monkeypatch):
    whole = run(*compose_fast(*ACTIVE, fast=False))
    cfg, choices = compose_fast(*ACTIVE, fast=False)
    cfg.paths.results_dir = str(tmp_path / "interrupted")
    original = Active._scores
    calls = []

    def crash_in_round_two(self, predictor, pool, task):
        calls.append(len(pool))
        if len(pool) == 30:
            raise RuntimeError("simulated kill")
        return original(self, predictor, pool, task)

    monkeypatch.setattr(Active, "_scores", crash_in_round_two)
    crashed = run(cfg, choices)
    assert crashed.status == "failed" and crashed.error["message"] == "simulated kill"
    state = tmp_path / "interrupted" / "checkpoints" / crashed.run_key / "rounds.json"
    assert json.loads(state.read_text())["round"] == 2  # rounds 0 and 1 are done
    monkeypatch.setattr(Active, "_scores", original)
    calls.clear()
    resumed = run(cfg, choices)
    assert resumed.status == "ok"
    assert resumed.labels["indices"] == whole.labels["indices"]
    assert resumed.curve == whole.curve and resumed.metrics == whole.metrics
    assert not state.parent.exists()  # a finished run cleans up after itself


def test_selection_via_a_proxy_and_replay_of_its_label_order(compose_fast):
    """A cheap model picks (logreg), the full model is evaluated on the order it picked:
    in one run (`proxy`), or replayed from the cheap run's record (`order_from`)."""
    cheap = run(*compose_fast(*with_inner("logreg"), fast=False))
    assert cheap.status == "ok", cheap.error
    proxied = run(*compose_fast(*ACTIVE, "+strategy@strategy.proxy=logreg", fast=False))
    assert proxied.status == "ok", proxied.error
    assert proxied.labels["indices"] == cheap.labels["indices"]
    assert proxied.choices["strategy"] == "active[proxy=logreg]"
    cfg, _ = compose_fast(*ACTIVE, fast=False)
    path = f"{cfg.paths.results_dir}/runs/{cheap.run_key}.json"
    replayed = run(*compose_fast(*ACTIVE, f"strategy.order_from={path}", fast=False))
    assert replayed.status == "ok", replayed.error
    assert replayed.labels["indices"] == cheap.labels["indices"]
    assert replayed.curve == proxied.curve  # the same labels, the same full model
    longer = run(
        *compose_fast(*ACTIVE, "budget.total=60", f"strategy.order_from={path}", fast=False)
    )
    assert longer.status == "ok" and longer.labels["indices"] == cheap.labels["indices"]
    assert [p["labels"] for p in longer.curve] == [10, 20, 30, 40]  # as far as the order goes


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["strategy.query_size=0"], "strategy.query_size=0 must be a positive integer (items per round)"),
        (["strategy.initial=50"], "strategy.initial=50 is larger than the budget (40 items); allowed: 1..40"),
        (["budget.total=5000"], "budget.total=5000 is larger than the pool"),
        (["strategy/query=coreset", "strategy@strategy.inner=logreg"],
         "strategy: query Coreset needs embeddings but LogReg trains no network"),
        (["strategy.order_from=/nonexistent.json"], "strategy.order_from=/nonexistent.json: not a readable run record"),
    ],
)  # fmt: skip
def test_refusals_in_one_line_before_training(tmp_path, args, line):
    if "strategy@strategy.inner=logreg" in args:
        args = with_inner("logreg", *(a for a in args if "inner=" not in a))
    else:
        args = [*ACTIVE, *args]
    lines = refusal_lines(tmp_path, *args)
    assert len(lines) == 1 and line in lines[0], lines


def test_fit_alone_is_refused(compose_fast):
    parts, task, pool = revealed(compose_fast(*ACTIVE, fast=False)[0])
    with pytest.raises(TypeError, match="fit_rounds"):
        parts.strategy.fit(pool, task.view(), parts.model, parts.trainer, seed=0)


def test_kill_9_between_rounds_then_relaunch_writes_the_uninterrupted_record(tmp_path):
    """A real SIGKILL of `labelbench-run` once two rounds are saved (before the run could
    finish: no record); the relaunch resumes from the saved round and ends with the
    uninterrupted record. The uninterrupted run and the relaunch go through the entry point
    in this process (run_here), as test_resume.py's relaunches of killed console scripts."""
    import signal
    import subprocess
    import time

    from conftest import BIN

    args = [*ACTIVE, "budget.total=60", "checkpoint.every_steps=0"]
    whole = run_here(
        "labelbench-run", *args, f"paths.results_dir={tmp_path / 'whole'}", cwd=tmp_path
    )
    assert whole.returncode == 0, whole.stderr
    results = tmp_path / "killed"
    proc = subprocess.Popen(
        [str(BIN / "labelbench-run"), *args, f"paths.results_dir={results}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline:
        states = list((results / "checkpoints").glob("*/rounds.json"))
        if states and json.loads(states[0].read_text())["round"] >= 2:
            state = states[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state is not None, "the run never saved two rounds"
    assert not list(results.glob("runs/*.json"))
    again = run_here("labelbench-run", *args, f"paths.results_dir={results}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    (mine,) = (json.loads(p.read_text()) for p in results.glob("runs/*.json"))
    (theirs,) = (json.loads(p.read_text()) for p in (tmp_path / "whole").glob("runs/*.json"))
    assert mine["labels"]["indices"] == theirs["labels"]["indices"]  # the same decisions
    # Rounds scored by the killed process and by the whole run's: two processes, whose
    # threaded float reductions may differ in the last bits of a calibration sum.
    assert [p["labels"] for p in mine["curve"]] == [p["labels"] for p in theirs["curve"]]
    for a, b in zip(mine["curve"], theirs["curve"], strict=True):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    assert mine["metrics"] == pytest.approx(theirs["metrics"], rel=1e-6, abs=1e-9)
