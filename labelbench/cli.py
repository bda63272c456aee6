"""`labelbench` command-line tools over the record store. Imports neither torch nor lightning."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class CLIError(Exception):
    """Bad input: printed as one `labelbench: error: ...` line, exit code 2."""


class RunsFailed(Exception):
    """Some runs of a sweep failed (their records say why): one line, exit code 1."""


def _filters(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--filter {pair!r} must look like key=value (e.g. dataset=digits)")
        out[key] = value
    return out


def _fields(text: str, flag: str) -> tuple[str, ...]:
    """Comma-separated fields or config keys; the keys are checked against the records."""
    from labelbench.results.leaderboard import FIELDS, RUN_FIELDS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise CLIError(
            f"{flag} {text!r}: empty is not a field; allowed: {', '.join(FIELDS + RUN_FIELDS)},"
            " or any config key (e.g. strategy.max_steps)"
        )
    return names


def check_out(out: str) -> Path:
    """FILE as a path that can be written: not a folder, under a folder (made if missing)
    that is writable; anything else is bad input, one line naming it."""
    import os

    path = Path(out)
    if path.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise CLIError(f"--out {out}: {parent} is a file, not a folder")
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: cannot write there ({parent} is not a writable folder)")
    return path


def write_output(text: str | bytes, out: str | None) -> None:
    """stdout, or FILE written atomically (never half a file; a missing folder is made). A
    file that cannot be written (read-only place, a file where a folder should be) is bad
    input: one line naming it."""
    if out is None:
        if isinstance(text, bytes):
            raise CLIError("this output is binary: give --out FILE")
        sys.stdout.write(text)
        return
    path = check_out(out)
    from labelbench.results.atomic import atomic_write

    try:
        atomic_write(path, text)
    except OSError as e:  # read-only place, no permission, disk full ...
        raise CLIError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    print(f"wrote {path}", file=sys.stderr)


def load_boards(args: argparse.Namespace):
    """Rows from the store, problems reported, leaderboards built from the CLI arguments."""
    from labelbench.results.leaderboard import LeaderboardError, build_leaderboards
    from labelbench.results.table import load_rows

    results = Path(args.results_dir)
    if not (results / "runs").is_dir():
        raise CLIError(f"{results} has no runs/ folder of run records (run labelbench-run first)")
    loaded = load_rows(results, use_cache=not args.no_cache)
    if (note := loaded.problem_summary()) is not None:
        print(f"labelbench: {note}", file=sys.stderr)
    try:
        boards = build_leaderboards(
            loaded.rows,
            metric=args.metric,
            row_fields=_fields(args.rows, "--rows"),
            col_fields=_fields(args.cols, "--cols"),
            baseline=args.baseline or None,
            filters=_filters(args.filter),
            target_drop=args.target_drop,
        )
    except LeaderboardError as e:
        raise CLIError(str(e)) from None
    if not boards:
        raise CLIError(
            f"no run records in {results}/runs match {_filters(args.filter) or 'anything'}"
        )
    if args.baseline and not any(b.baseline for b in boards):
        print(
            f"labelbench: baseline {args.baseline!r} is in no table; no paired tests",
            file=sys.stderr,
        )
    return loaded, boards


def published_comparer(args: argparse.Namespace):
    """With --published: a function putting the published values beside some boards' cells
    and returning (published cells no table shows, notes); None without it."""
    if args.published is None:
        return None
    from labelbench.results.published import PublishedError, compare, load_published, resolve_paths

    for flag, value in (("--tolerance", args.tolerance), ("--tolerance-sd", args.tolerance_sd)):
        if not value >= 0:
            raise CLIError(f"{flag} {value:g}: must be a number >= 0")
    try:
        published = load_published(resolve_paths(args.published))
    except PublishedError as e:
        raise CLIError(str(e)) from None
    filters = _filters(args.filter)

    def comparer(boards: list) -> tuple[list, list[str]]:
        found = compare(boards, published, args.tolerance, args.tolerance_sd, filters)
        return found.not_run, found.notes

    return comparer


def compare_published(args: argparse.Namespace, boards: list, comparer=None) -> list:
    """With --published: the published values put beside the boards' cells (by `comparer`,
    made from `args` if not given); returns the published cells no table shows. Notes go
    to stderr."""
    comparer = comparer or published_comparer(args)
    if comparer is None:
        return []
    not_run, notes = comparer(boards)
    for note in notes:
        print(f"labelbench: {note}", file=sys.stderr)
    return not_run


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from labelbench.results.render import RENDERERS

    _, boards = load_boards(args)
    not_run = compare_published(args, boards)
    if not_run and args.format in ("csv", "json"):  # one line per cell: they have no place
        print(
            f"labelbench: published, not run: {len(not_run)} published cell(s) match no cell of"
            " these tables (--format md lists them)",
            file=sys.stderr,
        )
    write_output(RENDERERS[args.format](boards, not_run=not_run), args.out)


def cmd_dashboard(args: argparse.Namespace) -> None:
    from labelbench.results import dashboard

    check_out(args.out)  # before the build, which takes a while over a large store
    loaded, boards = load_boards(args)
    comparer = published_comparer(args)
    not_run = compare_published(args, boards, comparer)
    configs = dashboard.ConfigCache()
    metrics, notes = dashboard.boards_per_metric(
        loaded.rows,
        (args.metric, boards, not_run),
        row_fields=_fields(args.rows, "--rows"),
        col_fields=_fields(args.cols, "--cols"),
        baseline=args.baseline or None,
        filters=_filters(args.filter),
        target_drop=args.target_drop,
        read_configs=configs,
        # the other metrics' comparisons, quietly: their notes are the first metric's
        compare=(lambda built: comparer(built)[0]) if comparer else None,
    )
    for note in notes:
        print(f"labelbench: {note}", file=sys.stderr)
    page = dashboard.render_dashboard(
        loaded, boards, filters=_filters(args.filter), not_run=not_run, metrics=metrics,
        configs=configs,
    )  # fmt: skip
    write_output(page, args.out)


def cmd_plot(args: argparse.Namespace) -> None:
    from labelbench.results.plot import PlotError, check_format, render_figure

    try:
        fmt = check_format(args.out)  # before reading any record
        _, boards = load_boards(args)
        show = [n.strip() for n in args.show.split(",") if n.strip()] if args.show else []
        data = render_figure(boards, args.kind, fmt, show=show)
    except PlotError as e:
        raise CLIError(str(e)) from None
    write_output(data, args.out)


def cmd_reproduce(args: argparse.Namespace) -> None:
    from labelbench import presets
    from labelbench.config import ConfigError

    try:
        presets.get(args.preset)
    except presets.PresetError as e:
        raise CLIError(str(e)) from None
    for line in args.overrides:
        if line.split("=", 1)[0].lstrip("+~") in ("paths.results_dir", "experiment"):
            raise CLIError(f"{line}: reproduce sets this itself (use --results for the store)")
    store = Path(args.results or Path("results") / "reproduce" / args.preset).resolve()
    try:
        if not presets.expand(args.preset, args.overrides):
            raise CLIError(
                f"{' '.join(args.overrides)} leaves no run of {args.preset}"
                f" (its sweeps: {'; '.join(presets.commands(args.preset))})"
            )
    except presets.PresetError as e:
        raise CLIError(str(e)) from None
    if args.dry_run:
        try:
            runs = presets.plan(args.preset, store, args.overrides)
        except (ConfigError, presets.PresetError) as e:
            raise CLIError(str(e)) from None
        sys.stdout.write(presets.dry_run_text(args.preset, runs, args.overrides))
        return
    codes = presets.run_sweeps(args.preset, store, args.overrides)
    if 2 in codes:  # a command line labelbench-run refused (its line is above): no page
        raise CLIError(f"{args.preset}: a sweep's command line was refused; nothing written")
    try:
        text = presets.page(args.preset, store, args.overrides)
    except presets.PresetError as e:
        raise CLIError(str(e)) from None
    write_output(text, args.out or str(Path("results") / "reproduce" / f"{args.preset}.md"))
    if any(codes):
        raise RunsFailed(f"{args.preset}: some runs failed (exit codes {codes}); see the page")


def cmd_status(args: argparse.Namespace) -> None:
    from labelbench.results import status

    if args.failures < 0:
        raise CLIError(f"--failures {args.failures}: must be a count >= 0")
    if args.watch is not None and not (args.watch > 0 and args.watch < float("inf")):
        raise CLIError(f"--watch {args.watch:g}: must be a number of seconds > 0")

    def show(indent: int | None = 1) -> str:
        try:
            found = status.gather(
                args.results_dir, args.sweep, failures=args.failures, use_cache=not args.no_cache
            )
        except status.StatusError as e:
            raise CLIError(str(e)) from None
        if args.format == "json":
            return status.render_json(found, indent=indent)
        return status.render_text(found)

    if args.watch is None:
        sys.stdout.write(show())
        return
    # JSON: one line per refresh, for scripts that read it as it comes
    status.watch(lambda: show(None), args.watch, args.max_refreshes, clear=None)


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (give RESULTS_DIR before --watch)"
        ) from None


def _add_status_parser(sub) -> None:
    p = sub.add_parser(
        "status",
        help="where a sweep stands: ok, failed, running and not started runs, stale"
        " heartbeats (killed or lost runs), the latest failures and an ETA",
        description="Read a results folder while its sweep runs or after: counts of ok and\n"
        "failed records, runs running (a fresh heartbeat in running/, or a checkpoint\n"
        "written in the last 10 minutes), heartbeats that stopped (killed or lost?), jobs\n"
        "of the Hydra sweep folder not started yet, the latest failures with their errors,\n"
        "and an ETA: the mean duration of finished runs x the runs left / the runs running.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "results_dir", nargs="?", default="results", help="the sweep's results folder"
        " (default: results)",
    )  # fmt: skip
    p.add_argument(
        "--sweep",
        metavar="DIR",
        help="the Hydra sweep folder, holding multirun.yaml (default: RESULTS_DIR/hydra/sweep)",
    )
    p.add_argument(
        "--failures", type=int, default=5, metavar="N", help="latest failures shown (default: 5)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--watch",
        nargs="?",
        type=_seconds,
        const=5.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 5) until Ctrl-C; with --format json, one line each"
        " time. Give RESULTS_DIR first",
    )
    p.add_argument("--max-refreshes", type=int, help=argparse.SUPPRESS)  # tests: --watch ends
    p.add_argument(
        "--no-cache", action="store_true", help="parse every record, ignoring results/.cache"
    )
    p.set_defaults(func=cmd_status)


def cmd_tune(args: argparse.Namespace) -> None:
    """`labelbench-run -m hydra/sweeper=tune ...`, in this process (its exit code is ours)."""
    from labelbench.run import main as run_main

    sys.argv = ["labelbench-run", "-m", "hydra/sweeper=tune", *args.overrides]
    run_main()


def _listing(title: str, entries: dict[str, str]) -> str:
    """'title:' then one '  name  what it does' line per entry, for a parser's epilog."""
    width = max(map(len, entries)) + 1
    return f"{title}:\n" + "\n".join(f"  {k:{width}} {v}" for k, v in entries.items())


