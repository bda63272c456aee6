"""One run: config -> TaskData -> LabelPool -> strategy fit -> test metrics -> RunRecord.

`run(cfg)` is the library entry (tests call it directly); `main` is the thin Hydra app
behind `labelbench-run` and `python -m labelbench.run`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from labelbench.config import (
    ConfigError,
    check_run_fields,
    choices_from,
    placed_under,
    register_configs,
    run_key,
)
from labelbench.interrupt import RunInterrupted
from labelbench.provenance import git_info, host_info, utc_now, versions
from labelbench.results.record import RunRecord
from labelbench.results.store import RecordStore
from labelbench.strategies.base import Checkpointing

log = logging.getLogger("labelbench")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@contextmanager
def config_group(group: str) -> Iterator[None]:
    """Turn errors raised while building or checking `group` into a ConfigError that names
    the group: 'budget.total=5000 is larger than ...'."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ConfigError):  # named by the nested node: strategy.loss.q=...
            raise placed_under(_full_key(e) or group, cause) from None
        if isinstance(cause, TypeError):  # unexpected or missing constructor argument
            raise ConfigError(f"{group}: {cause}") from None
        raise ConfigError(f"{group}: {str(e).splitlines()[0]}") from None
    except ConfigError as e:
        raise placed_under(group, e) from None


def _full_key(error: Exception) -> str | None:
    """The config node Hydra was instantiating when `error` was raised ('strategy.loss')."""
    for line in str(error).splitlines():
        if line.startswith("full_key: "):
            return line.removeprefix("full_key: ").strip() or None
    return None


@dataclass
class Components:
    """The instantiated parts of a run."""

    source: Any
    regime: Any
    budget: Any
    strategy: Any
    model: Any  # partial: model(in_shape=..., num_classes=...)
    trainer: Any  # trainer(**overrides) -> Trainer, logger and progress bar bound
    logger: Any  # the run's Lightning logger, or False


