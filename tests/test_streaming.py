"""The streaming path: inputs on disk read by DataLoader workers, against the in-memory
path, on generated image folders (dataset=folder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_resumes_exactly
from labelbench.config import ConfigError
from labelbench.data.lazy import LazyInputs, Streaming
from labelbench.data.standin import write_image_folder
from labelbench.run import run
from labelbench.strategies.feed import Feed, MinibatchStream, input_batches

SHORT = ["strategy.max_steps=60", "strategy.eval_every=20", "strategy.batch_size=16", "logger=none"]
SMALL_SSL = ["strategy.mu=2"]  # 32 unlabeled images a step


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 30 images of 16x16, and 40 unlabeled images beside them. Runs read them
    in the training process (loader.workers=0: the streaming path without worker start-up
    costs) unless a test is about the workers."""
    root, unlabeled, _ = write_image_folder(
        tmp_path_factory.mktemp("images") / "shapes", per_class=30, unlabeled=40
    )
    return root, unlabeled


def folder_run(compose_fast, folder, *overrides: str, budget: str = "budget.total=12", short=SHORT):
    root, unlabeled = folder
    cfg, choices = compose_fast(
        "dataset=folder", f"dataset.root={root}", f"dataset.unlabeled={unlabeled}",
        "model=cnn_small", budget, "loader.workers=0", *short, *overrides, fast=False,
    )  # fmt: skip
    return cfg, choices


@pytest.mark.parametrize("strategy", ["supervised", "fixmatch"])
def test_streaming_and_memory_paths_reveal_the_same_labels_and_agree(
    compose_fast, folder, strategy
):
    """Same labels, same batches, same views on the CPU: the same numbers, bit for bit."""
    records = {}
    for path in ("memory", "stream"):
        cfg, choices = folder_run(
            compose_fast, folder, f"strategy={strategy}", f"loader.path={path}",
            *(SMALL_SSL if strategy == "fixmatch" else ()),
        )  # fmt: skip
        records[path] = run(cfg, choices)
        assert records[path].status == "ok", records[path].error
    memory, stream = records["memory"], records["stream"]
    assert memory.run_key == stream.run_key  # how inputs travel is not part of the run
    assert memory.labels["indices"] == stream.labels["indices"]
    assert memory.metrics.pop("fit/streamed") == 0.0 and stream.metrics.pop("fit/streamed") == 1.0
    assert memory.metrics == stream.metrics


def test_unlabeled_only_items_are_never_revealed_or_tested_and_ssl_uses_them(compose_fast, folder):
    cfg, choices = folder_run(
        compose_fast,
        folder,
        "strategy=fixmatch",
        *SMALL_SSL,
        "loader.path=stream",
        budget="budget=full",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    unlabeled_only = set(range(90, 130))  # the unlabeled folder's items come last
    assert record.labels["realised"]["unlabeled_only"] == 40
    assert not unlabeled_only & set(record.labels["indices"])
    pool = record.labels["realised"]["pool_size"]
    assert record.labels["count"] == pool  # the full budget buys the pool, nothing more
    # The unlabeled set: the whole pool (include_labeled) plus the 40 unlabeled-only items.
    assert record.metrics["fit/unlabeled"] == pool + 40


def test_a_budget_larger_than_the_labeled_items_is_refused_naming_them(compose_fast, folder):
    cfg, choices = folder_run(compose_fast, folder, budget="budget.total=200")
    with pytest.raises(ConfigError, match=r"budget.total=200 .*40 unlabeled-only items"):
        run(cfg, choices)


def test_a_truncated_image_fails_the_run_with_a_record_naming_the_file(compose_fast, tmp_path):
    root, _, bad = write_image_folder(tmp_path / "broken", per_class=20, truncated=1, fmt="jpeg")
    cfg, choices = compose_fast(
        "dataset=folder", f"dataset.root={root}", "loader.path=stream", "loader.workers=2",
        "budget=full", "model=cnn_small", *SHORT, fast=False,
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "failed"
    message = record.error["message"]
    assert str(bad[0]) in message and "\n" not in message


def test_a_corrupt_file_is_refused_before_training_naming_it(compose_fast, tmp_path):
    root, _, bad = write_image_folder(tmp_path / "corrupt", per_class=10, corrupt=1)
    cfg, choices = compose_fast("dataset=folder", f"dataset.root={root}", *SHORT, fast=False)
    with pytest.raises(ConfigError, match=str(bad[0].name)):
        run(cfg, choices)
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing half-written


def test_streamed_fit_resumes_mid_epoch_exactly(compose_fast, folder, monkeypatch, tmp_path):
    """12 labels in batches of 8 and 16 unlabeled of the 100 per step: step 20 (20 x 8 =
    13 x 12 + 4 labeled, 20 x 16 = 3 x 100 + 20 unlabeled) is inside a pass of both feeds,
    right after a validation, with batches prefetched by the workers beyond it."""
    cfg, choices = folder_run(
        compose_fast, folder, "strategy=fixmatch", "loader.path=stream",
        "strategy.batch_size=8", "strategy.mu=2", "strategy.max_steps=30",
        "strategy.eval_every=10", "checkpoint.every_steps=10", "strategy.patience=0",
        "loader.workers=2",
    )  # fmt: skip
    whole = run(cfg, choices)
    assert whole.status == "ok", whole.error
    assert whole.metrics["fit/unlabeled"] == 100  # the pass lengths the docstring counts
    assert_resumes_exactly(
        cfg, choices, whole, monkeypatch, tmp_path, lambda m: m.steps_done == 20, at=20
    )


# -- the pieces ----------------------------------------------------------------------------


def test_ddp_shares_of_each_batch_are_disjoint_and_cover_it():
    cpu = torch.device("cpu")
    whole = MinibatchStream(50, 8, seed=3, device=cpu)
    ranks = [MinibatchStream(50, 8, seed=3, device=cpu, rank=r, world_size=2) for r in (0, 1)]
    seen = []
    for _ in range(14):  # two passes: 7 batches each
        batch = next(whole).tolist()
        shares = [next(s).tolist() for s in ranks]
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == sorted(batch)
        seen += batch
    assert sorted(seen) == sorted(list(range(50)) * 2)  # every item once per pass


def test_stream_state_resumes_mid_pass_with_the_same_batches():
    cpu = torch.device("cpu")
    for replacement in (False, True):
        a = MinibatchStream(23, 5, seed=1, device=cpu, replacement=replacement)
        for _ in range(7):  # into the second pass
            next(a)
        b = MinibatchStream(23, 5, seed=99, device=cpu, replacement=replacement)
        b.load_state_dict(a.state_dict())
        for _ in range(10):
            assert torch.equal(next(a), next(b))


@pytest.fixture(scope="module")
def lazy(folder):
    from labelbench.data.folder import Folder

    root, unlabeled = folder
    task = Folder(root=str(root), unlabeled=str(unlabeled)).load(0)
    return LazyInputs(task.x.reader, streaming=Streaming(workers=2, prefetch=2))


def test_a_feed_checkpoints_the_batch_consumed_not_those_prefetched(lazy):
    cpu = torch.device("cpu")
    rows = torch.arange(5, 65)
    memory = torch.as_tensor(np.asarray(lazy))

    def feed(x):
        return Feed(MinibatchStream(len(rows), 7, seed=0, device=cpu), rows, x, cpu)

    streamed, reference = feed(lazy), feed(memory)
    for _ in range(5):
        (pick, x), (ref_pick, ref_x) = next(streamed), next(reference)
        assert torch.equal(pick, ref_pick) and torch.equal(x, ref_x)
    state, expected = streamed.state_dict(), reference.state_dict()
    assert state["taken"] == expected["taken"] == 5  # the workers have read further ahead
    assert torch.equal(state["generator"], expected["generator"])
    resumed = feed(lazy)
    resumed.load_state_dict(state)
    for step in range(12):  # past the end of the pass
        if step == 4:
            resumed.close()  # paused (as for validation): what the workers read ahead is dropped
        (pick, x), (ref_pick, ref_x) = next(resumed), next(reference)
        assert torch.equal(pick, ref_pick) and torch.equal(x, ref_x)
    # Stop the workers now: left to the garbage collector (which, not the end of this test,
    # frees these feeds), their shut-down waited out torch's 5 s join timeout per worker,
    # 20 s in whichever later test the collection fell.
    streamed.close()
    resumed.close()


def test_batched_input_passes_equal_one_shot_reads(lazy):
    rows = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6, 53, 58, 97, 93])
    cpu = torch.device("cpu")
    one_shot = torch.as_tensor(np.asarray(lazy))[rows]
    for x in (lazy, torch.as_tensor(np.asarray(lazy))):
        got = torch.cat(list(input_batches(x, rows, cpu, size=5)))
        assert torch.equal(got, one_shot)


