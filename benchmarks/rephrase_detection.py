"""Rephrase detection as span prediction (fine-tuned MiniLM) against the pairwise baseline.

A simulated world (``--homes``, ``--days``, seed 0, the real fast-encoder NLU)
is sessionized; every request with later turns of its session within 45 s
becomes an example (up to 3 candidates). Truth: the first candidate whose
``truth_turns.kind`` is ``rephrase`` with the request's goal, or none. Homes
are split 70/30; at most ``--examples`` training examples (a random draw)
train both models:

- span model: MiniLM reads ``[CLS] request [SEP] <gap> candidate [SEP] ...`` and
  predicts start/end probabilities per token, ``[CLS]`` meaning none
  (``--epochs`` of fine-tuning, max length 64, on the CPU);
- pairwise baseline: cosine similarity of pretrained MiniLM sentence
  embeddings plus log time gap, logistic regression per pair, the best pair
  above an F1-tuned threshold;
- two rules: "the next turn is always the rephrase" and "the most similar
  candidate by words and letters, if similarity >= 0.5".

Scored on all examples of the held-out homes: precision, recall, F1 of the
predicted (request, rephrase) pairs. Prints the ratio span F1 / pairwise F1.

Run::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/rephrase_detection.py --nlu <saved NLU folder> \\
        --examples 1200 --epochs 1 --out rephrase.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


class _Log:
    """Prints the loss every ``every`` batches (stdout, for long CPU runs)."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.started = time.perf_counter()

    def on_train_begin(self, state) -> None:
        print(f"fine-tuning: {state.epochs} epoch(s) x {state.batches_per_epoch} batches", flush=True)

    def on_batch_end(self, state) -> None:
        if state.step % self.every == 0:
            print(f"  step {state.step} loss {state.loss:.3f} ({time.perf_counter() - self.started:.0f} s)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--homes", type=int, default=40)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--examples", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nlu", help="a saved NLU model folder (default: train the fast NLU)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from homeloop.data.lake import Lake
    from homeloop.selflearn.rephrase import train_rephrase_detector_on_truth
    from homeloop.world import WorldConfig, simulate

    if args.nlu:
        from homeloop.nlu import load_model

        nlu = load_model(args.nlu)
    else:
        from homeloop.serving import assistant_nlu
        from homeloop.workspace import Workspace

        nlu = assistant_nlu(Workspace.open(tempfile.mkdtemp(prefix="rephrase-bench-")))[0]
    lake = Lake(tempfile.mkdtemp(prefix="rephrase-bench-lake-"))
    simulate(WorldConfig(homes=args.homes, days=args.days, seed=0), nlu=nlu).write(lake, "sim")
    started = time.perf_counter()
    _, figures = train_rephrase_detector_on_truth(
        lake, "sim", max_examples=args.examples, epochs=args.epochs, seed=args.seed, callbacks=(_Log(),)
    )
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"\nheld-out homes: {figures['test_examples']} requests with candidates, "
        f"{figures['test_rephrase_rate']:.1%} followed by a true rephrase; trained on {figures['train_examples']}"
    )
    print(f"{'':36} {'precision':>10} {'recall':>10} {'F1':>10}")
    for name, key in (
        ("span model (fine-tuned MiniLM)", "span_model"),
        ("pairwise (embeddings + time gap)", "pairwise_baseline"),
        ("rule: next turn", "next_turn_rule"),
        ("rule: text similarity >= 0.5", "similarity_rule"),
    ):
        m = figures[key]
        print(f"{name:36} {m['precision']:>10.3f} {m['recall']:>10.3f} {m['f1']:>10.3f}")
    span, pair = figures["span_model"]["f1"], figures["pairwise_baseline"]["f1"]
    print(f"ratio span/pairwise F1: {span / pair:.3f}x" if pair else "pairwise F1 is 0")
    print(f"span fine-tuning {figures['span_training_seconds']} s, pairwise {figures['pairwise_seconds']} s")
    if args.out:
        figures["measured"] = datetime.now(UTC).isoformat(timespec="seconds")
        figures["args"] = vars(args) | {"out": None}
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