def compose(overrides: list[str]) -> tuple[DictConfig, dict[str, str]]:
    """The run config and its group choices for command-line style overrides, composed as
    `labelbench-run` composes them (for scripts, notebooks and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if isinstance(v, str)}
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def quiet_lightning() -> None:
    """Lightning announces devices on every Trainer; a sweep of hundreds of runs does not need it."""
    import warnings

    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Deprecation chatter from Lightning's own internals, not actionable here.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    # Any machine with SLURM installed gets this on every Trainer, job arrays included.
    warnings.filterwarnings("ignore", message=".*`srun` command is available on your system")
    # A run with no validation split (strategy.selection=last) has nothing to validate on.
    warnings.filterwarnings("ignore", message=".*have no `val_dataloader`. Skipping val loop")


def build(cfg: DictConfig, key: str) -> Components:
    """Instantiate every component; raises ConfigError naming the first bad value."""
    from hydra.utils import instantiate

    from labelbench.loggers import RunTrainer, build_logger

    check_run_fields(cfg)
    parts = {}
    for group in ("dataset", "regime", "budget", "strategy", "model", "trainer"):
        with config_group(group):
            parts[group] = instantiate(cfg[group])
    with config_group("logger"):
        logger = build_logger(cfg, key)
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    quiet_lightning()
    with config_group("trainer"):
        try:
            parts["trainer"](logger=False)  # construct once: Lightning validates its settings
        except MisconfigurationException as e:
            settings = " ".join(
                f"{k}={cfg.trainer.get(k)}" for k in ("accelerator", "devices", "precision")
            )
            raise ConfigError(f"{settings} cannot run here: {e}") from None
    return Components(
        source=parts["dataset"],
        regime=parts["regime"],
        budget=parts["budget"],
        strategy=parts["strategy"],
        model=parts["model"],
        # enable_progress_bar: null (auto) draws a bar on interactive terminals only
        trainer=RunTrainer(parts["trainer"], logger, cfg.trainer.get("enable_progress_bar")),
        logger=logger,
    )


@dataclass
class Prepared:
    """A run up to its fit: components built, data loaded and shaped by the regime, the
    labels bought, the model and strategy checked against them."""

    parts: Components
    task: Any  # TaskData, as the regime shapes it
    labeler: Any  # labels.reveal.Labeler
    pool: Any  # LabelPool: what the whole budget buys (active learning: a preview)
    rounds: bool  # active learning: the strategy buys as it goes


def prepare(cfg: DictConfig, key: str) -> Prepared:
    """Everything a run does before its fit; raises ConfigError naming the first bad value
    (a budget that does not fit the data included)."""
    from labelbench.labels.reveal import Labeler, reveal, shape

    parts = build(cfg, key)
    with config_group("dataset"):
        task = parts.source.load(cfg.split_seed)
    task = placed(task, cfg)
    with config_group("regime"):
        parts.regime.check(task.num_classes)
        task = shape(task, parts.regime, cfg.seed, cfg.split_seed)
    rounds = getattr(parts.strategy, "runs_rounds", False)  # active learning buys as it goes
    with config_group("budget"):
        labeler = Labeler(task, parts.regime, parts.budget, cfg.seed, cfg.split_seed)
        # what the whole budget buys: trained on, or (active learning) checked against
        buy = labeler.preview if rounds else labeler.buy_first
        pool = buy(labeler.capacity)
    with config_group("model"):
        net = parts.model(in_shape=tuple(task.input_shape), num_classes=task.num_classes)
        check_task = getattr(net, "check_task", None)  # e.g. token ids of the model's tokenizer
        if callable(check_task):
            check_task(task.view())
        del net
    with config_group("strategy"):
        parts.strategy.check(pool, task.view())
        parts.strategy.check_model(parts.model)
    if parts.strategy.upper_bound:  # a marked upper bound: true labels of the whole pool
        from labelbench.labels import Clean, Full

        parts.strategy.oracle_pool, _ = reveal(task, Clean(), Full(), cfg.seed, cfg.split_seed)
    return Prepared(parts, task, labeler, pool, rounds)


def run(cfg: DictConfig, choices: dict[str, str] | None = None) -> RunRecord | None:
    """Train and evaluate one configuration and write its record.

    Raises ConfigError (and writes nothing) for bad configuration, including a budget that
    does not fit the data. Any failure after that is written as a `failed` record. A fit
    that finds a checkpoint of the same run key resumes from it. Under DDP only rank 0
    evaluates, writes the record and returns it; the other ranks return None. While it
    runs, the run keeps a heartbeat (`<results_dir>/running/<run_key>.json`); a stop signal
    (SIGTERM, SIGINT, SLURM's SIGUSR2) ends it with RunInterrupted and no record, a network
    fit's checkpoint saved (labelbench.interrupt)."""
    from labelbench.interrupt import StopSignals
    from labelbench.results.heartbeat import Heartbeat

    t_start = time.perf_counter()
    key = run_key(cfg)
    about = {"choices": choices_from(cfg, choices), "seed": int(cfg.seed)}
    with StopSignals(), Heartbeat(cfg.paths.results_dir, key, about):
        return _run(cfg, choices, key, t_start)


def _run(
    cfg: DictConfig, choices: dict[str, str] | None, key: str, t_start: float
) -> RunRecord | None:
    prepared = prepare(cfg, key)
    parts, task, labeler, pool, rounds = (
        prepared.parts, prepared.task, prepared.labeler, prepared.pool, prepared.rounds,
    )  # fmt: skip
    timings = {"load_s": time.perf_counter() - t_start}
    checkpoint = Checkpointing(
        Path(cfg.paths.results_dir) / "checkpoints" / key, int(cfg.checkpoint.every_steps)
    )

    metrics: dict[str, float] = {}
    error = None
    curve = Curve(checkpoint.dir if rounds else None)
    # A tuning trial is scored on the validation labels the strategy had (as observed, and
    # paid for when the budget says so); the test split's labels are not read at all.
    items, truth, split = held_out(cfg, task, pool)
    try:
        from labelbench.metrics import classification_metrics

        def score(predictor) -> dict[str, float]:
            proba = predictor.predict_proba(task.x[items])
            return classification_metrics(proba, truth(), task.num_classes, f"{split}/")

        t_fit = time.perf_counter()
        if rounds:  # the run scores every round itself: the strategy never sees the test split

            def report(labels: int, predictor, role: str = "inner") -> None:
                curve.add(labels, score(predictor), role)

            predictor = parts.strategy.fit_rounds(
                labeler, task.view(), parts.model, parts.trainer, seed=cfg.seed,
                checkpoint=checkpoint, report=report,
            )  # fmt: skip
        else:
            predictor = parts.strategy.fit(
                pool, task.view(), parts.model, parts.trainer, seed=cfg.seed, checkpoint=checkpoint
            )
        timings["fit_s"] = time.perf_counter() - t_fit
        if global_rank() != 0:
            return None  # DDP: the other processes helped train; rank 0 evaluates and records
        t_eval = time.perf_counter()
        metrics = score(predictor)
        last = getattr(predictor, "last", None)  # the final weights, when others were selected
        if last is not None:
            metrics.update(
                {f"{split}_last/{k.removeprefix(f'{split}/')}": v for k, v in score(last).items()}
            )
        metrics.update({f"fit/{k}": float(v) for k, v in predictor.fit_info.items()})
        timings["eval_s"] = time.perf_counter() - t_eval
        bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(f"non-finite metrics: {', '.join(bad)}")
    except ConfigError:
        raise
    except Exception as e:
        if global_rank() != 0:
            raise
        from labelbench.results.atomic import WriteError
        from labelbench.results.store import error_of

        error = error_of(e)  # out of memory, a full disk: named as such, with what to do
        if isinstance(e, WriteError):  # the file, the place and why say it all
            log.error("run %s failed: %s", key, error["message"])
        else:
            log.error("run %s failed:\n%s", key, traceback.format_exc())
        metrics = {}
    timings["total_s"] = time.perf_counter() - t_start

    from labelbench.metrics import directions

    names = choices_from(cfg, choices)
    labels = labeler.accounting().to_dict()  # what was bought, in the order it was bought
    analysis = labels["realised"].get("lf_analysis")
    if analysis:  # labeling functions: Snorkel's LF analysis, as one table
        from labelbench.labels.weak import format_lf_analysis

        log.info("%s %s\n%s", key, describe(names, cfg), format_lf_analysis(analysis))
    if parts.strategy.upper_bound:
        names["strategy"] += "[oracle]"
        labels["upper_bound"] = True
    if cfg.tune.trials is not None:  # the best settings of a tuning study, re-run
        names["strategy"] += "[tuned]"
    record = RunRecord(
        run_key=key,
        status="failed" if error else "ok",
        choices=names,
        seed=int(cfg.seed),
        split_seed=int(cfg.split_seed),
        labels=labels,
        metrics=metrics,
        directions=directions(metrics),
        curve=curve.points,
        proxy_curve=curve.proxy_points,
        timings=timings,
        versions=versions(),
        git=git_info(),
        host=host_info(),
        config=OmegaConf.to_container(cfg, resolve=True),
        error=error,
        created=utc_now(),
    )
    RecordStore(cfg.paths.results_dir).write(record)
    from labelbench.loggers import mirror_record

    mirror_record(parts.logger, record)  # W&B/TensorBoard/CSV copies of the record
    if record.status == "ok" and not cfg.checkpoint.keep:
        shutil.rmtree(checkpoint.dir, ignore_errors=True)  # a failed run keeps it to resume from
    return record


def held_out(cfg: DictConfig, task: Any, pool: Any) -> tuple[Any, Any, str]:
    """(dataset indices, a function giving their labels, split name) of what the run is
    scored on: the test split against the truth, or, for a tuning trial (`tune.trial`
    set), the validation items the strategy got, against their observed labels. Raises
    ConfigError for a trial without validation labels."""
    if cfg.tune.trial is None:
        test = task.split.test
        return test, lambda: task.y[test], "test"
    labeled = pool.val_labels >= 0  # an item whose annotators all abstained says nothing
    if not labeled.any():
        raise ConfigError(
            "tune.trial: a tuning trial is scored on validation labels and this run has none"
            f" (dataset.val_fraction={cfg.dataset.get('val_fraction', '?')}); tuning needs a"
            " validation split"
        )
    val_labels = pool.val_labels[labeled]
    return pool.val_indices[labeled], lambda: val_labels, "val"


def placed(task: Any, cfg: DictConfig) -> Any:
    """The task with its inputs in memory or left on disk to stream, as `loader` says."""
    from labelbench.data.lazy import Streaming, place

    loader = cfg.get("loader") or {}
    streaming = Streaming(int(loader.get("workers", 4)), int(loader.get("prefetch", 2)))
    return place(
        task, loader.get("path", "auto"), int(loader.get("stream_above_mb", 2048)), streaming
    )


class Curve:
    """The per-round points of an active-learning run, {round, labels, test/...} each: the
    evaluated (inner) model's, and the proxy's where one chooses the items, in a list of its
    own of the same form. Kept in the run's checkpoint folder as rounds finish, so a resumed
    run keeps the rounds it had; a round scored again (killed before its purchase was saved)
    replaces its point. A point's round is its place among the label counts reported: every
    round reports at least one of the two models, and each round buys more labels."""

    FILE = "curve.json"
    ROLES = ("inner", "proxy")

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else Path(folder) / self.FILE
        self.curves: dict[str, list[dict[str, float]]] = {role: [] for role in self.ROLES}
        if self.path is not None and self.path.is_file():
            saved = json.loads(self.path.read_text())
            # a list: the inner's points, as a checkpoint from before the proxy's curve has them
            self.curves.update({"inner": saved} if isinstance(saved, list) else saved)

    @property
    def points(self) -> list[dict[str, float]]:
        """The inner's points: the record's `curve`."""
        return self.curves["inner"]

    @property
    def proxy_points(self) -> list[dict[str, float]]:
        """The proxy's points: the record's `proxy_curve` (empty without a proxy)."""
        return self.curves["proxy"]

    def add(self, labels: int, metrics: dict[str, float], role: str = "inner") -> None:
        if role not in self.curves:
            raise ValueError(f"role={role!r} is not one of {', '.join(self.ROLES)}")
        for name, points in self.curves.items():  # later rounds, and this one of this role
            self.curves[name] = [
                p
                for p in points
                if p["labels"] < labels or (p["labels"] == labels and name != role)
            ]
        earlier = {p["labels"] for points in self.curves.values() for p in points} - {labels}
        self.curves[role].append({"round": len(earlier), "labels": labels, **metrics})
        if self.path is not None:
            from labelbench.results.atomic import atomic_write

            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.curves).encode())