# Kept here, not read from labelbench.tune: `labelbench --help` stays light.
TUNE_SETTINGS = {
    "trials": "trials per study, the same for every method (default 20)",
    "seeds": "evaluation seeds the best settings re-run on (default [0,1,2])",
    "untuned": "also run the default settings on those seeds and labels (default true)",
    "objective": "a validation metric: val/acc (default), val/nll, val/macro_f1 ...",
    "tie_break": "of trials equal on the objective, the best on this (default val/nll)",
    "sampler": "tpe (default) or random; seeded by hydra.sweeper.seed (default 0)",
    "parallel": "trials launched together per study, e.g. on SLURM (default 1)",
    "val_paid": "validation labels come out of the label budget (default true)",
    "space": "a search-space file (default: conf/search/<strategy>.yaml)",
}


def _add_tune_parser(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="tune hyper-parameters on validation labels only, the same number of trials for"
        " every method, then re-run the best settings over the seeds",
        description="labelbench-run -m hydra/sweeper=tune OVERRIDES: one study per cell of the\n"
        "sweep (strategy=supervised,fixmatch: two), each N trials drawn by a seeded sampler from\n"
        "conf/search/<strategy>.yaml and scored on the run's validation labels (paid from the\n"
        "budget by default; the test split is never read). The best trial's settings then run\n"
        "over the evaluation seeds as '<strategy>[tuned]' rows, which the leaderboard shows\n"
        "with the tuning cost. Trials are records: rerun the same command to resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_listing("settings (hydra.sweeper.KEY=VALUE)", TUNE_SETTINGS)
        + "\n\nexample:\n  labelbench tune strategy=supervised,fixmatch budget.total=40"
        " hydra.sweeper.trials=20 launcher=slurm",
    )
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        metavar="KEY=VALUE",
        help="labelbench-run overrides: the cells (lists sweep them), the launcher, settings",
    )
    p.set_defaults(func=cmd_tune)


