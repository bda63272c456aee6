"""Label propagation on a kNN graph of the pool (Zhou et al. 2004; as a deep-SSL step,
Iscen et al. 2019, "Label Propagation for Deep Semi-supervised Learning"): labels flow from
the revealed items to their neighbours, and a network is then trained on the propagated
soft labels, each weighted by how certain it is.

By default the graph is built once, on the raw inputs. With `rebuild_every` = N, as Iscen
et al. do every epoch, the graph is rebuilt every N optimizer steps on the current
network's penultimate features (`embed`, in eval mode, L2-normalised as in their code,
ahmetius/LP-DeepSSL lp/db_semisuper.py `update_plabels`), and the labels and certainty
weights are propagated again; the training then reads those.

Where this differs from that reference (kept as before, so published tables do not move):
a Gaussian kernel exp(-d^2 / s^2) on Euclidean kNN distances (theirs: cosine similarity
cubed), k = 10 (theirs: 50), one-hot seeds (theirs: divided by the class's labeled count),
soft propagated labels (theirs: the argmax), certainty weights not divided by their maximum,
no class-balancing weights; and before the first rebuild the graph is on raw inputs (they
first train on the labeled items alone)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from labelbench.config import ConfigError, check_int, check_number
from labelbench.strategies.classical import check_graph_k
from labelbench.strategies.lightning import LightningStrategy, NetPredictor
from labelbench.strategies.semi import SoftTargetModule, one_hot, soft_targets

EMBED_BATCH = 4096  # rows per forward pass when a rebuild embeds the pool


def knn_graph(x: np.ndarray, k: int):
    """Symmetric affinity matrix (scipy CSR) of the k nearest neighbours of every row of x
    (Euclidean), weighted exp(-d^2 / s^2) with s^2 the mean squared neighbour distance."""
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    distances, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    distances, neighbours = distances[:, 1:], neighbours[:, 1:]  # drop each item itself
    scale = max(float(np.mean(distances**2)), 1e-12)
    weights = np.exp(-(distances**2) / scale)
    w = sparse.csr_matrix(
        (weights.ravel(), (np.repeat(np.arange(n), k), neighbours.ravel())), (n, n)
    )
    return w.maximum(w.T)


def propagate(w, seeds: np.ndarray, alpha: float, max_iter: int) -> np.ndarray:
    """Solve (I - alpha S) F = seeds with S = D^-1/2 W D^-1/2 (conjugate gradient, one
    class at a time): the fixed point of F <- alpha S F + (1 - alpha) seeds, up to scale.
    `seeds` has one row per node: one-hot for labeled nodes, zeros elsewhere."""
    from scipy import sparse
    from scipy.sparse.linalg import cg

    degree = np.asarray(w.sum(axis=1)).ravel()
    d = sparse.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    system = sparse.identity(w.shape[0]) - alpha * (d @ w @ d)
    columns = [cg(system, seeds[:, c], maxiter=max_iter)[0] for c in range(seeds.shape[1])]
    return np.stack(columns, axis=1)


def certainty(probs: np.ndarray) -> np.ndarray:
    """1 - entropy / log(K) per row: 1 for a one-hot row, 0 for a uniform one."""
    p = np.clip(probs, 1e-12, 1.0)
    return 1.0 - (-(p * np.log(p)).sum(axis=1)) / np.log(probs.shape[1])


def propagated_targets(
    x: np.ndarray, seeds: np.ndarray, k: int, alpha: float, max_iter: int, weighted: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(soft label rows, weights) for every row of x (nodes), the first len(seeds) of which
    are revealed with the one-hot rows `seeds`: they keep their labels and weight 1; the
    others get their propagated scores, normalised to sum to 1 (uniform where nothing
    reached them), weighted by `certainty` (or 1)."""
    n, num_classes = len(x), seeds.shape[1]
    start = np.zeros((n, num_classes))
    start[: len(seeds)] = seeds
    scores = np.clip(propagate(knn_graph(x, k), start, alpha, max_iter), 0, None)
    totals = scores.sum(axis=1, keepdims=True)
    probs = np.where(totals > 0, scores / np.maximum(totals, 1e-12), 1.0 / num_classes)
    probs[: len(seeds)] = seeds  # revealed labels stay as observed
    weights = certainty(probs) if weighted else np.ones(n)
    weights[: len(seeds)] = 1.0
    return probs, weights


