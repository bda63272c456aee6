"""Method details checked against the papers and reference code (issue 16): FlexMatch's
threshold order and its memory under DDP, TypiClust's cold start, label propagation with
the graph rebuilt on the network's features. Hand-made tensors where possible."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, assert_resumes_exactly
from labelbench.config import ConfigError, run_key
from labelbench.run import build, run
from labelbench.strategies import query as query_module
from labelbench.strategies.augment import Identity
from labelbench.strategies.feed import Feed, MinibatchStream
from labelbench.strategies.flexmatch import (
    FlexMatchModule,
    apply_updates,
    confident_updates,
    flexmatch_thresholds,
)
from labelbench.strategies.label_propagation import LabelPropagation, RebuildingModule
from labelbench.strategies.query import ColdStart, Scores

SYNTHETIC = ["dataset=synthetic", "dataset.n_samples=400", "budget.total=40", "logger=none"]

# --- FlexMatch ---------------------------------------------------------------------------


def _flexmatch(probs: torch.Tensor, selected: list[int], threshold: float) -> FlexMatchModule:
    """A FlexMatchModule whose network passes its inputs through: the unlabeled items'
    "inputs" are the log-probabilities its weak view should predict. One step draws the
    whole unlabeled set; `selected` is the memory before the step."""
    n, k = probs.shape
    data = {
        "x": torch.cat([torch.zeros(1, k), probs.log()]),
        "train_idx": torch.tensor([0]),
        "train_y": torch.tensor([0]),
        "val_idx": torch.tensor([], dtype=torch.long),
        "val_y": torch.tensor([], dtype=torch.long),
        "unlabeled_idx": torch.arange(1, n + 1),
    }
    module = FlexMatchModule(
        nn.Identity(),
        partial(torch.optim.SGD, lr=0.1),
        data,
        max_steps=10,
        eval_every=10,
        batch_size=1,
        seed=0,
        augment=Identity(),
        mu=n,
        unlabeled_weight=1.0,
        num_classes=k,
        threshold=threshold,
        warmup_steps=0,
        threshold_warmup=False,
    )
    module.selected.copy_(torch.tensor(selected))
    cpu = torch.device("cpu")
    module.streams = {
        "labeled": Feed(MinibatchStream(1, 1, 0, cpu), data["train_idx"], data["x"], cpu),
        "unlabeled": Feed(MinibatchStream(n, n, 1, cpu), data["unlabeled_idx"], data["x"], cpu),
    }
    module.labeled = module.streams["labeled"]
    module._trainer = SimpleNamespace(world_size=1)  # observe() asks; no Trainer needed
    return module


def test_flexmatch_masks_with_the_memory_from_before_the_step_as_the_reference():
    """USB's FlexMatchThresholdingHook.masking and TorchSSL's train loop compute the mask
    from classwise_acc *before* writing the batch's confident pseudo-labels into
    selected_label: a class made confident for the first time in this batch still has
    threshold 0 in this step (beta = 0), and its new count only shows in the next step."""
    probs = torch.tensor(
        [
            [0.99, 0.005, 0.005],  # class 0, recorded before
            [0.99, 0.005, 0.005],  # class 0, recorded before
            [0.025, 0.95, 0.025],  # class 1: confident for the first time
            [0.25, 0.25, 0.5],  # class 2, not confident: passes threshold 0, not recorded
        ]
    )
    module = _flexmatch(probs, [0, 0, -1, -1], threshold=0.9)
    used = {}
    original = module.thresholds

    def spy(pseudo):
        used["memory"] = module.selected.clone()
        used["per_item"] = original(pseudo)
        return used["per_item"]

    module.thresholds = spy
    module.training_loss()
    assert used["memory"].tolist() == [0, 0, -1, -1]  # this batch not counted yet
    before = flexmatch_thresholds(torch.tensor([0, 0, -1, -1]), 3, 0.9, warmup=False)
    assert before.tolist() == pytest.approx([0.9, 0.0, 0.0])
    assert sorted(used["per_item"].tolist()) == pytest.approx([0.0, 0.0, 0.9, 0.9])
    # recorded after the mask: confidence >= 0.9 over the whole batch, class 2 (0.5) not
    assert module.selected.tolist() == [0, 0, 1, -1]
    after = flexmatch_thresholds(module.selected, 3, 0.9, warmup=False)
    assert after[1].item() == pytest.approx(0.9 * 0.5 / 1.5)  # what the next step uses


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_thresholds_match_the_reference_update_rule(warmup):
    """USB's FlexMatchThresholdingHook.update, re-derived with a Counter, on random
    memories (short of the corner both document: every item recorded as one class)."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        selected = rng.integers(-1, 4, size=int(rng.integers(2, 30)))
        counter = Counter(selected.tolist())
        expected = np.zeros(4)
        if max(counter.values()) < len(selected):  # the reference's "not all -1" guard
            without_unused = {c: v for c, v in counter.items() if c != -1}
            top = max(counter.values()) if warmup else max(without_unused.values())
            expected = np.array([counter[c] / top for c in range(4)])
        got = flexmatch_thresholds(torch.tensor(selected), 4, 0.95, warmup=warmup)
        assert got.numpy() == pytest.approx(0.95 * expected / (2 - expected), abs=1e-6)


