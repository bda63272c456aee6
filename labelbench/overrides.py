"""Command-line pre-check for `labelbench-run`: before Hydra takes over, compose the config
the way Hydra will and turn a composition failure into one line, the way labelbench's own
errors read:

    labelbench-run: error: strategy=fixmach is not an option of strategy; did you mean fixmatch? ...
    labelbench-run: error: regime=clean has no key rate; regimes that have it: pairflip, ...

exit 2, nothing written (no record, no Hydra output folder). A multirun is expanded first
(`a=1,2`, `choice()`, `range()`, `glob()`, and a BasicSweeper's `hydra.sweeper.params`)
and every combination of its config-group choices is composed, so a mistake anywhere in
the sweep stops it before any job starts, whatever the launcher.

Light on purpose: Hydra and OmegaConf only, no torch or Lightning.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from labelbench.config import ConfigError

PREFIX = "labelbench-run: error:"
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
TUNE_SWEEPER = "hydra_plugins.labelbench_tune.tune_sweeper.TuneSweeper"
# Beyond this many group combinations a sweep is checked value by value (each option of
# each swept group once, the other groups at their first value) rather than in full.
MAX_COMBINATIONS = 256
# Values a mandatory key takes, where its YAML line carries no comment that says so.
KNOWN_VALUES = {
    ("dataset", "files", "path"): "a CSV or Parquet file (dataset.path=data/my.csv)",
}
# Hydra's advice lines that do not fit a labelbench command line ('+key' adds a key the
# run's component does not take) or that point at Hydra's own debugging aids.
_ADVICE = (
    "To append",
    "Either remove",
    "Or add a second",
    "Set the environment variable",
    "See https://hydra.cc",
    "Config search path",
    "Available options",
)
# Flags that ask Hydra for something other than a run: left to Hydra.
_NOT_A_RUN = ("help", "hydra_help", "cfg", "resolve", "package", "shell_completion")


def precheck(argv: Sequence[str]) -> None:
    """Exit 2 with one line on stderr when the command line `argv` (without the program
    name) cannot compose; return quietly when it can, or when it asks for no run."""
    try:
        check_command_line(argv)
    except ConfigError as e:
        print(f"{PREFIX} {e}", file=sys.stderr)
        sys.exit(2)
    except Exception:  # a fault of this check, not of the command line: Hydra decides
        return


def check_command_line(argv: Sequence[str]) -> None:
    """Raise ConfigError (one line) when `argv` cannot compose as `labelbench-run` would."""
    args = _parse_args(argv)
    if args is None or any(getattr(args, flag, None) for flag in _NOT_A_RUN):
        return
    if args.info is not None or args.config_name or args.config_path or args.experimental_rerun:
        return  # another primary config, or no run: Hydra's business
    overrides = [str(o) for o in args.overrides]
    with Composer.for_command_line(overrides, args.config_dir) as composer:
        if args.multirun:
            check_sweep(composer, composer.overrides)
        else:
            check_run(composer, composer.overrides)


def _parse_args(argv: Sequence[str]) -> Any:
    """Hydra's own reading of the command line, or None where Hydra would stop on it first
    (a malformed flag, `--version`)."""
    from hydra._internal.utils import get_args_parser

    if "--version" in argv:
        return None
    parser = get_args_parser()

    def error(message: str) -> None:
        raise _ArgsError(message)

    parser.error = error  # type: ignore[method-assign]
    try:
        return parser.parse_args(list(argv))
    except (_ArgsError, SystemExit):
        return None


class _ArgsError(Exception):
    pass


# --- composing -------------------------------------------------------------------------------


@dataclass
class Composed:
    cfg: DictConfig  # the run config, without the hydra node
    choices: dict[str, str | None]  # Hydra's group choices (nested groups included)
    hydra: DictConfig  # the hydra node


class Composer:
    """Composes run configs as `labelbench-run` does (labelbench.run.compose: conf/ through
    `initialize_config_dir`, the schema registered), inside one Hydra initialisation, each
    override list once. `--config-dir` and `hydra.searchpath=[...]` on the command line
    extend the search path, as Hydra's own app does."""

    def __init__(self, overrides: Sequence[str], searchpath: list[str] | None = None) -> None:
        self.overrides = list(overrides)  # the command line's, less hydra.searchpath
        self.base = [] if searchpath is None else [f"hydra.searchpath={_hydra_list(searchpath)}"]
        self._cache: dict[tuple[str, ...], Composed | Exception] = {}
        self._options: dict[tuple[str, int], list[str]] = {}
        self._context: Any = None

    @classmethod
    def for_command_line(cls, overrides: Sequence[str], config_dir: str | None) -> Composer:
        """A composer for these overrides: the search path they set (`hydra.searchpath=`),
        with `--config-dir` in front of it."""
        rest, searchpath = [], None
        for line in overrides:
            if line.split("=", 1)[0].lstrip("+") == "hydra.searchpath":
                searchpath = _parse_searchpath(line)
            else:
                rest.append(line)
        if config_dir is not None:
            folder = Path(config_dir).expanduser().resolve()
            if not folder.is_dir():
                raise ConfigError(f"--config-dir={config_dir} is not a folder")
            searchpath = [f"file://{folder}", *(searchpath or [])]
        return cls(rest, searchpath)

    def __enter__(self) -> Composer:
        from hydra import initialize_config_dir

        from labelbench.config import register_configs

        register_configs()
        self._context = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)

    def compose(self, overrides: Sequence[str]) -> Composed:
        """The composed config for `overrides`; raises what Hydra raises."""
        from hydra import compose

        key = tuple(overrides)
        if key not in self._cache:
            try:
                with warnings.catch_warnings():  # Hydra warns again when it composes for real
                    warnings.simplefilter("ignore")
                    cfg = compose(
                        "config", overrides=[*self.base, *overrides], return_hydra_config=True
                    )
            except Exception as e:
                self._cache[key] = e
                raise
            hydra = cfg.hydra
            choices = {
                str(k): None if v is None else str(v) for k, v in hydra.runtime.choices.items()
            }
            with open_dict(cfg):
                del cfg["hydra"]
            self._cache[key] = Composed(cfg, choices, hydra)
        found = self._cache[key]
        if isinstance(found, Exception):
            raise found
        return found

    def try_compose(self, overrides: Sequence[str]) -> Composed | None:
        try:
            return self.compose(overrides)
        except Exception:
            return None

    def options(self, group: str, groups: bool = False) -> list[str]:
        """The options (or, with `groups`, the sub-groups) of `group` as Hydra sees them,
        search path included."""
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.object_type import ObjectType

        kind = ObjectType.GROUP if groups else ObjectType.CONFIG
        key = (group, int(groups))
        if key not in self._options:
            loader = GlobalHydra.instance().config_loader()
            try:
                found = loader.get_group_options(
                    group, results_filter=kind, config_name="config", overrides=self.base
                )
            except Exception:
                found = []
            self._options[key] = sorted(found)
        return self._options[key]