def test_batched_prediction_equals_one_shot(lazy):
    from labelbench.models.cnn import CNNSmall
    from labelbench.strategies.lightning import NetPredictor

    torch.manual_seed(0)
    net = CNNSmall(in_shape=lazy.item_shape, num_classes=3)
    predictor = NetPredictor(net, lazy.item_shape, {}, batch_size=16)
    one_shot = torch.softmax(net.eval()(torch.as_tensor(np.asarray(lazy))), 1).detach()
    np.testing.assert_allclose(predictor.predict_proba(lazy), one_shot.double(), atol=1e-6)
    np.testing.assert_array_equal(
        predictor.predict_proba(lazy), predictor.predict_proba(np.asarray(lazy))
    )


@pytest.mark.slow
def test_ddp_streams_each_process_its_share(folder, tmp_path):
    """Two DDP processes on the CPU, each reading its share of every batch from disk with
    its own workers; rank 0 records the run once."""
    import json

    from conftest import run_cli

    root, unlabeled = folder
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run", "trainer=ddp", "dataset=folder", f"dataset.root={root}",
        f"dataset.unlabeled={unlabeled}", "loader.path=stream", "loader.workers=1",
        "strategy=fixmatch", "model=cnn_small", "budget.total=12", "strategy.max_steps=20",
        "strategy.eval_every=10", "logger=none", f"paths.results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (results / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record["error"]
    assert record["metrics"]["fit/streamed"] == 1.0 and record["metrics"]["fit/steps"] == 20


@pytest.mark.parametrize("query", ["margin", pytest.param("coreset", marks=pytest.mark.slow)])
def test_active_learning_scores_a_streamed_pool_as_the_memory_path_does(
    compose_fast, folder, query
):
    """Every round scores the whole unlabeled pool (and coreset embeds it) in batches read
    from disk; the items bought and the curve equal the in-memory path's."""
    records = {}
    for path in ("memory", "stream"):
        cfg, choices = folder_run(
            compose_fast, folder, "strategy=active", f"strategy/query={query}",
            "strategy.inner.eval_every=20", f"loader.path={path}", budget="budget.total=30",
            short=("train.max_steps=20", "logger=none"),
        )  # fmt: skip
        records[path] = run(cfg, choices)
        assert records[path].status == "ok", records[path].error
    memory, stream = records["memory"], records["stream"]
    assert memory.labels["indices"] == stream.labels["indices"]
    assert not set(range(90, 130)) & set(stream.labels["indices"])  # never an unlabeled-only item
    assert memory.curve == stream.curve and len(stream.curve) == 3
