"""Active-learning query strategies: which unlabeled pool items to label next
(conf/strategy/query/). Plain numpy (scikit-learn for TypiClust's clustering), no torch:
the active-learning loop computes the model's outputs on the candidates and hands them
over as arrays in a `Scores`.

Every strategy answers `select(n, candidates, scores, rng)` with positions into
`candidates`, the most useful first, all distinct. Every random draw, tie-breaks included,
comes from the caller's `rng`, so the same scores and generator state give the same picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import entr

from labelbench.config import ConfigError, check_int

NEEDS = ("proba", "embedding", "mc_proba")
# Where the loop takes scores.embedding from: the scorer's network or the dataset's inputs.
FEATURES = ("network", "inputs")
# Rows of proba may sum to 1 only up to float32 softmax rounding.
PROBA_ATOL = 1e-3
# Distance blocks are at most this many floats (64 MiB in float64), whatever the pool size.
BLOCK = 1 << 23


@dataclass(frozen=True)
class Scores:
    """What the model says about the candidates, one row per candidate; the loop fills the
    arrays the strategy `needs` and leaves the others None.

    proba (candidates, classes): predicted class probabilities, rows summing to 1.
    embedding (candidates, d): features of the candidates, e.g. the network's penultimate
    layer (or the raw inputs where there is no model yet).
    labeled_embedding (revealed, d): the same features of the items already labeled, filled
    along with `embedding`; None or no rows when nothing is labeled yet.
    mc_proba (candidates, samples, classes): class probabilities of `samples` stochastic
    forward passes (MC dropout), each pass one draw of the network for every candidate
    (consistent MC dropout; see NetPredictor.mc_proba)."""

    proba: np.ndarray | None = None
    embedding: np.ndarray | None = None
    labeled_embedding: np.ndarray | None = None
    mc_proba: np.ndarray | None = None


class Query:
    """A query strategy: picks the next items to label from the unlabeled candidates."""

    needs: frozenset[str] = frozenset()  # the Scores arrays the loop must fill: NEEDS
    features: str = "network"  # scores.embedding from the scorer's `embed`, or the `inputs`
    samples: int = 0  # MC dropout passes the loop draws into scores.mc_proba, where needed

    def select(
        self, n: int, candidates: np.ndarray, scores: Scores, rng: np.random.Generator
    ) -> np.ndarray:
        """(n,) int64 positions into `candidates` (dataset indices of unlabeled pool items)
        of the n items to label next, most useful first, all distinct. Raises ValueError
        when n is not in 1..len(candidates) or an array in `needs` is missing or
        malformed."""
        candidates = np.asarray(candidates)
        if candidates.ndim != 1:
            raise ValueError(f"candidates must be 1-D (pool indices), got shape {candidates.shape}")
        m = len(candidates)
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= m:
            raise ValueError(
                f"n={n} items to query must be an integer in 1..{m} (the number of candidates)"
            )
        checked = _check_scores(self, scores, m)
        picks = np.asarray(self._select(int(n), m, checked, rng), dtype=np.int64)
        assert picks.shape == (n,) and len(np.unique(picks)) == n, picks
        return picks

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _check_scores(query: Query, scores: Scores, m: int) -> Scores:
    """`scores` with the needed arrays as finite float arrays of m rows (2-D; mc_proba 3-D),
    or a ValueError."""
    name = type(query).__name__
    if not isinstance(scores, Scores):
        raise ValueError(f"{name} needs a Scores, got {type(scores).__name__}")
    arrays: dict[str, np.ndarray | None] = {}
    for field in NEEDS:
        value = getattr(scores, field)
        if field not in query.needs:
            arrays[field] = None
            continue
        if value is None:
            raise ValueError(f"{name} needs scores.{field} (one row per candidate), got None")
        value = np.asarray(value, dtype=np.float64)
        axes = "samples, classes" if field == "mc_proba" else "columns"
        if value.ndim != axes.count(",") + 2 or value.shape[0] != m or min(value.shape[1:]) < 1:
            raise ValueError(
                f"scores.{field} must be ({m} candidates, {axes}), got shape {value.shape}"
            )
        if not np.isfinite(value).all():
            raise ValueError(f"scores.{field} has non-finite values")
        arrays[field] = value
    for field in ("proba", "mc_proba"):
        proba = arrays[field]
        if proba is not None and (
            proba.shape[-1] < 2
            or proba.min() < 0
            or not np.allclose(proba.sum(axis=-1), 1.0, rtol=0, atol=PROBA_ATOL)
        ):
            raise ValueError(
                f"scores.{field} must be class probabilities: at least 2 columns (classes),"
                " non-negative, summing to 1 over the classes (apply softmax to logits)"
            )
    labeled = None
    if "embedding" in query.needs and scores.labeled_embedding is not None:
        labeled = np.asarray(scores.labeled_embedding, dtype=np.float64)
        if labeled.size == 0:
            labeled = None
        elif labeled.ndim != 2 or labeled.shape[1] != arrays["embedding"].shape[1]:
            raise ValueError(
                f"scores.labeled_embedding must be (revealed, {arrays['embedding'].shape[1]}) "
                f"like scores.embedding, got shape {labeled.shape}"
            )
        elif not np.isfinite(labeled).all():
            raise ValueError("scores.labeled_embedding has non-finite values")
    return Scores(
        proba=arrays["proba"],
        embedding=arrays["embedding"],
        labeled_embedding=labeled,
        mc_proba=arrays["mc_proba"],
    )


def _top(score: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the n highest scores, highest first; equal scores in a seeded random order."""
    order = rng.permutation(len(score))
    return order[np.argsort(-score[order], kind="stable")[:n]]