def test_flexmatch_gathered_updates_equal_one_process_seeing_the_whole_batch():
    """Under DDP each process has its share (rank::2) of the batch; after the all-gather
    (here a fake one stacking both shares, as Lightning's returns (world, ...)) every
    process holds the memory one process would after the whole batch."""
    positions = torch.tensor([5, 2, 7, 0, 3])  # an odd batch: shares of 3 and 2
    confidence = torch.tensor([0.97, 0.2, 0.99, 0.96, 0.5])
    pseudo = torch.tensor([1, 0, 2, 1, 0])
    whole = torch.full((8,), -1)
    confident = confidence >= 0.95
    whole[positions[confident]] = pseudo[confident]

    shares = [slice(0, None, 2), slice(1, None, 2)]
    rows = [
        confident_updates(positions[s], confidence[s], pseudo[s], 0.95, size=len(positions))
        for s in shares
    ]
    assert rows[1].shape == rows[0].shape  # padded: all_gather needs one shape
    gathered = torch.stack(rows)  # what all_gather hands every process
    for rank in range(2):
        memory = torch.full((8,), -1)
        memory[4] = 0  # recorded in an earlier step: kept unless overwritten
        expected = whole.clone()
        expected[4] = 0
        apply_updates(memory, gathered.reshape(-1, 2))
        assert memory.tolist() == expected.tolist(), rank


def test_flexmatch_observe_under_ddp_gathers_through_lightning():
    probs = torch.tensor([[0.97, 0.03], [0.4, 0.6], [0.02, 0.98]])
    module = _flexmatch(probs, [-1, -1, -1], threshold=0.95)
    module._trainer = SimpleNamespace(world_size=2)
    other = torch.tensor([[1, 1], [-1, -1], [-1, -1]])  # the other process: item 1 -> class 1
    calls = []

    def all_gather(rows):
        calls.append(rows.shape)
        return torch.stack([rows, other])

    module.all_gather = all_gather
    module.observe(torch.tensor([0, 2]), torch.tensor([0.97, 0.98]), torch.tensor([0, 1]))
    assert calls == [(3, 2)]  # padded to the unlabeled stream's batch size
    assert module.selected.tolist() == [0, 1, 1]


