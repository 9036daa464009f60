"""Rephrase detection over a lake dataset: examples from its turns, the pairs a detector finds, and
training the span model (and the baselines) on a simulated dataset's truth."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from homeloop.errors import NoDataError
from homeloop.selflearn.rephrase.baselines import PairwiseRephraseDetector, similarity_rule
from homeloop.selflearn.rephrase.examples import (
    RephraseExample,
    rephrase_examples,
    rephrase_metrics,
    truth_rephrase_targets,
)
from homeloop.selflearn.rephrase.span_model import SpanRephraseDetector
from homeloop.selflearn.sessions import DEFAULT_REPHRASE_WINDOW_SECONDS

__all__ = ["detect_rephrases", "rephrase_examples_from_lake", "train_rephrase_detector_on_truth"]


def detect_rephrases(examples: Sequence[RephraseExample], detector) -> pd.DataFrame:
    """The (request, rephrase) pairs a fitted detector finds: ``turn_id``, ``rephrase_turn_id``,
    ``request_text``, ``rephrase_text``, ``gap_seconds``, ``score``."""
    predicted = detector.predict(examples)
    proba = detector.predict_proba(examples)
    rows = [
        {
            "turn_id": ex.turn_id,
            "rephrase_turn_id": ex.candidates[k].turn_id,
            "request_text": ex.text,
            "rephrase_text": ex.candidates[k].text,
            "gap_seconds": ex.candidates[k].gap_seconds,
            "score": float(p[1 + k]),
        }
        for ex, k, p in zip(examples, predicted, proba, strict=True)
        if k is not None
    ]
    columns = ["turn_id", "rephrase_turn_id", "request_text", "rephrase_text", "gap_seconds", "score"]
    return pd.DataFrame(rows, columns=columns)


def rephrase_examples_from_lake(
    lake, dataset: str, *, window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS, max_candidates: int = 3
) -> list[RephraseExample]:
    """:func:`rephrase_examples` of the sessionized ``turns`` of a lake dataset."""
    from homeloop.selflearn.sessions import sessionize

    turns = lake.read(dataset, "turns", columns=["turn_id", "user_id", "home_id", "device_id", "time", "asr_text"])
    if turns.num_rows == 0:
        raise NoDataError(f"lake dataset {dataset!r}: table 'turns' is empty; ingest or simulate turns first")
    return rephrase_examples(sessionize(turns), window_seconds=window_seconds, max_candidates=max_candidates)


def train_rephrase_detector_on_truth(
    lake,
    dataset: str,
    *,
    max_examples: int = 1200,
    epochs: int = 1,
    test_fraction: float = 0.3,
    seed: int = 0,
    baseline: bool = True,
    callbacks: Sequence[Any] = (),
    examples: Sequence[RephraseExample] | None = None,
) -> tuple[SpanRephraseDetector, dict[str, Any]]:
    """Fine-tune a :class:`SpanRephraseDetector` on a simulated dataset's truth and score it on held-out homes.

    Homes are split into training and held-out test homes (``test_fraction``); at most ``max_examples``
    training examples (drawn at random by ``seed``) train the span model and the pairwise baseline alike.
    Figures: precision, recall and F1 on the test homes of the span model, the pairwise baseline (with
    ``baseline``) and the trivial "the next turn is always the rephrase" rule.
    """
    from homeloop.selflearn.defects import split_homes

    examples = list(examples) if examples is not None else rephrase_examples_from_lake(lake, dataset)
    if not examples:
        raise NoDataError(f"lake dataset {dataset!r}: no turn has a later turn of its session within the window")
    targets = truth_rephrase_targets(lake, dataset, examples)
    test = split_homes([e.home_id or "" for e in examples], test_fraction=test_fraction, seed=seed)
    train_idx = np.flatnonzero(~test)
    rng = np.random.default_rng(seed)
    if len(train_idx) > max_examples:
        train_idx = np.sort(rng.choice(train_idx, size=max_examples, replace=False))
    train_x = [examples[i] for i in train_idx]
    train_y = [targets[i] for i in train_idx]
    test_x = [e for e, m in zip(examples, test, strict=True) if m]
    test_y = [t for t, m in zip(targets, test, strict=True) if m]
    detector = SpanRephraseDetector(epochs=epochs, seed=seed).fit(train_x, train_y, callbacks=callbacks)
    started = time.perf_counter()
    span_pred = detector.predict(test_x)
    figures: dict[str, Any] = {
        "dataset": dataset,
        "train_examples": len(train_x),
        "test_examples": len(test_x),
        "test_homes": len({e.home_id for e in test_x}),
        "test_rephrase_rate": round(sum(t is not None for t in test_y) / max(1, len(test_y)), 4),
        "span_model": rephrase_metrics(span_pred, test_y),
        "span_training_seconds": round(detector.training_seconds_, 1),
        "span_predict_seconds": round(time.perf_counter() - started, 1),
        "next_turn_rule": rephrase_metrics([0] * len(test_x), test_y),
        "similarity_rule": rephrase_metrics(similarity_rule(test_x), test_y),
    }
    if baseline:
        started = time.perf_counter()
        pairwise = PairwiseRephraseDetector().fit(train_x, train_y)
        figures["pairwise_baseline"] = rephrase_metrics(pairwise.predict(test_x), test_y)
        figures["pairwise_threshold"] = round(pairwise.threshold_, 4)
        figures["pairwise_seconds"] = round(time.perf_counter() - started, 1)
    return detector, figures
