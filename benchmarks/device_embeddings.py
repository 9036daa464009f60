"""Smart-home benchmark: device-state prediction vs baselines, archetypes, rooms, home state, hunches.

Everything is measured on held-out data: later days for state prediction, home state and
hunches; each device in turn (name and room hidden) for rooms. Real houses A and D
(van Kasteren, MIT) and a simulated neighbourhood with ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/device_embeddings.py --homes 60 --days 28 --json

Writes the report section's figures into ``--figures`` when given. ``--home-state-only`` runs
just the home-state comparison (the simulated homes' state model is still trained, for the
device embeddings); with ``--workspace`` an existing simulated world is reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace", default=None, help="Workspace (default: a temporary one; the NLU is cached there)"
    )
    parser.add_argument("--homes", type=int, default=60)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=1, help="Seed of the simulated world")
    parser.add_argument("--text-encoder", default="minilm", choices=["minilm", "hashing"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples-per-device", type=int, default=600)
    parser.add_argument(
        "--houses-ensemble", type=int, default=5, help="State models averaged for the real houses (default 5)"
    )
    parser.add_argument(
        "--no-refit", action="store_true", help="Keep the best-validation-epoch weights instead of training again"
    )
    parser.add_argument("--no-sim", action="store_true", help="Real houses only")
    parser.add_argument(
        "--home-state-only",
        action="store_true",
        help="Simulated homes' state model and home state only (no real houses, rooms, archetypes or hunches)",
    )
    parser.add_argument("--figures", default=None, help="Folder for the report section's figures")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from homeloop.adapters.houses import ingest_houses
    from homeloop.data.lake import Lake
    from homeloop.demo.home import home_experiments, home_report_section, public_results
    from homeloop.workspace import Workspace

    root = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="homeloop-bench-"))
    ws = Workspace.open(root)
    lake = Lake(ws.lake)
    if not lake.has("houses", "device_events") and not args.home_state_only:
        ingest_houses(lake, ["A", "D"])
    dataset = f"sim-home-{args.homes}x{args.days}-s{args.seed}"
    started = time.perf_counter()
    if not args.no_sim and not lake.has(dataset, "device_events"):
        from homeloop.serving import assistant_nlu
        from homeloop.world import WorldConfig, simulate

        nlu, _, _ = assistant_nlu(ws)
        simulate(WorldConfig(homes=args.homes, days=args.days, seed=args.seed), nlu=nlu).write(lake, dataset)
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else print
    results = home_experiments(
        lake,
        dataset=dataset if not args.no_sim else "none",
        text_encoder=args.text_encoder,
        epochs=args.epochs,
        samples_per_device=args.samples_per_device,
        refit=not args.no_refit,
        houses_ensemble=args.houses_ensemble,
        home_state_only=args.home_state_only,
        log=log,
    )
    if args.figures:
        section = home_report_section(ws, Path(args.figures), results=results)
        (Path(args.figures) / "section.json").write_text(
            json.dumps({"title": section.title, "paragraphs": section.paragraphs, "figures": section.figures},
                       indent=1), encoding="utf-8")  # fmt: skip
    figures = public_results(results)
    figures["world"] = {"homes": args.homes, "days": args.days, "seed": args.seed}
    figures["total_seconds"] = time.perf_counter() - started
    text = json.dumps(figures, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    print(text)
    return figures


if __name__ == "__main__":
    main()
