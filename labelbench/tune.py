"""Hyper-parameter tuning on validation labels only, with the same budget for every method.

`labelbench tune <overrides>` is `labelbench-run -m hydra/sweeper=tune <overrides>`: a Hydra
sweeper that turns each combination of the swept overrides (a leaderboard cell: dataset,
regime, budget, strategy, model ...) into one *study*:

1. `trials` trials, each a run whose settings a seeded Optuna sampler draws from the
   strategy's search space (conf/search/<strategy>.yaml). A trial is scored on the
   validation labels it was given; its test metrics are never computed (labelbench.run
   `held_out`). The validation labels are paid from the label budget unless
   `val_paid=false`, and every record says which (labels.val_paid).
2. The best trial's settings re-run over the evaluation `seeds`: the *tuned runs*, tabled as
   '<strategy>[tuned]' with the study's cost (trials, fit time) beside them; with
   `untuned=true` the strategy's default settings run on the same seeds and labels too.

Every trial is a run of its own: launched through the configured launcher (local, joblib,
SLURM), recorded in the record store with `tune.study` and `tune.trial`. The store is the
study's only state. A study is resumed by asking the sampler again, in the same order, for
the trials it already has (the seeded sampler gives the same settings), telling it their
recorded values, and running only the trials without a record: a killed tune goes on where
it stopped, repeats no finished trial, and ends where an uninterrupted one would.

Imports neither torch nor optuna at module level: Hydra scans the plugin shim that
re-exports the sweeper (hydra_plugins/labelbench_tune) on every start-up.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import Container, DictConfig, OmegaConf, open_dict

from labelbench.config import ConfigError
from labelbench.overrides import TUNE_SWEEPER

log = logging.getLogger("labelbench")

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
SEARCH_DIR = CONF_DIR / "search"
KINDS = ("float", "int", "categorical")
SEARCHABLE = ("strategy.", "model.")  # labels, data and seeds are the protocol's, not tuned
SAMPLERS = ("tpe", "random")


# --- search spaces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution (Optuna's three kinds)."""

    key: str
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=self.step or 1)
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def as_dict(self) -> dict[str, Any]:
        """The entry as the YAML gives it (what the study's id is made from)."""
        if self.kind == "categorical":
            return {"type": self.kind, "choices": list(self.choices)}
        out = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        return out if self.step is None else {**out, "step": self.step}


def _entry(key: str, spec: Any, where: str) -> Param:
    """One search-space entry checked: ConfigError naming the key and what is allowed."""
    at = f"{where}: {key}"
    if not isinstance(key, str) or not key.startswith(SEARCHABLE) or key in SEARCHABLE:
        raise ConfigError(
            f"{where}: {key!r} cannot be searched; only keys under strategy. or model. can"
            " (the labels, the data and the seeds are the protocol's)"
        )
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{at}={spec!r} must be a mapping such as {{type: float, low: 1.0e-4, high: 1.0e-2,"
            " log: true}"
        )
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{at}: type={kind!r} is not one of {', '.join(KINDS)}")
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    )
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(
            f"{at}: {', '.join(map(str, unknown))} is not a field of a {kind} entry; allowed:"
            f" {', '.join(sorted(allowed))}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}: choices={choices!r} must be a non-empty list")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise ConfigError(f"{at}: choices={choices!r} lists a value twice")
        return Param(key, kind, choices=tuple(choices))
    number = int if kind == "int" else (int, float)
    bounds = {}
    for name in ("low", "high"):
        value = spec.get(name)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            raise ConfigError(f"{at}: {name}={value!r} must be a finite {kind}")
        bounds[name] = value
    low, high = bounds["low"], bounds["high"]
    if low > high:
        raise ConfigError(f"{at}: low={low} is greater than high={high}")
    log_scale = spec.get("log", False)
    if not isinstance(log_scale, bool):
        raise ConfigError(f"{at}: log={log_scale!r} must be true or false")
    if log_scale and low <= 0:
        raise ConfigError(f"{at}: log=true needs low > 0 (got low={low})")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, number) or not step > 0:
            raise ConfigError(f"{at}: step={step!r} must be a positive {kind}")
        if log_scale:
            raise ConfigError(f"{at}: step and log=true cannot be combined (Optuna samples either)")
    return Param(key, kind, low, high, log_scale, step)