def _parse_searchpath(line: str) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_override(line).value()
    except Exception as e:
        raise ConfigError(f"{line} cannot be parsed: {first_line(e)}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{line} must be a list of folders: hydra.searchpath=[file://./conf]")
    return value


def _hydra_list(items: Sequence[str]) -> str:
    """A list in Hydra's override grammar, each item quoted."""
    quoted = ("'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'" for s in items)
    return "[" + ",".join(quoted) + "]"


class _GroupLister:
    """What Hydra's override parser asks to expand `glob(...)`: a group's options."""

    def __init__(self, composer: Composer) -> None:
        self.composer = composer

    def get_group_options(self, group_name: str, results_filter: Any = None, **_: Any):
        return self.composer.options(group_name)


# --- single runs and sweeps ------------------------------------------------------------------


def check_run(composer: Composer, overrides: Sequence[str]) -> Composed:
    """Compose one run's overrides; ConfigError naming the first mistake, or a mandatory
    value left unset."""
    try:
        composed = composer.compose(overrides)
    except Exception as e:
        raise ConfigError(explain(e, overrides, composer)) from None
    missing = sorted(OmegaConf.missing_keys(composed.cfg))
    if missing:
        dirs = search_dirs(composed.hydra)
        raise ConfigError(missing_message(missing[0], composed.cfg, composed.choices, dirs))
    return composed


