"""Conformance examples for the selflearn room: the defect model, the two rephrase detectors, the rewrite miner."""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from homeloop.selflearn import (
    DefectModel,
    PairwiseRephraseDetector,
    RephraseCandidate,
    RephraseExample,
    RewriteMiner,
    SpanRephraseDetector,
)
from homeloop.selflearn.sessions import SIGNAL_FEATURES
from tests.contract import ContractExample


def defect_model() -> ContractExample:
    rng = np.random.default_rng(0)
    signals = pd.DataFrame(rng.random((60, len(SIGNAL_FEATURES))), columns=list(SIGNAL_FEATURES))
    labels = signals["barge_in"].to_numpy() > 0.5
    return ContractExample(
        make=lambda: DefectModel(max_iter=5),
        fit_args=(signals, labels),
        predict_args=(signals.head(7),),
        n_rows=7,
    )


def _rephrases() -> tuple[list[RephraseExample], list[int | None]]:
    """Requests repeated among unrelated candidates (1 to 3 of them), or followed by unrelated ones only."""
    other = ["play some jazz", "what time is it", "tell me a joke"]
    examples, targets = [], []
    for i in range(8):
        request = ["turn on the kitchen light", "stop the coffee maker"][i % 2]
        texts = other[: 1 + i % 3]
        target = i % 3 if i % 4 else None
        if target is not None:
            texts[target] = request
        cands = tuple(RephraseCandidate(f"c{i}-{j}", t, 4.0 + 6 * j) for j, t in enumerate(texts))
        examples.append(RephraseExample(f"q{i}", request, f"s{i}", cands, "h"))
        targets.append(target)
    return examples, targets


def pairwise_rephrase_detector() -> ContractExample:
    examples, targets = _rephrases()
    return ContractExample(
        make=lambda: PairwiseRephraseDetector(batch_size=16),
        fit_args=(examples, targets),
        predict_args=(examples,),
        n_rows=len(examples),
    )


def span_rephrase_detector() -> ContractExample:
    examples, targets = _rephrases()
    return ContractExample(
        make=lambda: SpanRephraseDetector(epochs=1, batch_size=8, max_length=32),
        fit_args=(examples, targets),
        predict_args=(examples,),
        n_rows=len(examples),
    )


_LAKE: list[Path] = []


def _lake_with_rephrase_chains():
    """A lake whose ``logs`` turns have three users mishear-then-fix the same request (built once)."""
    from homeloop.data.lake import Lake

    if not _LAKE:
        root = Path(tempfile.mkdtemp(prefix="homeloop-contract-"))
        atexit.register(shutil.rmtree, root, True)
        t0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
        rows = []
        for u, user in enumerate(("a", "b", "c")):
            for k, (text, ok) in enumerate((("turn on the chicken light", False), ("turn on the kitchen light", True))):
                rows.append(
                    {
                        "turn_id": f"{user}-{k}",
                        "session_id": "",
                        "user_id": user,
                        "home_id": f"h-{user}",
                        "device_id": f"speaker-{user}",
                        "time": t0 + dt.timedelta(hours=u, seconds=5 * k),
                        "asr_text": text,
                        "intent": "iot_hue_lighton",
                        "response_type": "action" if ok else "error",
                    }
                )
        Lake(root).write("logs", "turns", rows)
        _LAKE.append(root)
    return Lake(_LAKE[0])


def rewrite_miner() -> ContractExample:
    return ContractExample(
        make=lambda: RewriteMiner(min_support=2, min_users=2, labels="rules"),
        fit_args=(_lake_with_rephrase_chains(), "logs"),
    )


EXAMPLES = {
    "DefectModel": defect_model,
    "PairwiseRephraseDetector": pairwise_rephrase_detector,
    "SpanRephraseDetector": span_rephrase_detector,
    "RewriteMiner": rewrite_miner,
}
