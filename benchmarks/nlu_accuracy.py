"""NLU accuracy on HWU64: the fast and MiniLM encoders side by side, against a TF-IDF baseline.

Trains each model on HWU64 train (fold 1, 9,960 utterances) and scores it on
HWU64 test (1,076): intent accuracy and span-level slot micro-F1 (CoNLL /
seqeval exact match). The baseline is TF-IDF (word 1-2 grams + character
2-5 grams) with logistic regression, intents only. Published anchor: BERT-base
fine-tuned reaches about 90-92% intent accuracy on HWU64 (Liu et al. 2019;
Casanueva et al. 2020).

Run::

    python benchmarks/nlu_accuracy.py                    # both encoders (MiniLM: ~10-20 min on 2 cores)
    python benchmarks/nlu_accuracy.py --encoders fast    # seconds
    python benchmarks/nlu_accuracy.py --json             # figures as JSON

Training times are wall-clock on ``--threads`` torch threads (default 2);
compare them through the printed ratio, since shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union

from homeloop.datasets.hwu64 import load_hwu64
from homeloop.nlu import IntentSlotModel, evaluate

ANCHOR = "BERT-base fine-tuned: ~90-92% intent accuracy on HWU64 (Liu et al. 2019; Casanueva et al. 2020)"


def tfidf_baseline(train, test) -> dict:
    started = time.perf_counter()
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+"),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    classifier = make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000))
    classifier.fit([u.text for u in train], [u.intent for u in train])
    seconds = time.perf_counter() - started
    predicted = classifier.predict([u.text for u in test])
    accuracy = sum(p == u.intent for p, u in zip(predicted, test, strict=True)) / len(test)
    return {"model": "tfidf+logreg", "intent_accuracy": accuracy, "slot_f1": None, "training_seconds": seconds}


def nlu_model(encoder: str, train, test, *, epochs: int | None, seed: int) -> dict:
    model = IntentSlotModel(encoder=encoder, epochs=epochs, seed=seed)
    started = time.perf_counter()

    class EpochLog:
        def on_epoch_end(self, state):
            print(
                f"  {encoder}: epoch {state.epoch + 1}/{state.epochs} loss {state.epoch_loss:.4f} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    model.fit(train, callbacks=[EpochLog()])
    seconds = time.perf_counter() - started
    metrics = evaluate(model, test)
    texts = [u.text for u in test]
    t0 = time.perf_counter()
    model.parse(texts)
    per_second = len(texts) / (time.perf_counter() - t0)
    return {
        "model": f"IntentSlotModel({encoder})",
        "encoder": encoder,
        "settings": model.training_settings(),
        "intent_accuracy": metrics["intent_accuracy"],
        "slot_f1": metrics["slot_f1"],
        "slot_precision": metrics["slot_precision"],
        "slot_recall": metrics["slot_recall"],
        "training_seconds": seconds,
        "predict_per_second": per_second,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=["fast", "minilm"])
    parser.add_argument("--epochs-fast", type=int, default=None, help="default: the encoder's (8)")
    parser.add_argument("--epochs-minilm", type=int, default=None, help="default: the encoder's (5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train, test = load_hwu64("train"), load_hwu64("test")
    rows = [tfidf_baseline(train, test)]
    for encoder in args.encoders:
        epochs = getattr(args, f"epochs_{encoder}", None)
        rows.append(nlu_model(encoder, train, test, epochs=epochs, seed=args.seed))
    fast = next((r for r in rows if r.get("encoder") == "fast"), None)
    for row in rows:
        row["time_vs_fast"] = row["training_seconds"] / fast["training_seconds"] if fast else None
    result = {
        "benchmark": "nlu_accuracy",
        "dataset": {"name": "hwu64", "train": len(train), "test": len(test), "intents": len({u.intent for u in train})},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads",
        "anchor": ANCHOR,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"HWU64 test ({len(test)} utterances, {result['dataset']['intents']} intents); {result['machine']}")
    header = f"{'model':<24} {'intent acc':>10} {'slot F1':>8} {'train s':>8} {'x fast':>7} {'predict/s':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        slot = f"{r['slot_f1']:.3f}" if r["slot_f1"] is not None else "-"
        ratio = f"{r['time_vs_fast']:.1f}" if r["time_vs_fast"] is not None else "-"
        pps = f"{r['predict_per_second']:.0f}" if "predict_per_second" in r else "-"
        print(
            f"{r['model']:<24} {r['intent_accuracy']:>10.3f} {slot:>8} {r['training_seconds']:>8.1f} {ratio:>7} {pps:>10}"
        )
    print(f"anchor: {ANCHOR}")
    return result


if __name__ == "__main__":
    main()
