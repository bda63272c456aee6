"""`labelbench` command-line tools over the record store. Imports neither torch nor lightning."""

from __future__ import annotations

import argparse
import sys


def _filters(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(
                f"labelbench: error: --filter {pair!r} must look like key=value (e.g. dataset=digits)"
            )
        out[key] = value
    return out


def cmd_summary(args: argparse.Namespace) -> int:
    from labelbench.results.store import RecordStore
    from labelbench.results.summary import matches, summary_table

    filters = _filters(args.filter)
    records, bad = [], []
    for path, item in RecordStore(args.results_dir).scan():
        if isinstance(item, Exception):
            bad.append(str(path))
        elif matches(item, filters):
            records.append(item)
    if not records:
        print(
            f"labelbench: no run records in {args.results_dir}/runs match {filters or 'anything'}",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.metric} over seeds: mean ± std (n); {len(records)} records from {args.results_dir}/runs"
    )
    print(summary_table(records, args.metric))
    if bad:
        print(
            f"skipped {len(bad)} unreadable record(s): {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelbench",
        description="Tools over labelbench run records. Runs are launched with `labelbench-run`.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="mean ± std of a metric per (strategy, budget)")
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
        help="e.g. dataset=digits regime=clean",
    )
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