def _add_board_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "results_dir", nargs="?", default="results", help="folder holding runs/ (default: results)"
    )
    p.add_argument(
        "--metric", default="test/acc", help="metric key in the records (default: test/acc)"
    )
    p.add_argument(
        "--filter",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="a field (dataset, model, regime, budget, strategy, seed, status) or any key of"
        " the runs' resolved configs, e.g. dataset=digits regime=clean strategy.max_steps=200;"
        " config values compare as YAML reads them (200, true, null, [256])",
    )
    p.add_argument(
        "--rows",
        default="strategy",
        help="fields or config keys for rows, e.g. strategy,strategy.max_steps (default: strategy)",
    )
    p.add_argument(
        "--cols",
        default="regime,budget",
        help="fields or config keys for columns (default: regime,budget)",
    )
    p.add_argument(
        "--baseline",
        default="supervised",
        help="row for paired tests; '' for none (default: supervised)",
    )
    p.add_argument(
        "--target-drop",
        type=float,
        default=0.01,
        help="'labels to reach target': within this of the baseline's largest budget (default: 0.01)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="parse every record, ignoring results/.cache"
    )


def _add_published_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--published",
        nargs="*",
        metavar="PATH",
        help="put the published numbers beside ours: CSV files or folders of them (no PATH:"
        " the project's results/published/). A cell with a published value shows 'pub v ± s"
        " Δd' (d = ours - published), flagged ⚑ when |d| > --tolerance-sd x the published"
        " spread, or > --tolerance where the source gives none. It takes the words after it:"
        " give RESULTS_DIR first",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="with --published: the largest |ours - published| in the metric's units where"
        " the source gives no spread (default: 0.02, 2 points of accuracy)",
    )
    p.add_argument(
        "--tolerance-sd",
        type=float,
        default=2.0,
        help="with --published: the largest |ours - published| in multiples of the source's"
        " spread (std), where it gives one (default: 2.0)",
    )


