"""Fine-tuning a pretrained transformer on few labels (issue 21), on the shipped topics set
with the packaged all-MiniLM-L6-v2, 10 labels per class, seeds 0-2:

1. the learning rate of the fine-tuning recipe (experiment=finetune_topics) picked between
   USB's 5e-5 and 2e-4 on validation accuracy (supervised, seed 0), never on test;
2. the frozen linear probe (strategy=logreg on MiniLM's sentence embeddings) against
   supervised fine-tuning and FixMatch and UDA fine-tuning (token-level strong views,
   uratio 1);
3. the LabelBench flow: active learning whose proxy (a linear head on frozen MiniLM
   embeddings, strategy=probe) picks by margin, a fine-tuned MiniLM evaluated on the labels
   bought at 10, 30 and 50 labels (the proxy scored every round); against random order at
   the same budget (AUBC of both curves).

    .venv/bin/python scripts/bench/quality_finetune.py [--results results/bench-finetune]
        [--seeds 0,1,2] [--active-seeds 0,1] [--skip-active]

Records go to --results and sweeps skip runs already recorded there (an interrupted
benchmark resumes). Exits 1 if a target is missed or a run failed.

Targets: fine-tuned supervised >= the frozen probe (mean test accuracy); an SSL
strategy's fine-tuning (FixMatch or UDA, both at USB's text uratio 1) >= supervised
fine-tuning; the proxy-selected order's AUBC is stated against
random's (no target on it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson

from benchlib import ROOT, conclude, sweep
from labelbench.results.leaderboard import aubc

LRS = ("5e-05", "0.0002")  # USB's NLP lr, and one for 160x fewer steps


def records(results: Path) -> list[dict]:
    return [orjson.loads(p.read_bytes()) for p in sorted((results / "runs").glob("*.json"))]


def cfg_get(record: dict, dotted: str):
    node = record["config"]
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f} (n={len(values)})"


def active_args(query: str, lr: str, seeds: str) -> list[str]:
    """The LabelBench flow: a probe on frozen MiniLM embeddings selects, a fine-tuned
    MiniLM (the finetune_topics recipe, as the inner strategy) is scored every round."""
    inner = "strategy.inner"
    return [
        "dataset=topics", "dataset/encoder=tokens", "dataset.encoder.max_length=64",
        "model=hf", "model.head=mlp", "model.head_dropout=0.1",
        "strategy=active", f"strategy/query={query}", "+strategy@strategy.proxy=probe",
        "budget=total", "budget.total=50", "strategy.initial=10", "strategy.query_size=10",
        "strategy/augment@strategy.inner.augment=none",
        f"{inner}.optimizer._target_=torch.optim.AdamW", f"{inner}.optimizer.lr={lr}",
        f"{inner}.optimizer.weight_decay=5e-4", f"{inner}.no_decay_norm_bias=true",
        f"{inner}.layer_decay=0.65", "strategy/schedule@strategy.inner.schedule=cosine", f"{inner}.schedule.warmup=0.05",
        f"{inner}.max_steps=60", f"{inner}.eval_every=20", f"{inner}.batch_size=8",
        "strategy.evaluate=2",  # fine-tuned at 10, 30 and 50 labels; the proxy every round
        f"{inner}.patience=0", f"seed={seeds}", "logger=none",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "bench-finetune")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--skip-active", action="store_true")
    parser.add_argument(
        "--active-seeds", default=None, help="seeds of the active runs (default: --seeds)"
    )
    args, extra = parser.parse_known_args()
    results, seeds = args.results, args.seeds
    active_seeds = args.active_seeds or seeds
    t0 = time.perf_counter()
    codes = []

    # 1. the learning rate, on validation only
    base = ["experiment=finetune_topics", "logger=none"]
    codes.append(sweep([*base, "strategy=supervised", f"strategy.optimizer.lr={','.join(LRS)}",
                        "seed=0"], results, extra))  # fmt: skip
    rows = records(results)

    def lr_of(r: dict) -> str:
        return str(cfg_get(r, "strategy.optimizer.lr"))

    val = {
        lr: [r["metrics"].get("fit/best_val/acc") for r in rows
             if r["status"] == "ok" and r["choices"]["strategy"].startswith("supervised")
             and r["choices"]["model"] == "hf" and r["seed"] == 0
             and float(lr_of(r)) == float(lr)]
        for lr in LRS
    }  # fmt: skip
    best = max(LRS, key=lambda lr: (max(val[lr], default=-1), lr == LRS[0]))
    print(f"validation accuracy (supervised, seed 0) by lr: {val} -> lr {best}\n")

    # 2. frozen probe vs fine-tuning
    codes.append(sweep(["dataset=topics", "strategy=logreg", "budget=per_class",
                        "budget.per_class=10", f"seed={seeds}", "logger=none"], results, extra))  # fmt: skip
    codes.append(sweep([*base, "strategy=supervised", f"strategy.optimizer.lr={best}",
                        f"seed={seeds}"], results, extra))  # fmt: skip
    codes.append(sweep([*base, "strategy=fixmatch", "strategy.mu=1",
                        f"strategy.optimizer.lr={best}", f"seed={seeds}"], results, extra))  # fmt: skip
    codes.append(sweep([*base, "strategy=uda", "strategy.mu=1",
                        f"strategy.optimizer.lr={best}", f"seed={seeds}"], results, extra))  # fmt: skip
    if not args.skip_active:
        for query in ("margin", "random"):
            codes.append(sweep(active_args(query, best, active_seeds), results, extra))
    wall = time.perf_counter() - t0

    rows = [r for r in records(results) if r["status"] == "ok"]
    wanted = {int(s) for s in seeds.split(",")}

    def accs(strategy: str, model: str, lr: str | None = None) -> list[float]:
        return [
            r["metrics"]["test/acc"] for r in rows
            if r["choices"]["strategy"].split("[")[0] == strategy and r["choices"]["model"] == model
            and r["choices"]["budget"].startswith("per_class") and r["seed"] in wanted
            and (lr is None or float(lr_of(r)) == float(lr))
        ]  # fmt: skip

    probe = accs("logreg", "–")  # logreg trains no network: no model in its row
    sup = accs("supervised", "hf", best)
    fix = accs("fixmatch", "hf", best)
    uda = accs("uda", "hf", best)
    print("topics, 10 labels per class (50), mean test accuracy ± std over seeds:\n")
    print("| method | test/acc |")
    print("|---|---|")
    print(f"| frozen MiniLM embeddings + logistic regression (linear probe) | {mean_std(probe)} |")
    print(f"| MiniLM fine-tuned, supervised (lr {best}) | {mean_std(sup)} |")
    print(f"| MiniLM fine-tuned, FixMatch (uratio 1, token views) | {mean_std(fix)} |")
    print(f"| MiniLM fine-tuned, UDA (uratio 1, token views) | {mean_std(uda)} |")
    verdicts = []
    if probe and sup:
        m_p, m_s = statistics.mean(probe), statistics.mean(sup)
        verdicts.append(("fine-tuned MiniLM >= frozen linear probe", m_s >= m_p,
                         f"{m_s:.3f} vs {m_p:.3f}"))  # fmt: skip
    ssl = {name: statistics.mean(v) for name, v in (("FixMatch", fix), ("UDA", uda)) if v}
    if sup and ssl:
        m_s = statistics.mean(sup)
        verdicts.append(("an SSL strategy's fine-tuning >= supervised fine-tuning",
                         max(ssl.values()) >= m_s,
                         ", ".join(f"{k} {v:.3f}" for k, v in ssl.items()) + f" vs {m_s:.3f}"))  # fmt: skip

    if not args.skip_active:
        print("\nLabelBench flow: proxy = linear head on frozen MiniLM embeddings (strategy=probe),"
              " evaluated = MiniLM fine-tuned on the labels bought (10, 30, 50):\n")  # fmt: skip
        print("| query | rounds (labels) | fine-tuned AUBC | proxy AUBC | final fine-tuned acc |")
        print("|---|---|---|---|---|")
        areas: dict[str, list[float]] = {}
        for query in ("margin", "random"):
            runs = [r for r in rows if r["choices"]["strategy"].startswith("active")
                    and cfg_get(r, "strategy.query._target_", ).endswith(
                        "Random" if query == "random" else "Margin")
                    and r["seed"] in {int(v) for v in active_seeds.split(",")}]  # fmt: skip
            inner = [aubc([(p["labels"], p["test/acc"]) for p in r["curve"]]) for r in runs]
            proxy = [aubc([(p["labels"], p["test/acc"]) for p in r.get("proxy_curve", [])])
                     for r in runs]  # fmt: skip
            areas[query] = inner
            labels = sorted({p["labels"] for r in runs for p in r["curve"]})
            print(f"| {query} | {labels} | {mean_std(inner)} |"
                  f" {mean_std([p for p in proxy if p is not None])} |"
                  f" {mean_std([r['metrics']['test/acc'] for r in runs])} |")  # fmt: skip
        if areas.get("margin") and areas.get("random"):
            m, r = statistics.mean(areas["margin"]), statistics.mean(areas["random"])
            print(f"\nproxy-selected (margin) AUBC {m:.4f} vs random order {r:.4f}:"
                  f" {m - r:+.4f}")  # fmt: skip
    print()
    conclude(verdicts, records(results), results, wall, codes)


if __name__ == "__main__":
    main()
