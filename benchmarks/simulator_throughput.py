"""Simulator throughput: turns per second with the NLU cached per distinct text, beside the same world
re-running the NLU for every turn (the straightforward way), in one run; prints the ratio.

Both runs stream the world into a temporary lake chunk by chunk, as ``homeloop simulate`` does, so
the time includes writing Parquet and peak memory stays that of one chunk of homes.

    python benchmarks/simulator_throughput.py --homes 200 --days 14          # side by side
    python benchmarks/simulator_throughput.py --homes 1400 --days 30 --cached-only --workers 2   # ~1M turns

The assistant's NLU is the real fast-encoder model, trained once on HWU64's train split first
(its training time is not counted).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import torch

from homeloop.data.lake import Lake
from homeloop.datasets import load_hwu64
from homeloop.nlu import IntentSlotModel, load_model
from homeloop.world import WorldConfig, simulate_to_lake


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=200)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cached-only", action="store_true", help="skip the uncached baseline (for big runs)")
    ap.add_argument("--model", help="a saved NLU model folder to use instead of training one")
    ap.add_argument("--chunk-homes", type=int, default=200, help="homes lived (and held in memory) at a time")
    ap.add_argument("--workers", type=int, default=1, help="processes living chunks of homes side by side")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model) if args.model else IntentSlotModel(encoder="fast", seed=0).fit(load_hwu64("train"))
    config = WorldConfig(homes=args.homes, days=args.days, seed=args.seed)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(tmp)
        for name, cache in (("cached", True), ("uncached", False)):
            if name == "uncached" and args.cached_only:
                continue
            t0 = time.perf_counter()
            figures = simulate_to_lake(
                config, lake, name, nlu=model, cache_nlu=cache, chunk_homes=args.chunk_homes, workers=args.workers
            )
            seconds = time.perf_counter() - t0
            runs[name] = {
                "turns": figures["turns"],
                "seconds": round(seconds, 2),
                "turns_per_second": round(figures["turns"] / seconds, 1),
                "nlu_texts_read": figures["nlu_texts_read"],
            }
        if "uncached" in runs:
            same = lake.read("cached", "truth_turns", columns=["turn_id", "success"]).sort_by("turn_id")
            other = lake.read("uncached", "truth_turns", columns=["turn_id", "success"]).sort_by("turn_id")
            assert same.equals(other), "the cache changed outcomes"
    out = {
        "homes": args.homes,
        "days": args.days,
        "runs": runs,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_mb_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    if "uncached" in runs:
        out["speedup_cached_over_uncached"] = round(runs["uncached"]["seconds"] / runs["cached"]["seconds"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
