"""Label propagation on a kNN graph of the pool (Zhou et al. 2004; as a deep-SSL step,
Iscen et al. 2019): labels flow from the revealed items to their neighbours, and a network
is then trained on the propagated soft labels, each weighted by how certain it is."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from labelbench.config import check_int, check_number
from labelbench.strategies.classical import check_graph_k
from labelbench.strategies.lightning import LightningStrategy, NetPredictor
from labelbench.strategies.semi import SoftTargetModule, one_hot, soft_targets


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


class LabelPropagation(LightningStrategy):
    """k: neighbours per pool item in the graph; alpha in (0, 1): how far labels spread
    (higher: further); max_iter: conjugate-gradient iterations; weighted: weight each
    propagated label by its certainty (else 1). The network then trains on the revealed
    labels and the propagated ones with the shared loop."""

    module_class = SoftTargetModule

    def __init__(
        self,
        *args: Any,
        k: int = 10,
        alpha: float = 0.99,
        max_iter: int = 20,
        weighted: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.k = check_int("k", k, least=1)
        self.alpha = check_number("alpha", alpha, "(0, 1)")
        self.max_iter = check_int("max_iter", max_iter, least=1)
        self.weighted = bool(weighted)

    def check(self, pool, task) -> None:
        super().check(pool, task)
        check_graph_k(self.k, pool)

    def propagated(self, pool, task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pool indices, soft label rows, weights): revealed items first, with their
        observed labels and weight 1, then the unlabeled ones."""
        nodes = np.concatenate([pool.indices, pool.unlabeled])
        x = task.x[nodes].reshape(len(nodes), -1).astype(np.float64)
        seeds = np.zeros((len(nodes), task.num_classes))
        seeds[: len(pool)] = one_hot(pool.labels, task.num_classes)
        scores = np.clip(propagate(knn_graph(x, self.k), seeds, self.alpha, self.max_iter), 0, None)
        totals = scores.sum(axis=1, keepdims=True)
        probs = np.where(totals > 0, scores / np.maximum(totals, 1e-12), 1.0 / task.num_classes)
        probs[: len(pool)] = seeds[: len(pool)]  # revealed labels stay as observed
        weights = certainty(probs) if self.weighted else np.ones(len(nodes))
        weights[: len(pool)] = 1.0
        return nodes, probs, weights

    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> NetPredictor:
        if len(pool) == 0:
            raise ValueError("no labeled items to train on")
        self.check(pool, task)
        nodes, probs, weights = self.propagated(pool, task)
        data = self.tensors(pool, task)
        data.update({k: torch.tensor(v) for k, v in soft_targets(nodes, probs, weights).items()})
        predictor = self.train(data, task, model, trainer, seed=seed, checkpoint=checkpoint)
        unlabeled = slice(len(pool), None)
        predictor.fit_info.update(
            {
                "propagated": float(len(nodes) - len(pool)),
                "mean_certainty": float(weights[unlabeled].mean()) if len(pool.unlabeled) else 1.0,
            }
        )
        return predictor