def check_sweep(composer: Composer, overrides: Sequence[str]) -> int:
    """Check every combination of the sweep's config-group choices (other keys at their
    first value); returns how many combinations were checked."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create(config_loader=_GroupLister(composer))  # type: ignore[arg-type]
    head = check_run(composer, _first_values(parser, overrides, composer))
    sweeper = head.hydra.get("sweeper") or {}
    # the basic sweeper's grid, or the cells the tuning sweeper makes studies of
    takes_params = sweeper.get("_target_") in (BASIC_SWEEPER, TUNE_SWEEPER)
    params = (sweeper.get("params") or {}) if takes_params else {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(overrides)
    slots = _slots(parser, lines, composer)
    groups = set(head.choices)
    values = [
        vals if _is_group(key, groups) else vals[:1]
        for key, vals in slots.items()
        if vals  # a sweep this checker cannot enumerate (interval ...): left out
    ]
    checked = 0
    for combination in _combinations(values):
        check_run(composer, combination)
        checked += 1
    return checked


def _first_values(parser: Any, overrides: Sequence[str], composer: Composer) -> list[str]:
    return [vals[0] for vals in _slots(parser, overrides, composer).values() if vals]


def _slots(parser: Any, lines: Sequence[str], composer: Composer) -> dict[str, list[str]]:
    """Key -> the override lines it takes in the sweep (the last mention of a key wins, at
    the place of its first, as Hydra's BasicSweeper has it)."""
    try:
        parsed = parser.parse_overrides(list(lines))
        slots: dict[str, list[str]] = {}
        for override in parsed:
            key = override.get_key_element()
            if not override.is_sweep_override():
                slots[key] = [override.input_line]
            elif override.is_hydra_override():
                raise ConfigError(f"{override.input_line}: Hydra's own settings cannot be swept")
            elif not override.is_discrete_sweep():
                slots[key] = []
            else:
                vals = list(dict.fromkeys(override.sweep_string_iterator()))
                if not vals:
                    group = override.key_or_group
                    raise ConfigError(
                        f"{override.input_line} selects no option of {group}; options: "
                        + ", ".join(composer.options(group))
                    )
                slots[key] = [f"{key}={v}" for v in vals]
        return slots
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(explain(e, lines, composer)) from None


def _is_group(key: str, groups: set[str]) -> bool:
    name = key.lstrip("+~")
    return name in groups or name.split("@", 1)[0] in groups or "/" in name.split("@", 1)[0]


def _combinations(values: list[list[str]]) -> Iterator[list[str]]:
    """Every combination, or past MAX_COMBINATIONS each value once with the others first."""
    if math.prod(len(v) for v in values) <= MAX_COMBINATIONS:
        for combination in itertools.product(*values):
            yield list(combination)
        return
    firsts = [v[0] for v in values]
    for i, vals in enumerate(values):
        for value in vals:
            yield [*firsts[:i], value, *firsts[i + 1 :]]


# --- one line for a composition error -------------------------------------------------------


def explain(error: Exception, overrides: Sequence[str], composer: Composer) -> str:
    """One line for what Hydra raised composing `overrides`: the mistake, named as a
    labelbench error names it, with the options or keys that would do."""
    try:
        found = _explain(error, list(overrides), composer)
    except Exception:  # never let the explanation hide the error itself
        found = None
    return found or first_line(error)


def first_line(error: BaseException) -> str:
    """The first line of an error that says what is wrong (Hydra's advice left out), with
    its cause's first line when the message alone does not say."""

    def lines(e: BaseException) -> list[str]:
        text = getattr(e, "message", None) or str(e)
        return [
            ln.strip()
            for ln in str(text).splitlines()
            if ln.strip() and not ln.strip().startswith(_ADVICE)
        ]

    own = lines(error)
    cause = error.__cause__
    why = lines(cause) if cause is not None else []
    if not own:
        return why[0] if why else type(error).__name__
    if why and own[0].endswith("."):
        return f"{own[0].rstrip('.')}: {why[0]}"
    return own[0]


def _explain(error: Exception, overrides: list[str], composer: Composer) -> str | None:
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if isinstance(error, MissingConfigException):
        return _unknown_option(error)
    if isinstance(error, OverrideParseException):
        return f"{error.override} cannot be parsed: {first_line(error)}"
    text = str(error)
    cause = error.__cause__
    ambiguous = re.match(r"Ambiguous value for argument '([^']+)'", text)
    if ambiguous:  # a sweep without -m
        return (
            f"{ambiguous.group(1)} gives several values; add -m to sweep over them, or write"
            " a list as key=[a,b] or one string as key='a,b'"
        )
    slot = re.match(r"Could not override '([^']+)'\. No match in the defaults list", text)
    if slot:
        return _unknown_slot(slot.group(1), overrides, composer)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and text.startswith(
        "Could not override"
    ):
        key = re.match(r"Could not override '([^']+)'", text)
        return _unknown_key(key.group(1) if key else str(cause.full_key), overrides, composer)
    if isinstance(cause, ValidationError) and text.startswith("Error merging override"):
        return _bad_type(cause, overrides)
    return None


def _unknown_option(error: Any) -> str | None:
    """'strategy=fixmach is not an option of strategy; did you mean fixmatch? options: ...'"""
    missing = error.missing_cfg_file
    if not missing or error.options is None or "/" not in missing:
        return None
    group, option = str(missing).rsplit("/", 1)
    options = sorted(str(o) for o in error.options)
    return f"{group}={option} is not an option of {group}" + _suggest(option, options, "options")


def _suggest(word: str, candidates: Sequence[str], label: str) -> str:
    """'; did you mean fixmatch? options: a, b, c' (the closest candidate, when one is close)."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    listed = f"{label}: {', '.join(candidates) or 'none'}"
    return f"; did you mean {close[0]}? {listed}" if close else f"; {listed}"


def _bad_type(cause: Any, overrides: list[str]) -> str | None:
    """'seed=abc must be an integer (seed: int)'"""
    from omegaconf import nodes

    key = str(cause.full_key)
    value = _value_of(key, overrides)
    if value is None:
        value = str(cause.value)
    node = None
    parent = cause.parent_node
    if isinstance(parent, DictConfig) and cause.key is not None:
        node = parent._get_node(cause.key, throw_on_missing_key=False)
    kinds = {
        nodes.BooleanNode: ("true or false", "bool"),
        nodes.IntegerNode: ("an integer", "int"),
        nodes.FloatNode: ("a number", "float"),
        nodes.StringNode: ("a string", "str"),
    }
    for kind, (words, name) in kinds.items():
        if isinstance(node, kind):
            return f"{key}={value} must be {words} ({key}: {name})"
    if isinstance(node, nodes.EnumNode):
        names = ", ".join(m.name for m in node.enum_type)
        return f"{key}={value} must be one of {names} ({key}: {node.enum_type.__name__})"
    return f"{key}={value}: {first_line(cause)}"


def _value_of(key: str, overrides: Sequence[str]) -> str | None:
    for line in reversed(overrides):
        name, eq, value = line.partition("=")
        if eq and name.lstrip("+~") == key:
            return value
    return None


def _without(key: str, overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]


def _group_overrides(overrides: Sequence[str], choices: Mapping[str, Any]) -> list[str]:
    """The overrides that choose config-group options."""
    return [o for o in overrides if _is_group(o.split("=", 1)[0], set(choices))]


def _base(key: str, overrides: list[str], composer: Composer) -> Composed | None:
    """The config as the command line composes it without the override of `key`."""
    rest = _without(key, overrides)
    found = composer.try_compose(rest)
    if found is None:
        found = composer.try_compose([o for o in rest if "=" in o and "." not in o.split("=")[0]])
    return found


def _package(choice: str) -> list[str]:
    """Where a group's option lands in the config: 'strategy/loss' -> strategy.loss,
    'strategy@strategy.inner' -> strategy.inner."""
    package = choice.split("@", 1)[1] if "@" in choice else choice.replace("/", ".")
    return [p for p in package.split(".") if p]


def _owner(choices: Mapping[str, str | None], parts: list[str]) -> tuple[str, str, int] | None:
    """(group choice key, option, depth of its package) of the group whose option holds the
    node at `parts`: the deepest one."""
    best = None
    for choice, option in choices.items():
        if option is None or choice.startswith("hydra/") or choice == "hydra":
            continue
        package = _package(choice)
        fits = bool(package) and parts[: len(package)] == package
        if fits and (best is None or len(package) > best[2]):
            best = (choice, option, len(package))
    return best


_ABSENT = object()


def _node_at(cfg: Any, parts: Sequence[str]) -> Any:
    """The node at `parts` (a missing '???' value counts as present), or _ABSENT."""
    node = cfg
    for part in parts:
        if not isinstance(node, DictConfig) or part not in list(node.keys()):
            return _ABSENT
        node = node._get_node(part)
    return node


def _keys(node: Any) -> list[str]:
    return sorted(str(k) for k in node if not str(k).startswith("_"))


def plural(group: str) -> str:
    """'regime' -> 'regimes', 'strategy' -> 'strategies', 'strategy/loss' -> 'losses'."""
    name = group.split("@", 1)[0].rsplit("/", 1)[-1]
    if name.endswith(("s", "sh", "ch", "x")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in tuple("aeiou"):
        return name[:-1] + "ies"
    return name + "s"


def _options_with(
    choice: str, has: Any, overrides: list[str], composer: Composer, base: Composed
) -> list[str]:
    """The options of group `choice` whose composed config satisfies `has(composed)`, the
    other groups as the command line chose them (nested ones left to each option)."""
    group = choice.split("@", 1)[0]
    keep = [
        o
        for o in _group_overrides(overrides, base.choices)
        if (name := o.split("=", 1)[0].lstrip("+~")) != choice
        and not name.startswith((f"{group}/", f"{group}@"))
    ]
    found = []
    for option in composer.options(group):
        composed = composer.try_compose([*keep, f"{choice}={option}"])
        if composed is not None and has(composed):
            found.append(option)
    return found


def _unknown_key(key: str, overrides: list[str], composer: Composer) -> str | None:
    """A key the config does not have: which options of its group have it, or the keys
    that are there ('did you mean')."""
    name = key.lstrip("+~")
    if name.split(".", 1)[0] == "hydra":  # Hydra's own settings: its message names the schema
        return None
    if "/" in name.split("@", 1)[0]:  # a config group that does not exist: strategy/lose
        parent = name.rsplit("/", 1)[0]
        subs = [f"{parent}/{s}" for s in composer.options(parent, groups=True)]
        if not subs:
            subs = [g for g in composer.options("", groups=True) if g != "hydra"]
        return f"{name} is not a config group" + _suggest(name, subs, "groups")
    base = _base(name, overrides, composer)
    if base is None:
        return None
    parts = name.split(".")
    depth = 0
    node: Any = base.cfg
    while depth < len(parts) and isinstance(node, DictConfig) and parts[depth] in list(node):
        node = node._get_node(parts[depth])
        depth += 1
    if depth == len(parts) or not isinstance(node, DictConfig):
        return None  # not a missing key after all: Hydra's own line says what
    missing = parts[depth]
    keys = _keys(node)
    if depth == 0:
        top = sorted({*keys, *(c for c in base.choices if "/" not in c and "@" not in c)})
        top = [k for k in top if k != "hydra"]
        return f"{missing} is not a config key or group" + _suggest(missing, top, "keys")
    owner = _owner(base.choices, parts[:depth])
    where = ".".join(parts[:depth])
    if owner is None:
        return f"{name} is not a key of {where}" + _suggest(missing, keys, "keys")
    choice, option, pkg_depth = owner
    label = f"{choice}={option}"
    if depth > pkg_depth:
        label = f"{where} ({label})"
    have = _options_with(
        choice,
        lambda c: _node_at(c.cfg, parts) is not _ABSENT,
        overrides,
        composer,
        base,
    )
    if have:
        relative = ".".join(parts[pkg_depth:])
        return f"{choice}={option} has no key {relative}; {plural(choice)} that have it: " + (
            ", ".join(have)
        )
    return f"{name} is not a key of {label}" + _suggest(missing, keys, "keys")


def _unknown_slot(slot: str, overrides: list[str], composer: Composer) -> str | None:
    """A nested config group the chosen option does not have: 'dataset=digits has no
    config group dataset/encoder; datasets that have it: ag_news, hub, ...'."""
    group = slot.split("@", 1)[0]
    if "/" not in group:
        return None
    parent = group.rsplit("/", 1)[0]
    base = _base(slot, overrides, composer)
    if base is None or base.choices.get(parent) is None:
        return None
    have = _options_with(parent, lambda c: slot in c.choices, overrides, composer, base)
    if not have:
        return None
    return (
        f"{parent}={base.choices[parent]} has no config group {slot}; "
        f"{plural(parent)} that have it: {', '.join(have)}"
    )


# --- mandatory values ------------------------------------------------------------------------


def missing_message(
    key: str,
    cfg: Any = None,
    choices: Mapping[str, str | None] | None = None,
    dirs: Sequence[Path] | None = None,
) -> str:
    """'regime.matrix has no value; allowed: K x K, row-stochastic ...; set it on the command
    line (regime.matrix=...)': what a mandatory key takes, from the comment on its YAML line
    (or KNOWN_VALUES). Without `choices`, Hydra's runtime choices when inside a Hydra job,
    else the group option whose `_target_` the config names."""
    try:
        allowed = allowed_values(key, cfg, choices, dirs)
    except Exception:  # a message, never a crash
        allowed = None
    hint = f"; allowed: {allowed}" if allowed else ""
    return f"{key} has no value{hint}; set it on the command line ({key}=...)"


def allowed_values(
    key: str,
    cfg: Any = None,
    choices: Mapping[str, str | None] | None = None,
    dirs: Sequence[Path] | None = None,
) -> str | None:
    """What the mandatory `key` takes, in words, or None when the config does not say."""
    if choices is None:
        choices, runtime_dirs = _hydra_runtime()
        dirs = dirs or runtime_dirs
    dirs = list(dirs or [CONF_DIR])
    parts = key.split(".")
    owner = _owner(choices, parts) if choices else None
    if owner is not None:
        choice, option, depth = owner
        candidates = [(choice.split("@", 1)[0], option)]
    elif cfg is not None and len(parts) > 1:
        depth = 1
        candidates = [(parts[0], stem) for stem in _options_by_target(dirs, parts[0], cfg)]
    else:
        return None
    relative = parts[depth:]
    if not relative:
        return None
    for group, option in candidates:
        for path in _option_files(dirs, group, option):
            comment = _comment(path, relative[-1])
            if comment:
                return comment
        known = KNOWN_VALUES.get((group, option, ".".join(relative)))
        if known:
            return known
    return None


def search_dirs(hydra: Any) -> list[Path]:
    """The local folders of a composed config's search path (conf/ and the user's)."""
    sources = OmegaConf.select(hydra, "runtime.config_sources", default=None) or []
    dirs = [Path(str(s.path)) for s in sources if str(s.get("schema")) == "file"]
    return dirs or [CONF_DIR]


def _hydra_runtime() -> tuple[dict[str, str | None] | None, list[Path] | None]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hydra = HydraConfig.get()
    choices = {str(k): None if v is None else str(v) for k, v in hydra.runtime.choices.items()}
    return choices, search_dirs(hydra)


def _options_by_target(dirs: Sequence[Path], group: str, cfg: Any) -> list[str]:
    """The options of `group` whose YAML names the `_target_` the config has."""
    node = cfg.get(group) if isinstance(cfg, DictConfig) else None
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not target:
        return []
    found = []
    for folder in dirs:
        for path in sorted((Path(folder) / group).glob("*.yaml")):
            match = re.search(r"^_target_:\s*(\S+)", path.read_text(), re.M)
            if match and match.group(1) == str(target):
                found.append(path.stem)
    return found


def _option_files(dirs: Sequence[Path], group: str, option: str, depth: int = 0) -> list[Path]:
    """conf/<group>/<option>.yaml (the first on the search path) and the options of the
    same group it extends through its defaults list."""
    for folder in dirs:
        path = Path(folder) / group / f"{option}.yaml"
        if path.is_file():
            break
    else:
        return []
    found = [path]
    if depth < 4:
        try:
            defaults = OmegaConf.load(path).get("defaults") or []
        except Exception:
            defaults = []
        for entry in defaults:
            if isinstance(entry, str) and entry != "_self_":
                found += _option_files(dirs, group, entry, depth + 1)
    return found


def _comment(path: Path, leaf: str) -> str | None:
    """The comment on the `leaf: ???` line of a YAML file."""
    pattern = re.compile(rf"^\s*{re.escape(leaf)}\s*:\s*(['\"]?)\?\?\?\1\s*#\s*(.*?)\s*$")
    for line in path.read_text().splitlines():
        match = pattern.match(line)
        if match and match.group(2):
            return match.group(2)
    return None