def global_rank() -> int:
    """This process's rank under DDP (0 without it), as Lightning sets it."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def describe(choices: dict[str, str], cfg: DictConfig) -> str:
    parts = [f"{g}={choices[g]}" for g in ("dataset", "regime", "budget", "strategy", "model")]
    return " ".join(parts) + f" seed={cfg.seed}"


def execute(cfg: DictConfig, choices: dict[str, str] | None = None) -> str:
    """Run unless an `ok` record of the same run key exists. Returns the outcome:
    'ok', 'failed', 'skipped', 'invalid' (bad configuration: one line on stderr, no record)
    or 'helper' (a DDP process other than rank 0). A run that could not write its record
    or cache, or ran out of memory before its fit, is 'failed' with one line on stderr
    and no record."""
    try:
        check_run_fields(cfg)
        key = run_key(cfg)
    except ConfigError as e:
        print(f"labelbench-run: error: {e}", file=sys.stderr)
        return "invalid"
    names = choices_from(cfg, choices)
    store = RecordStore(cfg.paths.results_dir)
    if store.is_ok(key):
        log.info("skip %s %s: ok record exists", key, describe(names, cfg))
        return "skipped"
    unrecorded = None  # why a run that failed outside its fit has no record
    try:
        record = run(cfg, choices)
    except ConfigError as e:
        print(f"labelbench-run: error: {e}", file=sys.stderr)
        return "invalid"
    except RunInterrupted as stop:
        interrupted(stop, key, names, cfg)
    except Exception as e:  # a full disk or no memory outside the fit: one line, no record
        from labelbench.results.atomic import WriteError
        from labelbench.results.store import error_of, out_of_memory

        if not isinstance(e, WriteError) and out_of_memory(e) is None:
            raise  # a bug: its traceback
        unrecorded = error_of(e)["message"]
    if unrecorded is not None:  # out of the except: the failed run's frames are gone
        print(
            f"labelbench-run: error: run {key} {describe(names, cfg)}: {unrecorded};"
            " nothing was recorded: a relaunch runs it again",
            file=sys.stderr,
        )
        free_gpu_memory()
        return "failed"
    if record is None:
        return "helper"  # a DDP process other than rank 0: rank 0 reports the run
    if record.error is not None and record.error["type"] == "OutOfMemoryError":
        free_gpu_memory()  # for the next run of a sweep in this process
    budget = f"{names['budget']}:{record.labels['budget']}"
    shown = "val/acc" if cfg.tune.trial is not None else "test/acc"
    summary = (
        f"{shown}={record.metrics[shown]:.4f}" if record.status == "ok" else record.error["message"]
    )
    log.info(
        "%s %s %s (%s, %.1f s): %s",
        record.status,
        key,
        describe({**record.choices, "budget": budget}, cfg),
        f"{record.labels['count']} labels",
        record.timings["total_s"],
        summary,
    )
    return record.status


def free_gpu_memory() -> None:
    """Give the GPU memory of a run that ran out of it back to the device, for the next run
    of a sweep in this process: its tensors go with the garbage (the fit's objects refer to
    each other), then torch's cache of freed blocks is emptied."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        import gc

        gc.collect()
        torch.cuda.empty_cache()