class RebuildingModule(SoftTargetModule):
    """SoftTargetModule that, every `rebuild_every` optimizer steps, rebuilds the kNN graph
    on the network's penultimate features of all nodes (train_idx: the revealed items
    first, `revealed` of them) and propagates again. The targets and weights live in
    buffers (`propagated_y`, `propagated_w`), so checkpoints carry them and a resumed fit
    trains on exactly what an uninterrupted one would. The rebuild draws no random numbers
    (eval mode, no augmentation). Under DDP the first process's result is broadcast, so
    every process trains on the same targets."""

    def __init__(
        self,
        *args: Any,
        rebuild_every: int,
        revealed: int,
        graph: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rebuild_every, self.revealed, self.graph = rebuild_every, revealed, graph
        self.register_buffer("propagated_y", self.data["train_y"].clone())
        self.register_buffer("propagated_w", self.data["train_w"].clone())
        self._rebuilt_at = -1

    @property
    def rebuilds(self) -> int:
        """Rebuilds so far: one before each step that follows a multiple of rebuild_every."""
        return max(self.steps_done - 1, 0) // self.rebuild_every

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # Train on the buffers (restored from a checkpoint when resuming).
        self.data["train_y"], self.data["train_w"] = self.propagated_y, self.propagated_w

    def training_loss(self) -> Tensor:
        step = self.steps_done
        if step > 0 and step % self.rebuild_every == 0 and step != self._rebuilt_at:
            self.rebuild()
            self._rebuilt_at = step
        return super().training_loss()

    @torch.no_grad()
    def features(self) -> np.ndarray:
        """The network's L2-normalised penultimate features of every node, in eval mode."""
        was_training = self.net.training
        self.net.eval()
        try:
            batches = self.input_batches(self.data["train_idx"], EMBED_BATCH)
            parts = [self.net.embed(x) for x in batches]
        finally:
            self.net.train(was_training)
        h = torch.cat(parts).double().cpu().numpy()
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)

    def rebuild(self) -> None:
        """Propagate again on a graph of the current network's features."""
        seeds = self.propagated_y[: self.revealed].double().cpu().numpy()
        probs, weights = propagated_targets(self.features(), seeds, **self.graph)
        y = torch.as_tensor(probs, dtype=self.propagated_y.dtype)
        w = torch.as_tensor(weights, dtype=self.propagated_w.dtype)
        if self.trainer.world_size > 1:
            y, w = self.trainer.strategy.broadcast((y, w), src=0)
        self.propagated_y.copy_(y)
        self.propagated_w.copy_(w)


class LabelPropagation(LightningStrategy):
    """k: neighbours per pool item in the graph; alpha in (0, 1): how far labels spread
    (higher: further; Iscen et al.: 0.99); max_iter: conjugate-gradient iterations (theirs:
    20); weighted: weight each propagated label by its certainty (else 1). The network then
    trains on the revealed labels and the propagated ones with the shared loop.
    rebuild_every: null (one graph, on the raw inputs) or N: every N optimizer steps the
    graph is rebuilt on the network's penultimate features and the labels propagated again
    (Iscen et al. 2019 rebuild every epoch); needs a model with `embed`."""

    module_class = SoftTargetModule

    def __init__(
        self,
        *args: Any,
        k: int = 10,
        alpha: float = 0.99,
        max_iter: int = 20,
        weighted: bool = True,
        rebuild_every: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.k = check_int("k", k, least=1)
        self.alpha = check_number("alpha", alpha, "(0, 1)")
        self.max_iter = check_int("max_iter", max_iter, least=1)
        self.weighted = bool(weighted)
        self.rebuild_every = (
            None
            if rebuild_every is None
            else check_int("rebuild_every", rebuild_every, least=1, unit="optimizer steps")
        )

    def check(self, pool, task) -> None:
        super().check(pool, task)
        check_graph_k(self.k, pool)
        if getattr(task, "tokens", None) is not None:
            raise ConfigError(
                f"label_propagation builds its graph on the raw inputs, and dataset {task.name}"
                " holds token ids, which are not features; use dataset/encoder=minilm"
                " (embeddings)"
            )

    def check_model(self, model) -> None:
        from labelbench.models import embeds, network_class

        super().check_model(model)
        if self.rebuild_every is not None and not embeds(model):
            raise ConfigError(
                f"rebuild_every={self.rebuild_every} rebuilds the graph on the network's"
                f" features, but model {network_class(model).__name__} exposes no embed(x);"
                " use rebuild_every=null or a model with embed (mlp, cnn_small ...)"
            )

    def graph_settings(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "alpha": self.alpha,
            "max_iter": self.max_iter,
            "weighted": self.weighted,
        }

    def propagated(self, pool, task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pool indices, soft label rows, weights): revealed items first, with their
        observed labels and weight 1, then the unlabeled ones (unlabeled-only items too);
        on the raw inputs."""
        nodes = np.concatenate([pool.indices, pool.unlabeled_data])
        x = np.asarray(task.x[nodes], dtype=np.float64).reshape(len(nodes), -1)
        seeds = one_hot(pool.labels, task.num_classes).astype(np.float64)
        probs, weights = propagated_targets(x, seeds, **self.graph_settings())
        return nodes, probs, weights

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        self.check(pool, task)
        nodes, probs, weights = self.propagated(pool, task)
        data = self.tensors(pool, task)
        data.update({k: torch.tensor(v) for k, v in soft_targets(nodes, probs, weights).items()})
        built: list[RebuildingModule] = []

        def rebuilding(*args: Any, **kwargs: Any) -> RebuildingModule:
            module = RebuildingModule(
                *args,
                rebuild_every=self.rebuild_every,
                revealed=len(pool),
                graph=self.graph_settings(),
                **kwargs,
            )
            built.append(module)
            return module

        predictor = self.train(
            data,
            task,
            model,
            trainer,
            seed=seed,
            checkpoint=checkpoint,
            make_module=None if self.rebuild_every is None else rebuilding,
        )
        if built:  # the targets the training ended on
            weights = built[-1].propagated_w.detach().cpu().numpy()
            predictor.fit_info["graph_rebuilds"] = float(built[-1].rebuilds)
        unlabeled = slice(len(pool), None)
        predictor.fit_info.update(
            {
                "propagated": float(len(nodes) - len(pool)),
                "mean_certainty": float(weights[unlabeled].mean())
                if len(pool.unlabeled_data)
                else 1.0,
            }
        )
        return predictor