# The methods whose per-step statistics the DDP processes all-gather, with the settings
# that make those statistics move within 20 steps.
DDP_STATEFUL = {
    "flexmatch": ["strategy.warmup_steps=0", "strategy.threshold=0.5"],
    "freematch": [],
    "softmatch": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", sorted(DDP_STATEFUL))
def test_ssl_statistics_are_identical_on_both_ddp_processes(strategy, tmp_path):
    """A real 2-process CPU DDP fit (gloo): both processes end with the same buffers
    outside the network (FlexMatch's pseudo-label memory, FreeMatch's and SoftMatch's EMA
    statistics), and they moved. About 35 s each on 2 busy cores (each process imports
    everything), hence slow."""
    script = tmp_path / "ddp_flexmatch.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            import pytorch_lightning as pl
            import torch

            from labelbench.config import run_key
            from labelbench.labels import reveal
            from labelbench.run import build, compose

            out = Path(sys.argv[1])
            cfg, _ = compose([
                "trainer=ddp", "dataset=synthetic", "dataset.n_samples=400", "budget.total=40",
                "strategy.max_steps=20", "strategy.eval_every=20", "strategy.mu=3",
                "logger=none", f"paths.results_dir={out}", *sys.argv[2:],
            ])
            parts = build(cfg, run_key(cfg))
            task = parts.source.load(0)
            pool, _ = reveal(task, parts.regime, parts.budget, seed=0, split_seed=0)

            class Dump(pl.Callback):
                def on_fit_end(self, trainer, module):
                    state = {k: b.cpu() for k, b in module.named_buffers() if not k.startswith("net.")}
                    torch.save(state, out / f"state{trainer.global_rank}.pt")

            def trainer(**kwargs):
                kwargs["callbacks"] = [*kwargs.get("callbacks", []), Dump()]
                return parts.trainer(**kwargs)

            parts.strategy.fit(pool, task.view(), parts.model, trainer, seed=0)
            """
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path),
            f"strategy={strategy}",
            *DDP_STATEFUL[strategy],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = (torch.load(tmp_path / f"state{r}.pt") for r in range(2))
    assert first and first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    moved = {  # the state changed from where it starts
        "flexmatch": lambda s: (s["selected"] >= 0).any(),
        "freematch": lambda s: s["time_p"] != 1.0,  # USB's start value
        "softmatch": lambda s: s["updates"] > 0,
    }
    assert moved[strategy](first)


# --- TypiClust cold start ----------------------------------------------------------------


def _blob(centre, ring: int, core: int = 3) -> np.ndarray:
    """`core` copies of a 2-D centre (the densest spot) and `ring` points on a unit circle."""
    angles = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    circle = np.asarray(centre) + np.stack([np.cos(angles), np.sin(angles)], 1)
    return np.concatenate([np.tile(centre, (core, 1)), circle]).astype(float)


def _pick(query, n, x, labeled=None, seed=0):
    scores = Scores(embedding=x, labeled_embedding=labeled)
    return query.select(n, np.arange(len(x)), scores, np.random.default_rng(seed))


def test_typiclust_clusters_into_labeled_plus_budget(monkeypatch):
    seen = []
    original = query_module._kmeans

    def spy(points, n_clusters, seed):
        seen.append((len(points), n_clusters))
        return original(points, n_clusters, seed)

    monkeypatch.setattr(query_module, "_kmeans", spy)
    x = np.random.default_rng(0).normal(size=(60, 3))
    _pick(ColdStart(), 4, x, labeled=x[:7] + 0.01)
    _pick(ColdStart(max_clusters=5), 4, x, labeled=x[:7] + 0.01)
    assert seen == [(67, 11), (67, 5)]  # labeled and candidates together; capped


def test_typiclust_skips_clusters_below_the_minimum_size():
    small, large = _blob([0.0, 0.0], ring=2), _blob([30.0, 30.0], ring=12)  # 5 and 15 items
    x = np.concatenate([small, large])
    picks = _pick(ColdStart(), 2, x)
    assert (x[picks] >= 29).all()  # both from the large cluster: the small one (5 < 6) skipped
    assert np.allclose(x[picks[0]], [30.0, 30.0])  # its most typical item first
    picks = _pick(ColdStart(min_cluster_size=5), 2, x)
    assert sorted(x[picks, 0]) == [0.0, 30.0]  # allowed: one from each


def test_typiclust_skips_clusters_that_hold_a_labeled_item():
    """The reference sorts clusters by labeled items, then size: a larger cluster that
    already has a label comes after a smaller one without."""
    a, b = _blob([0.0, 0.0], ring=12), _blob([30.0, 0.0], ring=8)
    x = np.concatenate([a, b])
    picks = _pick(ColdStart(), 1, x, labeled=np.array([[0.5, 0.0]]))
    assert np.allclose(x[picks[0]], [30.0, 0.0])  # 2 clusters: the unlabeled one, smaller
    picks = _pick(ColdStart(), 2, x)
    assert np.allclose(x[picks], [[0.0, 0.0], [30.0, 0.0]])  # no label: largest first


def test_typicality_by_hand():
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    # K = min(20, 4 // 2) = 2 nearest others: mean distances 1.5, 1, 1.5, 8.5
    expected = 1 / (np.array([1.5, 1.0, 1.5, 8.5]) + 1e-5)
    assert ColdStart().typicality(x) == pytest.approx(expected)
    assert ColdStart(k=1).typicality(x) == pytest.approx(1 / (np.array([1, 1, 1, 8]) + 1e-5))
    assert ColdStart().typicality(x[:1]).tolist() == [1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_cluster_size": 0}, "min_cluster_size=0 must be a positive integer"),
        ({"max_clusters": 0}, "max_clusters=0 must be a positive integer"),
    ],
)
def test_typiclust_refuses_bad_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ColdStart(**kwargs)


# --- label propagation with graph rebuilding ---------------------------------------------

REBUILD = [*SYNTHETIC, "strategy=label_propagation", "strategy.max_steps=60",
           "strategy.eval_every=20", "strategy.rebuild_every=20"]  # fmt: skip


def test_rebuilding_changes_the_propagated_labels(compose_fast, monkeypatch):
    changes = []
    original = RebuildingModule.rebuild

    def spy(self):
        before = (self.propagated_y.clone(), self.propagated_w.clone())
        original(self)
        after = (self.propagated_y.clone(), self.propagated_w.clone())
        changes.append((self.steps_done, before, after))

    monkeypatch.setattr(RebuildingModule, "rebuild", spy)
    record = run(*compose_fast(*REBUILD, "strategy.patience=0", fast=False))
    assert record.status == "ok", record.error
    assert [step for step, _, _ in changes] == [20, 40]
    assert record.metrics["fit/graph_rebuilds"] == 2
    (_, (y0, w0), (y1, w1)) = changes[0]
    revealed = 40
    assert torch.equal(y1[:revealed], y0[:revealed]) and (w1[:revealed] == 1).all()
    assert not torch.equal(y1[revealed:], y0[revealed:])  # new graph, new labels
    assert not torch.equal(w1[revealed:], w0[revealed:])
    assert torch.allclose(y1.sum(1), torch.ones(len(y1))) and (w1 >= 0).all() and (w1 <= 1).all()


def test_rebuilding_fit_resumes_exactly(compose_fast, tmp_path, monkeypatch):
    """Rebuilds at steps 15, 30 and 45, a crash at 40: the relaunch trains on the labels of
    the step-30 graph (from the checkpoint) and rebuilds at 45 from the restored weights,
    ending bit for bit like the uninterrupted fit."""
    resumable = [*REBUILD, "strategy.rebuild_every=15", "strategy.patience=0",
                 "checkpoint.every_steps=20"]  # fmt: skip
    whole = run(*compose_fast(*resumable, fast=False))
    assert whole.status == "ok", whole.error
    cfg, choices = compose_fast(*resumable, fast=False)
    assert_resumes_exactly(
        cfg, choices, whole, monkeypatch, tmp_path, lambda module: module.steps_done >= 40
    )


def test_rebuild_every_refusals(compose_fast):
    cfg, _ = compose_fast(*SYNTHETIC, "strategy=label_propagation", "strategy.rebuild_every=0",
                          fast=False)  # fmt: skip
    with pytest.raises(ConfigError, match="rebuild_every=0 must be a positive integer"):
        build(cfg, run_key(cfg))
    strategy = LabelPropagation(partial(torch.optim.Adam), rebuild_every=5)
    with pytest.raises(ConfigError, match=r"rebuild_every=5 .* exposes no embed"):
        strategy.check_model(nn.Sequential)
    LabelPropagation(partial(torch.optim.Adam)).check_model(nn.Sequential)  # no rebuild: fine