def _sq_dist_to_nearest(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(len(x),) squared Euclidean distance from each row of x to its nearest row of ref."""
    out = np.full(len(x), np.inf)
    x_sq = np.einsum("ij,ij->i", x, x)
    step = max(1, BLOCK // max(1, len(x)))
    for start in range(0, len(ref), step):
        block = ref[start : start + step]
        d = x_sq[:, None] - 2 * x @ block.T + np.einsum("ij,ij->i", block, block)[None, :]
        np.minimum(out, d.min(axis=1), out=out)
    return np.maximum(out, 0.0)


class Random(Query):
    """A seeded uniform pick: the baseline every strategy should beat."""

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(m, size=n, replace=False)


class Uncertainty(Query):
    """The candidates the model is least sure of (Settles 2009, "Active Learning Literature
    Survey", section 3.1); equal uncertainties in a seeded random order."""

    needs = frozenset({"proba"})

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        """(candidates,) how unsure the model is of each row of `proba`; higher is queried
        first."""
        raise NotImplementedError

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        return _top(self.uncertainty(scores.proba), n, rng)


class Entropy(Uncertainty):
    """Highest predictive entropy first (Shannon; Settles 2009)."""

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        return entr(proba).sum(axis=1)


class Margin(Uncertainty):
    """Smallest gap between the two most probable classes first (Scheffer et al. 2001)."""

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        top2 = np.partition(proba, -2, axis=1)[:, -2:]
        return top2[:, 0] - top2[:, 1]  # minus the margin


class LeastConfidence(Uncertainty):
    """Smallest probability of the predicted class first (Lewis & Gale 1994)."""

    def uncertainty(self, proba: np.ndarray) -> np.ndarray:
        return 1.0 - proba.max(axis=1)


class Coreset(Query):
    """k-center greedy (Sener & Savarese 2018, "Active Learning for Convolutional Neural
    Networks: A Core-Set Approach"): each pick is the candidate farthest (Euclidean, in
    embedding space) from its nearest labeled or already picked point. With nothing labeled
    the first pick is a seeded random candidate; equal distances go in a seeded random
    order."""

    needs = frozenset({"embedding"})

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        order = rng.permutation(m)  # argmax takes the first maximum: a seeded tie-break
        x = scores.embedding[order]
        if scores.labeled_embedding is None:
            nearest = np.full(m, np.inf)  # argmax: position 0, a random candidate
        else:
            nearest = _sq_dist_to_nearest(x, scores.labeled_embedding)
        x_sq = np.einsum("ij,ij->i", x, x)
        picked = np.empty(n, dtype=np.int64)
        for t in range(n):
            i = int(np.argmax(nearest))
            picked[t] = i
            d = np.maximum(x_sq - 2 * x @ x[i] + x_sq[i], 0.0)
            np.minimum(nearest, d, out=nearest)
            nearest[picked[: t + 1]] = -1.0  # never again, even among duplicates
        return order[picked]


def gradient_embedding(proba: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """(candidates, classes * d) BADGE's gradient embeddings: the gradient of the
    cross-entropy at the predicted class with respect to the last layer's weights,
    (p - onehot(argmax p)) ⊗ h flattened. Badge never builds this array (it works with the
    factors); it is here to state the quantity and to check it."""
    proba = np.asarray(proba, dtype=np.float64)
    a = proba - np.eye(proba.shape[1])[proba.argmax(axis=1)]
    return (a[:, :, None] * np.asarray(embedding, dtype=np.float64)[:, None, :]).reshape(
        len(proba), -1
    )


class Badge(Query):
    """BADGE (Ash et al. 2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient
    Lower Bounds"): k-means++ seeding on the gradient embeddings (see
    `gradient_embedding`), so picks are both uncertain (large gradients) and diverse. The
    first pick has the largest gradient norm; each next one is drawn with probability
    proportional to its squared distance to the nearest pick (D² sampling, seeded)."""

    needs = frozenset({"proba", "embedding"})

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        proba, h = scores.proba, scores.embedding
        a = proba - np.eye(proba.shape[1])[proba.argmax(axis=1)]
        # <a_i ⊗ h_i, a_j ⊗ h_j> = (a_i . a_j)(h_i . h_j): distances in the K*d space from
        # the factors, without the (candidates, K*d) array.
        norm_sq = np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", h, h)
        picked = [int(_top(norm_sq, 1, rng)[0])]
        nearest = np.full(m, np.inf)
        for _ in range(n - 1):
            c = picked[-1]
            d = np.maximum(norm_sq + norm_sq[c] - 2 * (a @ a[c]) * (h @ h[c]), 0.0)
            np.minimum(nearest, d, out=nearest)
            nearest[picked] = 0.0
            total = nearest.sum()
            if total > 0:
                picked.append(int(rng.choice(m, p=nearest / total)))
            else:  # the rest coincide with picks (e.g. all gradients zero): uniform
                rest = np.setdiff1d(np.arange(m), picked)
                picked.append(int(rng.choice(rest)))
        return np.asarray(picked)


class TypiClust(Query):
    """TypiClust (Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget: Opposite
    Strategies Suit High and Low Budgets"), following its reference code
    (avihu111/TypiClust, deep-al/pycls/al/typiclust.py), every round:

    - k-means (seeded) splits the labeled items and the candidates together into
      (labeled + n) clusters, at most `max_clusters` (the reference's MAX_NUM_CLUSTERS, 500);
      scikit-learn's KMeans up to 50 clusters, MiniBatchKMeans (batches of 5000) above, as
      there;
    - clusters with fewer than `min_cluster_size` items (labeled ones included) are skipped:
      the reference keeps a cluster when its size is > MIN_CLUSTER_SIZE = 5, so 6;
    - clusters are visited with the fewest labeled items first, then the largest first, in
      turns: a cluster that already holds a labeled item is only reached once every cluster
      without one has given a pick;
    - from each visited cluster the most typical unlabeled item not yet picked: typicality
      is 1 / the mean Euclidean distance to its K nearest neighbours among the cluster's
      unlabeled items, K = min(`k`, half of them) (the reference: K_NN = 20, halved for small
      clusters). Deviation: the reference code averages *squared* distances (faiss
      IndexFlatL2); the paper's definition, used here, averages distances.

    Where the reference would fail (every cluster below the minimum size, or emptied by
    earlier picks), the turns go on over the remaining clusters, small ones after the
    others, so n distinct items always come back.

    Features (`features`): `inputs`, as the reference, which clusters the same fixed
    self-supervised (SimCLR) features every round and never the classifier's: here the
    dataset's inputs, flattened, i.e. a frozen encoder's embeddings where the dataset has one
    (dataset/encoder=...), else raw features (pixels for digits), on which clusters are weaker
    than the paper's; no network is needed. `network`: the penultimate features (`embed`) of
    the model trained this round. The first pick (initial_pick: cold_start), before any model
    exists, always uses the inputs."""

    needs = frozenset({"embedding"})

    def __init__(
        self,
        k: int = 20,
        min_cluster_size: int = 6,
        max_clusters: int = 500,
        features: str = "inputs",
    ) -> None:
        self.k = check_int("k", k, least=1, unit="nearest neighbours for typicality")
        self.min_cluster_size = check_int(
            "min_cluster_size", min_cluster_size, least=1, unit="items in a cluster"
        )
        self.max_clusters = check_int("max_clusters", max_clusters, least=1)
        if features not in FEATURES:
            raise ConfigError(f"features={features!r} is not one of {', '.join(FEATURES)}")
        self.features = features

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        x = scores.embedding
        labeled = scores.labeled_embedding
        n_labeled = 0 if labeled is None else len(labeled)
        points = x if labeled is None else np.concatenate([labeled, x])
        n_clusters = min(n_labeled + n, self.max_clusters)
        assignment = _kmeans(points, n_clusters, int(rng.integers(2**31 - 1)))
        sizes = np.bincount(assignment, minlength=n_clusters)
        holding = np.bincount(assignment[:n_labeled], minlength=n_clusters)
        cluster = assignment[n_labeled:]  # of each candidate
        # Fewest labeled items first, then largest first (then the lower cluster id).
        order = np.lexsort((np.arange(n_clusters), -sizes, holding))
        order = order[sizes[order] > 0]
        free = np.ones(m, dtype=bool)  # candidates not picked yet
        picks: list[int] = []
        for group in (
            order[sizes[order] >= self.min_cluster_size],
            order[sizes[order] < self.min_cluster_size],
        ):
            turn = [c for c in group if (cluster == c).any()]
            while turn and len(picks) < n:
                for c in turn[: n - len(picks)]:
                    members = np.flatnonzero((cluster == c) & free)
                    best = int(members[np.argmax(self.typicality(x[members]))])
                    picks.append(best)
                    free[best] = False
                turn = [c for c in turn if ((cluster == c) & free).any()]
        return np.asarray(picks)

    def typicality(self, x: np.ndarray) -> np.ndarray:
        """(len(x),) 1 / (mean Euclidean distance to the K nearest other rows + 1e-5),
        K = min(k, len(x) // 2) (the reference's guard for small clusters); all ones for a
        single row."""
        from sklearn.neighbors import NearestNeighbors

        k = min(self.k, len(x) // 2)
        if k == 0:
            return np.ones(len(x))
        dist, _ = NearestNeighbors(n_neighbors=k).fit(x).kneighbors()  # each row's others
        return 1.0 / (dist.mean(axis=1) + 1e-5)


class ColdStart(TypiClust):
    """TypiClust with `features: network` by default: the trained network's features in
    every round (the inputs only for the first pick, initial_pick: cold_start). `typiclust`
    is the same query on the inputs every round, as the reference."""

    def __init__(
        self,
        k: int = 20,
        min_cluster_size: int = 6,
        max_clusters: int = 500,
        features: str = "network",
    ) -> None:
        super().__init__(k, min_cluster_size, max_clusters, features)


def bald(mc_proba: np.ndarray) -> np.ndarray:
    """(candidates,) BALD (Houlsby et al. 2011, "Bayesian Active Learning for Classification
    and Preference Learning"): the mutual information between a candidate's label and the
    weights, H[mean_t p_t] - mean_t H[p_t] over the T rows p_t of mc_proba (candidates, T,
    classes), in nats: high where the passes disagree, low where they agree, however
    unsure each one is."""
    return entr(mc_proba.mean(axis=1)).sum(axis=1) - entr(mc_proba).sum(axis=2).mean(axis=1)


class Bald(Query):
    """BALD with MC dropout (Gal, Islam & Ghahramani 2017, "Deep Bayesian Active Learning
    with Image Data"): the `samples` stochastic forward passes of the loop (consistent MC
    dropout, NetPredictor.mc_proba) estimate `bald` for every candidate; the highest n,
    equal scores in a seeded random order. The reference code scores a random subset of
    2000 pool items per round for speed; every candidate is scored here."""

    needs = frozenset({"mc_proba"})

    def __init__(self, samples: int = 100) -> None:
        self.samples = check_int("samples", samples, least=2, unit="MC dropout forward passes")

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        return _top(bald(scores.mc_proba), n, rng)


class BatchBald(Query):
    """BatchBALD (Kirsch, van Amersfoort & Gal 2019, "BatchBALD: Efficient and Diverse Batch
    Acquisition for Deep Bayesian Active Learning"), as its reference code
    (BlackHC/BatchBALD src/multi_bald.py; BlackHC/batchbald_redux batchbald.py): picks
    greedily the candidate that most raises the mutual information between the joint labels
    of the batch and the weights,
    I(y_1..y_b; w) = H(y_1..y_b) - sum_i E_w H(y_i | w),
    estimated on the `samples` MC-dropout passes (consistent: pass t is one draw of the
    weights for every candidate). The first pick is BALD's. The joint entropy is exact
    (every configuration of the picked labels) while classes^picked <= `joint_samples`,
    else estimated from joint_samples // samples configurations drawn per pass (importance
    sampling over the picked labels, the reference's estimator), redrawn at every pick from
    the caller's `rng`. Equal scores go in a seeded random order."""

    needs = frozenset({"mc_proba"})

    def __init__(self, samples: int = 100, joint_samples: int = 40000) -> None:
        self.samples = check_int("samples", samples, least=2, unit="MC dropout forward passes")
        self.joint_samples = check_int(
            "joint_samples", joint_samples, least=1, unit="label configurations"
        )
        if joint_samples < samples:
            raise ConfigError(
                f"joint_samples={joint_samples} must be at least samples={samples}"
                " (one drawn configuration per MC dropout pass)"
            )

    def _select(self, n: int, m: int, scores: Scores, rng: np.random.Generator) -> np.ndarray:
        order = rng.permutation(m)  # argmax takes the first maximum: a seeded tie-break
        p = scores.mc_proba[order]  # (m, K, C)
        _, k, c = p.shape
        per_pass = max(1, self.joint_samples // k)
        conditional = entr(p).sum(axis=2).mean(axis=1)  # E_w H(y_i | w), per candidate
        score = bald(p)  # the first pick: the joint of one label is its marginal
        joint = np.ones((1, k))  # P(configuration of the picked labels | w_t), exact
        picked: list[int] = []
        for t in range(n):
            if t > 0:
                if joint is not None and c**t <= per_pass * k:
                    joint = (joint[:, None, :] * p[picked[-1]].T[None, :, :]).reshape(-1, k)
                    entropy = _joint_entropy(joint, None, p)
                else:
                    joint = None  # the configurations outgrew the exact sum: sampled from now on
                    drawn = _draw_configurations(p[picked], per_pass, rng)
                    entropy = _joint_entropy(drawn, drawn.mean(axis=1), p)
                score = entropy - conditional - conditional[picked].sum()
            score[picked] = -np.inf
            picked.append(int(np.argmax(score)))
        return order[np.asarray(picked)]


def _draw_configurations(p: np.ndarray, per_pass: int, rng: np.random.Generator) -> np.ndarray:
    """(K * per_pass, K) Q[s, t] = P(y_picked = configuration s | w_t): per_pass label
    configurations of the picked candidates drawn from each pass t' (labels independent
    given the weights), each one's probability under every pass. p: (picked, K, C)."""
    a, k, c = p.shape
    cdf = np.cumsum(p, axis=2)
    u = rng.random((a, k, per_pass))
    labels = np.minimum((cdf[:, :, None, :] < u[..., None]).sum(axis=3), c - 1)  # (a, K', S)
    # q[t, t', s] = prod_j p[j, t, labels[j, t', s]]: configuration (t', s) under pass t.
    q = np.ones((k, k, per_pass))
    for j in range(a):
        q *= p[j][:, labels[j]]
    return q.reshape(k, k * per_pass).T


def _joint_entropy(
    configurations: np.ndarray, weights: np.ndarray | None, p: np.ndarray
) -> np.ndarray:
    """(candidates,) H(y_picked, y_i) for every candidate i, in nats. configurations:
    (M, K) P(configuration | w_t) of the picked labels. weights None: every configuration
    (the exact sum); else the M configurations were drawn from P(configuration) = their
    `weights` (mean over passes), and the sum is their importance-weighted mean."""
    m, k = configurations.shape
    n, _, c = p.shape
    out = np.empty(n)
    step = max(1, BLOCK // (m * c))
    for start in range(0, n, step):
        block = p[start : start + step]  # (b, K, C)
        b = len(block)
        # P(configuration, y_i = c) = mean_t P(configuration | w_t) p_t(c | x_i)
        joint = (configurations @ block.transpose(1, 0, 2).reshape(k, b * c)) / k
        nats = entr(joint.reshape(m, b, c))
        if weights is None:
            out[start : start + b] = nats.sum(axis=(0, 2))
        else:
            nats /= np.maximum(weights, np.finfo(float).tiny)[:, None, None]
            out[start : start + b] = nats.sum(axis=(0, 2)) / m
    return out


def _kmeans(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Cluster of each row: KMeans up to 50 clusters, MiniBatchKMeans (batches of 5000)
    above, as TypiClust's reference code; n_init as scikit-learn's defaults were there
    (10 and 3)."""
    import warnings

    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    if n_clusters <= 50:
        model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=n_clusters, batch_size=5000, n_init=3, random_state=seed)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters: some clusters stay empty, which the caller skips.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit_predict(x)
