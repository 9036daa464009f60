"""What mined rewrites change, measured by replay on held-out simulated residents and days.

Mines a rewrite table on a training world, then replays a held-out world (other homes, later days, same
recogniser and sound-alike confusions: ``first_home`` and ``start`` of the same seed) once without and once
with the table in front of NLU, and compares paired turns on the simulator's ground truth: win/loss ratio,
defect rate overall and on triggered requests, coverage, precision against the true intent, goal success.
The absorbing-chain miner (``absorption``, the default, and ``eventual``, which also judges targets by their
absorption probability) runs beside a simple baseline (``frequency``: the most frequent follow-up that
succeeded more often, no chain) on the same worlds.

    python benchmarks/rewrite_replay.py --model <saved fast NLU>                 # held-out test world
    python benchmarks/rewrite_replay.py --model <saved fast NLU> --validation    # the world used for tuning

``--labels model`` labels the training logs with the defect model (trained on the training world's truth,
``homeloop.selflearn.defects``) instead of the mining rules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time

import torch

from homeloop.data.lake import Lake
from homeloop.datasets import load_hwu64
from homeloop.nlu import IntentSlotModel, load_model
from homeloop.selflearn.replay import compare_outcomes
from homeloop.selflearn.rewrites import RewriteMiner
from homeloop.world import WorldConfig, simulate

GOALS = {"win_loss_ratio": 12.0, "relative_defect_reduction_triggered": 0.35}


def _overlap(a: str, b: str) -> float:
    x, y = set(a.split()), set(b.split())
    return len(x & y) / len(x | y) if x | y else 1.0


def _subsets(per_rewrite: list[dict]) -> dict:
    """Wins, losses and defect reduction on subsets of the triggered requests, to see where wins come from.

    ``device_control``: requests whose true intent switches a device (the simulator judges them on the device
    and action). ``low_overlap``: rewrites whose source and target share under 20% of their words; in this
    simulator most are information requests whose rephrase is another sentence of the same intent, judged
    on the intent alone.
    """
    groups = {
        "device_control": [r for r in per_rewrite if (r.get("true_intent") or "").startswith("iot_")],
        "other_intents": [r for r in per_rewrite if not (r.get("true_intent") or "").startswith("iot_")],
        "low_overlap": [r for r in per_rewrite if _overlap(r["source"], r["target"]) < 0.2],
        "word_overlap_at_least_0.2": [r for r in per_rewrite if _overlap(r["source"], r["target"]) >= 0.2],
    }
    out = {}
    for name, rows in groups.items():
        fired = sum(r["fired"] for r in rows)
        wins, losses = sum(r["wins"] for r in rows), sum(r["losses"] for r in rows)
        before, after = sum(r["defects_without"] for r in rows), sum(r["defects_with"] for r in rows)
        out[name] = {
            "rewrites_fired": sum(1 for r in rows if r["fired"]),
            "triggered": fired,
            "wins": wins,
            "losses": losses,
            "win_loss_ratio": (wins / losses) if losses else (float("inf") if wins else None),
            "defect_rate_triggered_without": round(before / fired, 4) if fired else None,
            "defect_rate_triggered_with": round(after / fired, 4) if fired else None,
            "relative_defect_reduction_triggered": round((before - after) / before, 4) if before else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a saved NLU model folder (default: train the fast encoder first)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--homes", type=int, default=120, help="training homes (0 .. homes-1)")
    ap.add_argument("--days", type=int, default=14, help="training days from 2026-03-02")
    ap.add_argument("--test-homes", type=int, default=60)
    ap.add_argument("--test-days", type=int, default=14)
    ap.add_argument("--validation", action="store_true", help="replay the validation world instead of the test one")
    ap.add_argument("--labels", choices=("rules", "model"), default="rules")
    ap.add_argument("--min-support", type=int, default=3)
    ap.add_argument("--min-improvement", type=float, default=0.3)
    ap.add_argument("--examples", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    nlu = load_model(args.model) if args.model else IntentSlotModel(encoder="fast", seed=0).fit(load_hwu64("train"))
    train = WorldConfig(homes=args.homes, days=args.days, seed=args.seed)
    if args.validation:  # other homes, the same days
        held_out = WorldConfig(homes=args.test_homes, days=args.test_days, seed=args.seed, first_home=500)
    else:  # other homes and later days
        held_out = WorldConfig(
            homes=args.test_homes,
            days=args.test_days,
            seed=args.seed,
            first_home=1000,
            start=train.start + dt.timedelta(days=args.days + 21),
        )
    with tempfile.TemporaryDirectory(prefix="homeloop-replay-") as tmp:
        lake = Lake(tmp)
        sim = simulate(train, nlu=nlu)
        sim.write(lake, "train")
        labels = "rules"
        label_figures = {}
        if args.labels == "model":
            from homeloop.selflearn.defects import label_defects, train_defect_model_on_truth

            model, label_figures = train_defect_model_on_truth(lake, "train", seed=args.seed)
            label_defects(lake, "train", model=model)
            labels = "defect_labels"
        tables, mining = {}, {}
        for name in ("absorption", "eventual", "frequency"):
            miner = RewriteMiner(
                target_scorer=name, labels=labels, min_support=args.min_support, min_improvement=args.min_improvement
            ).fit(lake, "train")
            tables[name], mining[name] = miner.table_, miner.figures_
    without = simulate(held_out, nlu=nlu)
    results = {}
    for name, table in tables.items():
        replay = compare_outcomes(without.tables, simulate(held_out, nlu=nlu, rewriter=table).tables, table)
        results[name] = replay
    out = {
        "train_world": {"homes": train.homes, "days": train.days, "seed": train.seed, "turns": sim.figures["turns"]},
        "held_out_world": {
            "first_home": held_out.first_home,
            "homes": held_out.homes,
            "start": str(held_out.start),
            "days": held_out.days,
            "turns": without.figures["turns"],
            "split": "validation" if args.validation else "test",
        },
        "labels": labels,
        "defect_model_held_out": {k: v for k, v in label_figures.items() if not isinstance(v, dict)},
        "methods": {},
        "seconds": None,
    }
    for name, replay in results.items():
        f = replay.figures
        out["methods"][name] = {
            "rewrites": len(tables[name]),
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()},
            "goals_met": {k: (f[k] is not None and f[k] >= goal) for k, goal in GOALS.items()},
            "mining_seconds": mining[name]["seconds"],
        }
    for name, replay in results.items():
        out["methods"][name]["subsets"] = _subsets(replay.per_rewrite)
    best = results["absorption"].per_rewrite
    out["examples"] = sorted(best, key=lambda r: (-r["fired"], -r["support"]))[: args.examples]
    out["worst"] = [r for r in sorted(best, key=lambda r: -r["losses"]) if r["losses"]][:10]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