def interrupted(stop: RunInterrupted, key: str, names: dict[str, str], cfg: DictConfig) -> NoReturn:
    """One line for a run stopped by a signal, the signal handed on (submitit requeues the
    job), then exit 128 + the signal's number, as a shell reports a process it ended."""
    from labelbench.interrupt import hand_on

    where = (
        f"its checkpoint (step {stop.step}) is in {stop.checkpoint.parent}; run the same command"
        " again to resume"
        if stop.checkpoint is not None
        else "no checkpoint was made; run the same command again to start it over"
    )
    print(f"labelbench-run: {key} {describe(names, cfg)} stopped by {stop.name}: {where}", file=sys.stderr)  # fmt: skip
    if stop.checkpoint is not None:  # `labelbench status`: stopped, resumable, not running
        from labelbench.provenance import utc_now
        from labelbench.results.atomic import atomic_write
        from labelbench.results.status import STOPPED_NOTE

        note = {"signal": stop.name, "step": stop.step, "at": utc_now()}
        atomic_write(stop.checkpoint.parent / STOPPED_NOTE, json.dumps(note))
    hand_on(stop.signum)
    sys.exit(128 + stop.signum)


EXIT_CODES = {"ok": 0, "skipped": 0, "helper": 0, "failed": 1, "invalid": 2}


def _hydra_main(cfg: DictConfig) -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    outcome = execute(cfg, dict(hydra_cfg.runtime.choices))
    if hydra_cfg.mode == RunMode.RUN and EXIT_CODES[outcome]:
        sys.exit(EXIT_CODES[outcome])
    return outcome  # in a sweep, SweepSummary records it, tallies and sets the exit code


def main() -> None:
    """`labelbench-run`: the Hydra app. A command line that does not compose (an unknown
    option, a key the chosen option lacks, a mandatory value left unset), in a single run or
    anywhere in a sweep, is refused first in one line, exit 2, before Hydra writes anything
    or a launcher starts a job (labelbench.overrides)."""
    import hydra

    from labelbench.overrides import precheck

    register_configs()
    precheck(sys.argv[1:])
    # A log line that cannot be written (a full disk under Hydra's run.log) is dropped rather
    # than printed with a traceback: the run's own error line is the one that matters.
    logging.raiseExceptions = False
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_hydra_main)()


if __name__ == "__main__":
    main()
