"""Rephrase examples: a request and the later turns of its session that might rephrase it
(:class:`RephraseExample`, :func:`rephrase_examples`), the true answer on simulated logs
(:func:`truth_rephrase_targets`), and the pair metrics (:func:`rephrase_metrics`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from homeloop.errors import MissingInputError, NoDataError, SchemaError
from homeloop.selflearn.sessions import DEFAULT_REPHRASE_WINDOW_SECONDS, epoch_seconds, is_negation

__all__ = [
    "RephraseCandidate",
    "RephraseExample",
    "rephrase_examples",
    "rephrase_metrics",
    "truth_rephrase_targets",
]


@dataclass(frozen=True)
class RephraseCandidate:
    """A later turn of the same session within the window: its id, text and seconds after the request."""

    turn_id: str
    text: str
    gap_seconds: float


@dataclass(frozen=True)
class RephraseExample:
    """A request and the candidate turns that might rephrase it, in time order."""

    turn_id: str
    text: str
    session: str
    candidates: tuple[RephraseCandidate, ...]
    home_id: str | None = None


def rephrase_examples(
    sessions: pd.DataFrame,
    *,
    window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS,
    max_candidates: int = 3,
) -> list[RephraseExample]:
    """One example per turn of ``sessions`` (as :func:`~homeloop.selflearn.sessions.sessionize` returns)
    that has at least one later turn of its session within ``window_seconds``.

    Turns that are themselves a "no" (:func:`~homeloop.selflearn.sessions.is_negation`) or empty are
    not requests and get no example; they can still be candidates.
    """
    if "session" not in sessions.columns:
        raise SchemaError("sessions: expected the DataFrame that sessionize() returns (with a 'session' column)")
    if max_candidates < 1:
        raise SchemaError(f"max_candidates: expected at least 1, got {max_candidates}")
    texts = sessions["asr_text"].fillna("").astype(str).tolist()
    ids = sessions["turn_id"].astype(str).tolist()
    session = sessions["session"].tolist()
    homes = sessions["home_id"].tolist() if "home_id" in sessions.columns else [None] * len(ids)
    secs = epoch_seconds(sessions["time"])
    out: list[RephraseExample] = []
    n = len(ids)
    for i in range(n):
        if not texts[i].strip() or is_negation(texts[i]):
            continue
        cands = []
        j = i + 1
        while (
            j < n and session[j] == session[i] and secs[j] - secs[i] <= window_seconds and len(cands) < max_candidates
        ):
            cands.append(RephraseCandidate(ids[j], texts[j], float(secs[j] - secs[i])))
            j += 1
        if cands:
            out.append(RephraseExample(ids[i], texts[i], session[i], tuple(cands), homes[i]))
    return out


def truth_rephrase_targets(lake, dataset: str, examples: Sequence[RephraseExample]) -> list[int | None]:
    """For training and measurement on simulated logs: the index of the first candidate that rephrases the
    request (truth ``kind == "rephrase"`` with the request's goal), or None."""
    truth = lake.read(dataset, "truth_turns", columns=["turn_id", "goal_id", "kind"])
    if truth.num_rows == 0:
        raise MissingInputError(f"lake dataset {dataset!r} has no 'truth_turns' (only simulated datasets have them)")
    goal = dict(zip(truth["turn_id"].to_pylist(), truth["goal_id"].to_pylist(), strict=True))
    kind = dict(zip(truth["turn_id"].to_pylist(), truth["kind"].to_pylist(), strict=True))
    targets: list[int | None] = []
    for ex in examples:
        target = None
        if kind.get(ex.turn_id) in ("request", "rephrase"):
            for k, c in enumerate(ex.candidates):
                if kind.get(c.turn_id) == "rephrase" and goal.get(c.turn_id) == goal.get(ex.turn_id):
                    target = k
                    break
        targets.append(target)
    return targets


def rephrase_metrics(predicted: Sequence[int | None], targets: Sequence[int | None]) -> dict[str, Any]:
    """Precision, recall and F1 of predicted (request, rephrase) pairs: a prediction is right when it names
    the true candidate; a missed or wrong candidate counts against recall."""
    if len(predicted) != len(targets):
        raise SchemaError(f"predicted: expected one per target ({len(targets)}), got {len(predicted)}")
    tp = sum(1 for p, t in zip(predicted, targets, strict=True) if p is not None and p == t)
    n_pred = sum(p is not None for p in predicted)
    n_true = sum(t is not None for t in targets)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "examples": len(targets),
        "true_pairs": n_true,
        "predicted_pairs": n_pred,
    }


def _check_targets(examples: Sequence[RephraseExample], targets: Sequence[int | None]) -> None:
    if len(examples) != len(targets):
        raise SchemaError(f"targets: expected one per example ({len(examples)}), got {len(targets)}")
    if not examples:
        raise NoDataError("rephrase detector: expected training examples, got none")
    for ex, t in zip(examples, targets, strict=True):
        if t is not None and not 0 <= t < len(ex.candidates):
            raise SchemaError(f"target {t} of example {ex.turn_id!r}: expected None or 0..{len(ex.candidates) - 1}")


def _candidate_classes(examples: Sequence[RephraseExample]) -> np.ndarray:
    """A detector's classes after fitting on ``examples``: None ("no rephrase"), then the candidate positions
    ``0 .. k-1`` up to the most candidates a training example has."""
    return np.array([None, *range(max(len(ex.candidates) for ex in examples))], dtype=object)


def _check_candidates(detector: str, classes: np.ndarray, examples: Sequence[RephraseExample]) -> None:
    most = len(classes) - 1
    for ex in examples:
        if len(ex.candidates) > most:
            raise SchemaError(
                f"example {ex.turn_id!r}: expected at most {most} candidates (the most {detector} was fitted on), "
                f"got {len(ex.candidates)}"
            )


def _best_candidate_proba(best_k: Sequence[int | None], best_p: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows over the classes (no rephrase, candidate 0, 1, ...): the best candidate's probability in its
    column, the rest on "no rephrase"."""
    proba = np.zeros((len(best_k), n_classes))
    proba[:, 0] = 1.0 - best_p
    for row, (k, p) in enumerate(zip(best_k, best_p, strict=True)):
        if k is not None:
            proba[row, 1 + k] = p
    return proba
