"""End to end through `run` and `execute`: records, pairing across strategies, failures, skips."""

from __future__ import annotations

import json

from labelbench.results import RecordStore
from labelbench.run import execute, run


def test_end_to_end_supervised_on_synthetic(compose_fast, tmp_path):
    cfg, choices = compose_fast(
        "strategy=supervised", "budget=per_class", "budget.per_class=10", "seed=1"
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices == {
        "dataset": "synthetic",
        "regime": "clean",
        "budget": "per_class",
        "strategy": "supervised",
        "model": "mlp",
    }
    assert record.metrics["test/acc"] > 0.5  # 4 classes: chance is 0.25
    assert set(record.directions) >= {"test/acc", "test/ece", "test/nll"}
    assert record.directions["test/nll"] == "min"
    assert record.labels["count"] == 40 and record.labels["val_paid"] is False
    assert record.metrics["fit/steps"] <= 60
    assert record.timings["total_s"] > record.timings["fit_s"] > 0
    on_disk = json.loads((tmp_path / "results" / "runs" / f"{record.run_key}.json").read_text())
    assert on_disk["run_key"] == record.run_key and on_disk["config"]["seed"] == 1
    assert on_disk["labels"]["indices"] == record.labels["indices"]


def test_revealed_indices_are_identical_across_strategies_and_models(compose_fast):
    runs = [
        run(*compose_fast("strategy=supervised", "seed=2", "budget.total=30")) for _ in range(1)
    ] + [
        run(*compose_fast("strategy=logreg", "seed=2", "budget.total=30")),
        run(
            *compose_fast(
                "strategy=supervised", "model.hidden=[32,32]", "seed=2", "budget.total=30"
            )
        ),
    ]
    assert len({r.run_key for r in runs}) == 3
    assert runs[0].labels["indices"] == runs[1].labels["indices"] == runs[2].labels["indices"]
    other_seed = run(*compose_fast("strategy=logreg", "seed=3", "budget.total=30"))
    assert other_seed.labels["indices"] != runs[0].labels["indices"]


def test_same_config_same_metrics_on_cpu(compose_fast, tmp_path):
    cfg, choices = compose_fast("strategy=supervised", "seed=4")
    first = run(cfg, choices)
    second = run(cfg, choices)
    assert first.metrics == second.metrics


def test_validation_paid_is_recorded(compose_fast):
    record = run(*compose_fast("strategy=logreg", "budget.total=50", "budget.val_paid=true"))
    assert record.labels["val_paid"] is True
    assert (record.labels["count"], record.labels["val_count"], record.labels["cost"]) == (
        40,
        10,
        50.0,
    )


def test_nan_loss_writes_a_failed_record(compose_fast, tmp_path):
    cfg, choices = compose_fast(
        "strategy=supervised", "strategy.optimizer.lr=1e30", "strategy.patience=0"
    )
    record = run(cfg, choices)
    assert record.status == "failed"
    assert record.error["type"] == "FloatingPointError"
    assert record.metrics == {}
    assert RecordStore(tmp_path / "results").read(record.run_key).status == "failed"


def test_rerun_skips_ok_and_reruns_failed(compose_fast, tmp_path, caplog):
    ok_cfg, ok_choices = compose_fast("strategy=logreg", "seed=0")
    bad_cfg, bad_choices = compose_fast("strategy=supervised", "strategy.optimizer.lr=1e30")
    assert execute(ok_cfg, ok_choices) == "ok"
    assert execute(bad_cfg, bad_choices) == "failed"
    path = RecordStore(tmp_path / "results").path
    ok_written = path(
        json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())["run_key"]
    )
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "runs").glob("*.json")}
    with caplog.at_level("INFO", logger="labelbench"):
        assert execute(ok_cfg, ok_choices) == "skipped"
        assert execute(bad_cfg, bad_choices) == "failed"  # failed runs are tried again
    assert any("skip" in m and "ok record exists" in m for m in caplog.messages)
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "runs").glob("*.json")}
    assert ok_written.exists() and len(after) == 2
    changed = [p for p in after if after[p] != mtimes[p]]
    assert len(changed) == 1  # only the failed record was rewritten


def test_invalid_config_writes_nothing(compose_fast, tmp_path, capsys):
    cfg, choices = compose_fast("budget.total=100000")
    assert execute(cfg, choices) == "invalid"
    err = capsys.readouterr().err
    assert "labelbench-run: error: budget.total=100000 is larger than the pool" in err
    assert not (tmp_path / "results" / "runs").exists() or not list(
        (tmp_path / "results" / "runs").iterdir()
    )
