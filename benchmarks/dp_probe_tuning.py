"""How the DP utility benchmark's probe recipes were chosen: validation accuracy of the MiniLM probe on a
stratified tenth of HWU64 train (the probe trains on the rest), for a grid of non-private and private
(epsilon 8) settings, through the same ``train_probe`` as ``benchmarks/dp_utility.py``. No test split is read.

Run::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/dp_probe_tuning.py --feature-cache /tmp/feat

Prints one JSON line per setting (validation accuracy, and the privacy record for private ones).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from dp_utility import train_probe  # noqa: E402

from homeloop.datasets import load_hwu64  # noqa: E402
from homeloop.graceful.experiments import stratified_subset  # noqa: E402
from homeloop.nlu.probe import sentence_vectors  # noqa: E402

#: non-private (batch, epochs, learning rate) and private (clip, quantile, batch, epochs, lr) settings tried
PLAIN_GRID = list(itertools.product((64, 256), (1, 2, 3, 5, 8), (5e-3, 2e-2)))
PRIVATE_GRID = [
    ("auto", 0.5, 512, 20, 0.0141),
    (2.0, 0.5, 512, 20, 0.0141),
    *(("adaptive", q, 512, 20, 0.0141) for q in (0.1, 0.5, 0.7, 0.9)),
    *(
        ("adaptive", q, 1024, e, lr)
        for q in (0.5, 0.6, 0.7, 0.8, 0.9)
        for e, lr in ((40, 5e-3), (80, 5e-3), (80, 2.5e-3))
    ),
    *(
        ("adaptive", 0.7, b, e, lr)
        for b, e, lr in ((2048, 160, 5e-3), (2048, 160, 1e-2), (2048, 320, 5e-3), (4096, 320, 5e-3))
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feature-cache", default=None, help="file to keep the MiniLM features in between runs")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    train = load_hwu64("train")
    held = {id(u) for u in stratified_subset(train, 0.1, seed=0)}
    fit_part, val = [u for u in train if id(u) not in held], [u for u in train if id(u) in held]
    if args.feature_cache and os.path.exists(args.feature_cache):
        x_fit, x_val = torch.load(args.feature_cache)
    else:
        x_fit, x_val = sentence_vectors(fit_part), sentence_vectors(val)
        if args.feature_cache:
            torch.save((x_fit, x_val), args.feature_cache)
    intents = sorted({u.intent for u in train})
    index = {name: i for i, name in enumerate(intents)}
    y_fit = [index[u.intent] for u in fit_part]
    y_val = torch.tensor([index[u.intent] for u in val])

    def score(probe: torch.nn.Module) -> float:
        with torch.no_grad():
            return float((probe(x_val).argmax(1) == y_val).float().mean())

    for seed in range(args.seeds):
        for batch, epochs, lr in PLAIN_GRID:
            started = time.perf_counter()
            probe, _ = train_probe(
                x_fit, y_fit, len(intents), epsilon=float("inf"), epochs=0, seed=seed, plain=(batch, epochs, lr)
            )
            setting = {"epsilon": "inf", "batch": batch, "epochs": epochs, "lr": lr, "seed": seed}
            print(json.dumps({**setting, "val_acc": score(probe), "s": time.perf_counter() - started}), flush=True)
        for clip, quantile, batch, epochs, lr in PRIVATE_GRID:
            started = time.perf_counter()
            probe, record = train_probe(
                x_fit, y_fit, len(intents), epsilon=8.0, epochs=epochs, seed=seed, max_grad_norm=clip,
                clip_quantile=quantile, batch_size=batch, lr=lr,
            )  # fmt: skip
            setting = {"epsilon": 8, "clip": clip, "quantile": quantile, "batch": batch, "epochs": epochs, "lr": lr}
            print(
                json.dumps(
                    {
                        **setting,
                        "seed": seed,
                        "val_acc": score(probe),
                        "privacy": record,
                        "s": time.perf_counter() - started,
                    }
                ),  # fmt: skip
                flush=True,
            )


if __name__ == "__main__":
    main()