def load_space(path: str | Path) -> dict[str, Param]:
    """The search space in YAML file `path`: {dotted key: distribution}. Raises ConfigError
    (one line) for a missing, empty or malformed file or entry."""
    import yaml

    path = Path(path)
    where = f"search space {path}"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{where} is not valid YAML{line}") from None
    if data is None or data == {}:
        raise ConfigError(f"{where} is empty; it needs at least one key to search")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must map config keys to distributions (strategy.optimizer.lr: {{type:"
            f" float, low: 1.0e-4, high: 1.0e-2, log: true}}), not a {type(data).__name__}"
        )
    return {key: _entry(key, spec, where) for key, spec in data.items()}


_MISSING = object()


def check_space(space: dict[str, Param], cfg: DictConfig, where: str) -> None:
    """Every searched key is a key of the run's config (its strategy's or its model's)."""
    choices = cfg.hydra.runtime.choices
    for key in space:
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            group = key.split(".", 1)[0]
            raise ConfigError(
                f"{where}: {key} is not a key of {group}={choices.get(group)}'s config"
            )


def check_objective(objective: Any, setting: str = "objective") -> str:
    """The objective's direction ('max' or 'min'); ConfigError unless it is a validation
    metric the runs report. `setting` names it in messages (objective, tie_break)."""
    from labelbench.metrics import DIRECTIONS

    allowed = ", ".join(f"val/{m}" for m in DIRECTIONS)
    name = str(objective)
    split, _, metric = name.partition("/")
    if split.startswith("test"):
        raise ConfigError(
            f"hydra.sweeper.{setting}={name}: tuning never reads the test split; use a"
            f" validation metric: {allowed}"
        )
    if split != "val" or metric not in DIRECTIONS:
        raise ConfigError(f"hydra.sweeper.{setting}={name} is not one of {allowed}")
    return DIRECTIONS[metric]


def override_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


# --- settings ----------------------------------------------------------------------------


@dataclass
class TuneSweeperConf:
    """`hydra.sweeper.<key>=` settings of `hydra/sweeper=tune` (docs/guide/tuning.md)."""

    _target_: str = TUNE_SWEEPER
    trials: int = 20  # trials per study: every method of a comparison gets the same number
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # the best settings re-run on these
    untuned: bool = True  # also run the untuned defaults on those seeds and labels
    objective: str = "val/acc"  # a validation metric; test metrics are never computed
    # Among trials equal on the objective (few validation labels make val/acc coarse: 8
    # labels, 9 values), the best on this validation metric; null: the earliest of equals
    tie_break: str | None = "val/nll"
    sampler: str = "tpe"  # tpe (Optuna's TPESampler, its defaults) | random
    seed: int = 0  # the sampler's seed
    parallel: int = 1  # trials asked for, and launched, together per study
    val_paid: bool = True  # validation labels come out of the label budget (budget.val_paid)
    space: str | None = None  # a search-space file; null: conf/search/<strategy>.yaml
    params: dict[str, str] | None = None  # swept overrides, as hydra.sweeper.params of basic


@dataclass(frozen=True)
class Settings:
    trials: int
    seeds: tuple[int, ...]
    untuned: bool
    objective: str
    direction: str
    tie_break: str | None
    tie_direction: str | None
    sampler: str
    seed: int
    parallel: int
    val_paid: bool
    space: str | None


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = "a positive integer" if least == 1 else "a non-negative integer"
        raise ConfigError(f"hydra.sweeper.{name}={value!r} must be {kind}")
    return value


def settings_from(raw: dict[str, Any]) -> Settings:
    """The sweeper's settings checked: ConfigError naming the first bad one."""
    seeds = raw.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list | tuple):
        raise ConfigError(f"hydra.sweeper.seeds={seeds!r} must be a list of seeds, e.g. [0,1,2]")
    for s in seeds:
        _count("seeds", s, 0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"hydra.sweeper.seeds={list(seeds)} lists a seed twice")
    if raw.get("sampler") not in SAMPLERS:
        raise ConfigError(
            f"hydra.sweeper.sampler={raw.get('sampler')!r} is not one of {', '.join(SAMPLERS)}"
        )
    for flag in ("untuned", "val_paid"):
        if not isinstance(raw.get(flag), bool):
            raise ConfigError(f"hydra.sweeper.{flag}={raw.get(flag)!r} must be true or false")
    tie_break = raw.get("tie_break")
    space = raw.get("space")
    if space is not None and not isinstance(space, str):
        raise ConfigError(f"hydra.sweeper.space={space!r} must be a file path")
    return Settings(
        trials=_count("trials", raw.get("trials"), 1),
        seeds=tuple(int(s) for s in seeds),
        untuned=raw["untuned"],
        objective=str(raw.get("objective")),
        direction=check_objective(raw.get("objective")),
        tie_break=None if tie_break is None else str(tie_break),
        tie_direction=None if tie_break is None else check_objective(tie_break, "tie_break"),
        sampler=raw["sampler"],
        seed=_count("seed", raw.get("seed"), 0),
        parallel=_count("parallel", raw.get("parallel"), 1),
        val_paid=raw["val_paid"],
        space=space,
    )


# --- studies -----------------------------------------------------------------------------


def _key_of(line: str) -> str:
    return line.split("=", 1)[0].lstrip("+~")


def merged(*groups: Sequence[str]) -> list[str]:
    """Override lines, a later line replacing an earlier one of the same key."""
    out: dict[str, str] = {}
    for group in groups:
        for line in group:
            out.pop(_key_of(line), None)
            out[_key_of(line)] = line
    return list(out.values())


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    overrides: list[str]
    key: str  # run key of its record
    handle: Any = None  # the Optuna trial
    value: float | None = None  # its objective (None: failed)
    tie: float | None = None  # its tie-break metric
    state: str = "pending"  # pending | ok | failed
    fit_s: float = 0.0


@dataclass
class Study:
    """One study: a cell's base overrides, its search space and the sweeper's settings."""

    base: list[str]  # the cell's overrides (the command line's, one value each)
    strategy: str  # the strategy's option name, for the study's id and messages
    space: dict[str, Param]
    space_path: Path
    settings: Settings
    identity: str  # run key of the cell's config: what the study tunes, whatever the launcher
    trials: list[Trial] = field(default_factory=list)
    optuna_study: Any = None

    @functools.cached_property
    def id(self) -> str:  # read for every trial's overrides: hashed once
        s = self.settings
        blob = json.dumps(
            {
                "cell": self.identity,
                "space": {k: p.as_dict() for k, p in sorted(self.space.items())},
                "objective": s.objective,
                "sampler": s.sampler,
                "seed": s.seed,
                "parallel": s.parallel,
            },
            sort_keys=True,
        )
        return f"{self.strategy}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def paid(self) -> list[str]:
        return [f"budget.val_paid={override_value(self.settings.val_paid)}"]

    def trial_overrides(self, number: int, params: dict[str, Any]) -> list[str]:
        sampled = [f"{k}={override_value(v)}" for k, v in params.items()]
        tune = [f"tune.study={self.id}", f"tune.trial={number}"]
        return merged(self.base, self.paid(), sampled, tune)

    def best(self) -> Trial | None:
        """The finished trial with the best objective; of equals, the one best on the
        tie-break metric; of those, the earliest."""
        done = [t for t in self.trials if t.state == "ok"]
        if not done:
            return None
        s = self.settings
        sign = -1.0 if s.direction == "max" else 1.0
        tie_sign = -1.0 if s.tie_direction == "max" else 1.0
        return min(
            done,
            key=lambda t: (
                sign * t.value,
                tie_sign * t.tie if t.tie is not None else 0.0,
                t.number,
            ),
        )

    def eval_overrides(self, seed: int) -> list[str]:
        best = self.best()
        assert best is not None
        sampled = [f"{k}={override_value(v)}" for k, v in best.params.items()]
        tune = [f"tune.study={self.id}", f"tune.trials={len(self.trials)}"]
        return merged(self.base, self.paid(), sampled, tune, [f"seed={seed}"])

    def default_overrides(self, seed: int) -> list[str]:
        return merged(self.base, self.paid(), [f"seed={seed}"])

    def summary(self) -> str:
        best = self.best()
        failed = sum(t.state == "failed" for t in self.trials)
        fit = sum(t.fit_s for t in self.trials)
        head = f"tune {self.id}: {len(self.trials)} trials ({failed} failed), {fit:.0f} s fitting"
        if best is None:
            return f"{head}; no trial finished, nothing to re-run"
        chosen = " ".join(f"{k}={override_value(v)}" for k, v in best.params.items())
        tie = "" if best.tie is None else f", {self.settings.tie_break}={best.tie:.4f}"
        return (
            f"{head}; best {self.settings.objective}={best.value:.4f}{tie} at trial"
            f" {best.number}: {chosen}"
        )


def make_sampler(settings: Settings) -> Any:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    return optuna.samplers.TPESampler(seed=settings.seed)


def _run_key_of(cfg: DictConfig) -> str:
    from labelbench.config import run_key

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return run_key(cfg)


# --- the sweeper -------------------------------------------------------------------------


class TuneError(RuntimeError):
    """A trial that could not be scored: the tune stops, with exit code 2 when the trial's
    config does not run (bad input: the search space), else 1 (a crashed job: rerun)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class TuneSweeper:
    """The Hydra sweeper behind `labelbench tune` (the Sweeper plugin base is mixed in by
    hydra_plugins/labelbench_tune, where Hydra requires plugins to live)."""

    def __init__(self, **settings: Any) -> None:
        self.raw = {  # Hydra hands lists and mappings over as OmegaConf containers
            k: OmegaConf.to_container(v) if isinstance(v, Container) else v
            for k, v in settings.items()
        }
        self.params = dict(self.raw.pop("params", None) or {})
        self.raw.pop("_target_", None)
        self.hydra_context = None
        self.config: DictConfig | None = None
        self.launcher = None
        self.job_idx = 0

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # planning: everything is checked before any run starts or any file is written

    def cells(self, arguments: list[str]) -> list[list[str]]:
        """The override lists of the cells: the cartesian product of the swept overrides."""
        import itertools

        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        options: dict[str, list[str]] = {}
        for override in parser.parse_overrides(lines):
            key = override.get_key_element()
            if override.is_sweep_override():
                if not override.is_discrete_sweep():
                    raise ConfigError(f"{override.input_line}: tune sweeps lists of values only")
                options[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
            else:
                options[key] = [f"{key}={override.get_value_element_as_str()}"]
            if key.startswith("tune."):
                raise ConfigError(f"{key} is set by labelbench tune itself; leave it out")
        return [list(c) for c in itertools.product(*options.values())]

    def compose(self, overrides: list[str]) -> DictConfig:
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def plan(self, arguments: list[str]) -> list[Study]:
        settings = settings_from(self.raw)
        studies = []
        for base in self.cells(arguments):
            cfg = self.compose(
                merged(base, [f"budget.val_paid={override_value(settings.val_paid)}"])
            )
            strategy = str(cfg.hydra.runtime.choices.get("strategy") or "strategy")
            path = Path(settings.space) if settings.space else SEARCH_DIR / f"{strategy}.yaml"
            if not settings.space and not path.is_file():
                raise ConfigError(
                    f"strategy={strategy} has no search space ({path.relative_to(CONF_DIR.parent)}"
                    " does not exist); write one or give hydra.sweeper.space=FILE"
                )
            space = load_space(path)
            check_space(space, cfg, f"search space {path}")
            given = {_key_of(line) for line in base}
            both = sorted(given & set(space))
            if both:
                raise ConfigError(
                    f"{both[0]} is both set on the command line and searched ({path}); drop one"
                )
            studies.append(Study(base, strategy, space, path, settings, _run_key_of(cfg)))
        ids = [s.id for s in studies]
        if len(set(ids)) != len(ids):
            raise ConfigError("two cells of this sweep make the same study; drop the duplicate")
        return studies

    def sweep(self, arguments: list[str]) -> list[Any]:
        from labelbench.launchers import fail

        try:
            studies = self.plan(list(arguments))
        except ConfigError as e:
            fail(str(e))
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        settings = studies[0].settings
        for study in studies:
            study.optuna_study = optuna.create_study(
                direction="maximize" if settings.direction == "max" else "minimize",
                sampler=make_sampler(settings),
                study_name=study.id,
            )
            log.info("tune %s: %s (%s)", study.id, " ".join(study.base), study.space_path)
        returns: list[Any] = []
        try:
            while any(len(s.trials) < settings.trials for s in studies):
                returns.extend(self.trial_round(studies, settings))
        except TuneError as e:
            print(f"labelbench-run: error: {e}", file=sys.stderr)
            sys.exit(e.code)
        for study in studies:
            log.info(study.summary())
        runs = [
            overrides
            for study in studies
            if study.best() is not None
            for seed in settings.seeds
            for overrides in (
                [study.eval_overrides(seed)]
                + ([study.default_overrides(seed)] if settings.untuned else [])
            )
        ]
        if runs:
            returns.append(self.launch(runs))
        return returns

    def trial_round(self, studies: list[Study], settings: Settings) -> list[Any]:
        """Ask every unfinished study for its next batch of trials; tell it those with a
        record, run the others (all studies' together), then tell it theirs."""
        from labelbench.results.store import RecordStore

        store = RecordStore(self.config.paths.results_dir)
        batch: list[tuple[Study, Trial]] = []
        for study in studies:
            left = settings.trials - len(study.trials)
            for _ in range(min(settings.parallel, left)):
                number = len(study.trials)
                handle = study.optuna_study.ask(
                    {k: p.distribution() for k, p in study.space.items()}
                )
                params = {k: handle.params[k] for k in study.space}
                overrides = study.trial_overrides(number, params)
                key = _run_key_of(self.compose(overrides))
                trial = Trial(number, params, overrides, key, handle)
                study.trials.append(trial)
                batch.append((study, trial))
        to_run = [(s, t) for s, t in batch if self.read(store, s, t) is None]
        returns = []
        if to_run:
            returns = self.launch([t.overrides for _, t in to_run])
            for (study, trial), ret in zip(to_run, returns, strict=True):
                if self.read(store, study, trial) is None:
                    outcome = _outcome(ret)
                    invalid = outcome == "invalid"
                    raise TuneError(
                        f"tune {study.id}: trial {trial.number} ({' '.join(trial.overrides)})"
                        f" left no record ({outcome}); "
                        + (
                            "its search space makes a config that does not run (the job's"
                            " error line says why)"
                            if invalid
                            else "rerun the same command to resume the tune"
                        ),
                        code=2 if invalid else 1,
                    )
        for study, trial in batch:  # in trial order: a resumed study tells what this one did
            self.tell(study, trial)
        return returns

    def read(self, store: Any, study: Study, trial: Trial) -> Any:
        """The trial's record if it has one (its value and state noted), else None."""
        path = store.path(trial.key)
        if not path.is_file():
            return None
        from labelbench.results.record import RecordError, RunRecord

        try:
            record = RunRecord.from_json(path.read_text())
        except (OSError, RecordError):
            return None  # half a file or another schema: run the trial again
        trial.fit_s = float(record.timings.get("fit_s") or 0.0)
        if record.status == "ok":
            value = record.metrics.get(study.settings.objective)
            if value is None:
                raise TuneError(
                    f"tune {study.id}: trial {trial.number}'s record ({path}) has no"
                    f" {study.settings.objective}; metrics: {', '.join(sorted(record.metrics))}",
                    code=1,
                )
            trial.value, trial.state = float(value), "ok"
            tie = record.metrics.get(study.settings.tie_break or "")
            trial.tie = None if tie is None else float(tie)
        else:
            trial.value, trial.state = None, "failed"
        return record

    def tell(self, study: Study, trial: Trial) -> None:
        from optuna.trial import TrialState

        if trial.state == "ok":
            study.optuna_study.tell(trial.handle, trial.value)
        else:
            study.optuna_study.tell(trial.handle, state=TrialState.FAIL)
        best = study.best()
        log.info(
            "tune %s: trial %d/%d %s%s",
            study.id,
            trial.number + 1,
            study.settings.trials,
            f"{study.settings.objective}={trial.value:.4f}" if trial.state == "ok" else "failed",
            f" (best {best.value:.4f} at trial {best.number})" if best else "",
        )

    def launch(self, runs: list[list[str]]) -> Any:
        returns = self.launcher.launch(runs, initial_job_idx=self.job_idx)
        self.job_idx += len(runs)
        return returns


def _outcome(job_return: Any) -> str:
    """A job's outcome as labelbench.run reports it ('invalid', 'failed' ...), or 'crashed'."""
    try:
        return str(job_return.return_value)
    except Exception as e:  # the job raised: Hydra keeps the exception for return_value
        return f"crashed: {type(e).__name__}"
