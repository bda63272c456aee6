"""Active learning: the budget spent in rounds. Each round fits the inner strategy on the
labels bought so far, the run scores it on the test split (the per-round curve), the
query strategy scores the unlabeled pool and the next items are bought. The labels come
from the run's Labeler: a queried item reveals what the regime's annotators answered for
it (a noisy label under a noise regime), the same answer a fixed budget would reveal.

Selection via a proxy and point evaluation follow LabelBench (Zhang et al. 2024,
"LabelBench: A Comprehensive Framework for Benchmarking Adaptive Label-Efficient
Learning"; github.com/EfficientTraining/LabelBench): a cheap `proxy` (e.g. a linear head
on frozen embeddings) chooses the items every round and the large `inner` model is trained
on the labels bought, every round or only at some of them (`evaluate`). LabelBench's
point_evaluation.py does the latter as a second job replaying the proxy run's label order
(here: `order_from`, or `evaluate` within one run); it evaluates every `eval_batch_size`
labels, here every k rounds and the last (rounds, not label counts: a deviation).

The loop state (the items bought, in order, and the query generator) is saved after every
round; a run killed between rounds resumes from the last finished round and ends with the
same record as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from labelbench.config import ConfigError, check_int, placed_under
from labelbench.data.task import TaskView
from labelbench.labels.pool import LabelPool
from labelbench.labels.reveal import Labeler
from labelbench.results.atomic import atomic_write
from labelbench.strategies.base import Checkpointing, Predictor, Strategy
from labelbench.strategies.lightning import LightningStrategy, sub_checkpoint
from labelbench.strategies.query import ColdStart, Query, Scores, TypiClust

QUERY_STREAM = 0xAC7  # the query generator: seeded by (seed, this), apart from training
# MC dropout masks: seeded by (seed, this, round), apart from the query generator, so a
# resumed run draws the masks of the round it resumes in.
MC_STREAM = 0xBA1D
STATE_FILE = "rounds.json"
INITIAL_PICKS = ("reveal_order", "cold_start")

EVALUATE = ("every_round", "end")


class Report(Protocol):
    """report(labels bought, predictor, role): the run scores a round's model on the test
    split and keeps the curves itself (role "inner": the record's `curve`, "proxy": its
    `proxy_curve`); nothing of the test split comes back to the strategy."""

    def __call__(self, labels: int, predictor: Predictor, role: str = "inner") -> None: ...


class Active(Strategy):
    """Active learning on top of any strategy.

    inner: the strategy fitted every round (supervised, a semi-supervised or a noisy-label
    one ...). query: how the next items are picked (conf/strategy/query/). initial: items
    bought before the first round: the first items of the budget's seeded reveal order
    (`initial_pick: reveal_order`, the same items for every query strategy; a random draw
    with budget.balanced=false) or TypiClust's most typical inputs (`cold_start`, no model
    needed: on a frozen encoder's embeddings where the dataset has one, else raw features).
    query_size: items bought per round; the budget sets the final number, and `rounds`
    (fits, the first included) may stop the loop sooner. proxy: a cheaper
    strategy that scores the pool for the query in place of `inner` (selection via proxy);
    it is fitted every round, the last included, and the run scores it too (the record's
    `proxy_curve`). order_from: a run record (JSON) whose label order is replayed in place
    of querying: evaluate with a full model the order a proxy run chose. evaluate: when
    `inner` is fitted and scored: `every_round`, `end` (only on the final labels: point
    evaluation) or an integer k (rounds 0, k, 2k, ... and the last); anything but every
    round needs a proxy to choose the items. The run's final metrics are always the
    inner's, fitted on the final labels."""

    runs_rounds = True

    @classmethod
    def trains_network(cls, config):
        """Whether `inner` (evaluated every round) or `proxy` (choosing the items) does."""
        from hydra.utils import get_class

        return any(
            get_class(node["_target_"]).trains_network(node)
            for node in (config.get("inner"), config.get("proxy"))
            if node
        )

    def __init__(
        self,
        inner: Strategy,
        query: Query,
        initial: int = 10,
        query_size: int = 10,
        initial_pick: str = "reveal_order",
        proxy: Strategy | None = None,
        order_from: str | None = None,
        rounds: int | None = None,
        evaluate: str | int = "every_round",
    ) -> None:
        if getattr(inner, "runs_rounds", False):
            raise ConfigError("inner is itself active learning; choose a strategy that fits once")
        self.inner, self.query, self.proxy = inner, query, proxy
        self.initial = check_int("initial", initial, least=1, unit="items")
        self.query_size = check_int("query_size", query_size, least=1, unit="items per round")
        if initial_pick not in INITIAL_PICKS:
            raise ConfigError(
                f"initial_pick={initial_pick!r} is not one of {', '.join(INITIAL_PICKS)}"
            )
        self.initial_pick = initial_pick
        self.order_from = order_from
        self.rounds = None if rounds is None else check_int("rounds", rounds, least=1)
        self.evaluate = evaluate
        self._every = _every(evaluate)  # inner fitted in rounds r % every == 0; None: the last
        if self._every != 1 and proxy is None:
            raise ConfigError(
                f"evaluate={evaluate} needs a proxy to choose the items between the inner's fits"
                " (nothing else would choose them): add e.g. +strategy@strategy.proxy=logreg,"
                " or use evaluate=every_round"
            )
        self.accepts = inner.accepts
        self._shapes: tuple[tuple[int, ...], int] | None = (
            None  # (input shape, classes), from check
        )

    # -- checks before any training -------------------------------------------------------
    def check(self, pool: LabelPool, task: TaskView) -> None:
        """`pool` is what the whole budget buys: the initial purchase must fit in it."""
        super().check(pool, task)
        if self.initial > len(pool):
            raise ConfigError(
                f"initial={self.initial} is larger than the budget ({len(pool)} items);"
                f" allowed: 1..{len(pool)}"
            )
        self.inner.check(pool, task)
        if self.proxy is not None:
            self.proxy.check(pool, task)
        if self.order_from is not None:
            self._recorded_order(task)
        self._shapes = (tuple(task.input_shape), task.num_classes)  # for check_model

    def check_model(self, model: Any) -> None:
        """The inner's and the proxy's own checks (named inner.* / proxy.*), then whether
        the query can get what it needs from the strategy that scores the pool."""
        from labelbench.models import embeds, network_class
        from labelbench.strategies.lightning import NetPredictor

        for slot, strategy in (("inner", self.inner), ("proxy", self.proxy)):
            if strategy is not None:
                try:
                    strategy.check_model(model)
                except ConfigError as e:
                    raise placed_under(slot, e) from None
        name = type(self.query).__name__
        scorer = self.proxy if self.proxy is not None else self.inner
        network_features = "embedding" in self.query.needs and self.query.features == "network"
        # A frozen-embedding proxy (strategy=probe) gives its own embeddings, model or not.
        own = getattr(scorer, "gives_embeddings", False)
        if network_features and not own and (not embeds(model) or not _trains_network(scorer)):
            what = (
                f"model {network_class(model).__name__} exposes none"
                if not embeds(model)
                else f"{type(scorer).__name__} trains no network"
            )
            raise ConfigError(
                f"query {name} needs embeddings but {what}; use a query on"
                " probabilities (margin, entropy, least_confidence, random) or a network model"
            )
        if "mc_proba" in self.query.needs:
            if not _trains_network(scorer):
                raise ConfigError(
                    f"query {name} needs MC dropout passes but {type(scorer).__name__} trains no"
                    " network; use a network strategy, e.g. supervised, with a model with dropout"
                )
            if self._shapes is not None:  # check has run: build the network to look inside
                net = model(in_shape=self._shapes[0], num_classes=self._shapes[1])
                if not NetPredictor.dropout_layers(net):
                    raise ConfigError(
                        f"query {name} needs a model with dropout (MC dropout) but"
                        f" {type(net).__name__} has none; use e.g. model=mlp model.dropout=0.3"
                        " (model.dropout: mlp, cnn_small, cnn1d, wrn28_2, wrn28_8)"
                    )

    # -- the rounds ---------------------------------------------------------------------
    def fit(self, pool, task, model, trainer, *, seed, checkpoint=None) -> Predictor:
        raise TypeError("active learning buys labels in rounds: labelbench.run calls fit_rounds")

    def fit_rounds(
        self,
        labeler: Labeler,
        task: TaskView,
        model: Any,
        trainer: Any,
        *,
        seed: int,
        checkpoint: Checkpointing | None,
        report: Report,
    ) -> Predictor:
        """Buy, fit, report and query until the budget is spent; the last round's model."""
        rng = np.random.default_rng([seed, QUERY_STREAM])
        order = self._recorded_order(task) if self.order_from is not None else None
        state = _load_state(checkpoint)
        if state is not None:  # resume: buy the same items again, put the generator back
            labeler.buy(np.asarray(state["bought"], dtype=np.int64))
            rng.bit_generator.state = state["rng"]
            start = state["round"]
        else:
            self._buy_initial(labeler, task, rng, order)
            start = 0
        for r in itertools.count(start):
            pool = labeler.label_pool()
            last = self.rounds is not None and r + 1 >= self.rounds
            n = 0 if last else min(self.query_size, labeler.left, len(pool.unlabeled))
            if order is not None:  # replay: as far as the recorded order goes
                n = min(n, len(order) - len(pool))
            final = n <= 0
            predictor = None
            if final or (self._every is not None and r % self._every == 0):
                predictor = self.inner.fit(
                    pool,
                    task,
                    model,
                    trainer,
                    seed=seed,
                    checkpoint=sub_checkpoint(checkpoint, f"round{r}"),
                )
                report(len(pool), predictor)
            scorer = predictor
            if self.proxy is not None:  # every round, the last included: its own curve
                scorer = self.proxy.fit(
                    pool, task, model, trainer, seed=seed,
                    checkpoint=sub_checkpoint(checkpoint, f"proxy{r}"),
                )  # fmt: skip
                report(len(pool), scorer, role="proxy")
            if final:
                return predictor
            if order is not None:
                picks = order[len(pool) : len(pool) + n]
            else:
                assert scorer is not None  # no proxy: evaluate is every_round (__init__)
                scores = self._scores(scorer, pool, task)
                if "mc_proba" in self.query.needs:
                    mc_seed = int(np.random.default_rng([seed, MC_STREAM, r]).integers(2**63))
                    scores = dataclasses.replace(
                        scores, mc_proba=self._mc_proba(scorer, pool, task, mc_seed)
                    )
                picks = pool.unlabeled[self.query.select(n, pool.unlabeled, scores, rng)]
            labeler.buy(picks)
            _save_state(checkpoint, {"round": r + 1, "bought": labeler.bought.tolist(),
                                     "rng": rng.bit_generator.state})  # fmt: skip
        raise AssertionError("itertools.count does not end")

    def _buy_initial(
        self, labeler: Labeler, task: TaskView, rng: np.random.Generator, order: np.ndarray | None
    ) -> None:
        if order is not None:  # replay: the recorded order's first items
            labeler.buy(order[: self.initial])
        elif self.initial_pick == "cold_start":
            # No model yet: TypiClust on the dataset's inputs, which are a frozen encoder's
            # embeddings when the dataset has one, else raw features (see TypiClust). The
            # query's settings when the query is TypiClust too, else its defaults.
            candidates = task.pool
            cold = self.query if isinstance(self.query, TypiClust) else ColdStart()
            picks = cold.select(
                self.initial, candidates, Scores(embedding=_flat(task, candidates)), rng
            )
            labeler.buy(candidates[picks])
        else:
            labeler.buy_first(self.initial)

    def _scores(self, predictor: Predictor, pool: LabelPool, task: TaskView) -> Scores:
        """Only what the query needs: probabilities and/or embeddings of the candidates (the
        network's, or the inputs where the query's `features` say so). MC dropout passes
        come from `_mc_proba`."""
        needs = self.query.needs
        x = task.x

        def embed(idx: np.ndarray) -> np.ndarray | None:
            if "embedding" not in needs:
                return None
            if self.query.features == "inputs":
                return _flat(task, idx)
            return predictor.embed(x[idx])

        return Scores(
            proba=predictor.predict_proba(x[pool.unlabeled]) if "proba" in needs else None,
            embedding=embed(pool.unlabeled),
            labeled_embedding=embed(pool.indices),
        )

    def _mc_proba(
        self, predictor: Predictor, pool: LabelPool, task: TaskView, seed: int
    ) -> np.ndarray:
        """The query's MC dropout passes over the candidates (NetPredictor.mc_proba)."""
        mc_proba = getattr(predictor, "mc_proba", None)
        if mc_proba is None:
            raise TypeError(
                f"query {type(self.query).__name__} needs MC dropout passes but"
                f" {type(predictor).__name__} draws none"
            )
        return mc_proba(task.x[pool.unlabeled], self.query.samples, seed)

    def _recorded_order(self, task: TaskView) -> np.ndarray:
        """The label order of the record at `order_from` (its revealed indices, in the
        order they were bought), refused unless every item is in this task's pool."""
        path = Path(str(self.order_from))
        try:
            record = json.loads(path.read_text())
            order = np.asarray(record["labels"]["indices"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"order_from={self.order_from}: not a readable run record ({e})"
            ) from None
        if record.get("status") != "ok":
            raise ConfigError(f"order_from={self.order_from}: the record's status is not ok")
        if not np.isin(order, task.pool).all() or len(set(order.tolist())) != len(order):
            raise ConfigError(
                f"order_from={self.order_from}: its label order is not one of distinct items of"
                " this pool (another dataset, split_seed or regime?)"
            )
        return order


def _flat(task: TaskView, idx: np.ndarray) -> np.ndarray:
    """The inputs of items `idx`, one flat float64 row each (a frozen encoder's embeddings
    where the dataset has one, else raw features)."""
    return np.asarray(task.x[idx], dtype=np.float64).reshape(len(idx), -1)


def _every(evaluate: Any) -> int | None:
    """Rounds between the inner's fits (1: every round); None: only the last."""
    if evaluate == "every_round":
        return 1
    if evaluate == "end":
        return None
    if isinstance(evaluate, int) and not isinstance(evaluate, bool) and evaluate >= 1:
        return evaluate
    raise ConfigError(
        f"evaluate={evaluate} is not one of {', '.join(EVALUATE)} or a positive integer k"
        " (every k rounds and the last)"
    )


def _trains_network(strategy: Strategy) -> bool:
    return isinstance(strategy, LightningStrategy)


def _load_state(checkpoint: Checkpointing | None) -> dict | None:
    if checkpoint is None or not (checkpoint.dir / STATE_FILE).is_file():
        return None
    return json.loads((checkpoint.dir / STATE_FILE).read_text())


def _save_state(checkpoint: Checkpointing | None, state: dict) -> None:
    """Atomically, so a kill mid-write leaves the previous round's state."""
    if checkpoint is None:
        return
    checkpoint.dir.mkdir(parents=True, exist_ok=True)
    atomic_write(checkpoint.dir / STATE_FILE, json.dumps(state))