# Kept here, not imported from results.plot: `labelbench --help` stays light.
PLOT_KINDS = {
    "curves": "metric vs labels per row with ± sd bands, a panel per table and regime",
    "grid": "a panel per regime (column group), the y-axis shared within each table",
    "pareto": "mean metric vs mean label cost per cell, the Pareto front highlighted",
}


def _add_plot_parser(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="figures for papers (PDF, SVG, PNG): budget curves, a regime grid, the"
        " label-cost Pareto front",
        description="Figures for papers from the leaderboard's tables, with its selection\n"
        "options: a colour-blind-safe palette (Okabe-Ito) with markers and line styles that\n"
        "survive grayscale, 8 pt text at one column (3.3 in; one panel) or full width (7 in),\n"
        "the baseline in black, and the same bytes for the same records.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_listing("kinds", PLOT_KINDS),
    )
    _add_board_options(p)
    p.add_argument("--kind", choices=tuple(PLOT_KINDS), default="curves", help="(default: curves)")
    p.add_argument(
        "--show",
        metavar="ROW,ROW",
        default="",
        help="the rows to draw, by their leaderboard names (e.g. supervised,fixmatch);"
        " default: all",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="the figure; its suffix names the format: .pdf, .svg or .png",
    )
    p.set_defaults(func=cmd_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelbench",
        description="Tools over labelbench run records (runs are launched with `labelbench-run`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "leaderboard", help="tables of a metric across strategies, regimes and budgets"
    )
    _add_board_options(p)
    _add_published_options(p)
    p.add_argument("--format", choices=("md", "csv", "tex", "json", "html"), default="md")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_leaderboard)
    p = sub.add_parser(
        "dashboard",
        help="one self-contained, interactive HTML page (opens from disk): leaderboards of"
        " every metric, budget curves, realised label statistics, compute and label cost,"
        " each cell's runs and configs",
    )
    _add_board_options(p)
    _add_published_options(p)
    p.add_argument(
        "--out",
        metavar="FILE",
        default="results/dashboard.html",
        help="(default: results/dashboard.html)",
    )
    p.set_defaults(func=cmd_dashboard)
    _add_plot_parser(sub)
    p = sub.add_parser(
        "reproduce",
        help="run an experiment preset's sweeps, then write its page: our table beside the"
        " published numbers",
        description="Run every sweep of an experiment preset (conf/experiment/PRESET.yaml) on"
        " any launcher, resumable (runs already recorded are skipped), then write"
        " results/reproduce/PRESET.md: the leaderboard with the published numbers"
        " (results/published/PRESET.csv) beside ours, the date, the commit and the commands.",
    )
    p.add_argument(
        "preset", help="an experiment preset, e.g. classic_ssl_cifar10, repro_ssl_digits"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="overrides for every labelbench-run sweep (launcher=slurm trainer=gpu); a key the"
        " preset sweeps narrows it to the values given (strategy=fixmatch seed=0)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs (done or to do), the commands and the compute they need; run nothing",
    )
    p.add_argument(
        "--results",
        metavar="DIR",
        help="record store of the runs (default: results/reproduce/PRESET)",
    )
    p.add_argument("--out", metavar="FILE", help="the page (default: results/reproduce/PRESET.md)")
    p.set_defaults(func=cmd_reproduce)
    _add_tune_parser(sub)
    _add_status_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CLIError as e:
        print(f"labelbench: error: {e}", file=sys.stderr)
        return 2
    except RunsFailed as e:
        print(f"labelbench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
