"""The defect model: which turns failed, read from implicit feedback.

:class:`DefectModel` is a gradient-boosted classifier over the signals of
:func:`~homeloop.selflearn.sessions.defect_signals` (barge-in, a "no", a rephrase
within the window, abandonment, an error response, gaps, confidences, text
similarity to the next turns). It needs labelled turns to learn from. Where the
labels come from:

- **Simulated logs** carry ground truth (``truth_turns.success``).
  :func:`train_defect_model_on_truth` fits on the turns of some homes and scores
  on the turns of other, held-out homes, so the figures it returns are honest.
  Ground truth is used only there: for labelling, the model reads nothing but
  the observable ``turns``.
- **Real logs** have no truth. The signals have the same meaning in any lake
  dataset (they come from the ``turns`` schema), so a model trained on
  simulated truth is applied to real logs as is; with no saved model,
  :func:`label_defects` falls back to the rules (:func:`rule_defects`) and says
  so in the returned table's metadata. (USS dialogues, the real rated data we
  have, lack barge-ins, confidences and timing, so a model trained on them
  cannot read a lake; :mod:`homeloop.selflearn.uss` measures the same method
  on them instead.)

:func:`label_defects` writes the derived lake table ``defect_labels``
(``turn_id, time, p_defect, defect``), replacing an older one whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator

from homeloop.errors import MissingInputError, NoDataError, NotFittedError, SchemaError
from homeloop.selflearn.sessions import (
    DEFAULT_REPHRASE_WINDOW_SECONDS,
    DEFAULT_SESSION_GAP_SECONDS,
    SIGNAL_FEATURES,
    defect_signals,
    rule_defects,
    sessionize,
)

__all__ = [
    "DefectModel",
    "binary_metrics",
    "label_defects",
    "signals_from_lake",
    "train_defect_model_on_truth",
    "truth_labels",
]

# columns of the raw turns that carry feedback; a dataset with none of them has nothing but text to go on
_FEEDBACK_COLUMNS = ("barge_in", "feedback", "response_type")


class DefectModel(BaseEstimator):
    """Probability that a turn failed, from its implicit signals and context.

    A histogram gradient-boosted tree ensemble (scikit-learn) over ``features`` (default: every
    :data:`~homeloop.selflearn.sessions.SIGNAL_FEATURES` column). ``threshold`` turns probabilities
    into defect flags; ``fit(..., tune_threshold=True)`` picks the threshold that maximises F1 on a
    slice of the training data held back for it.

    After ``fit``: ``classifier_``, ``features_``, ``threshold_`` (the one in use), ``defect_rate_``,
    ``classes_`` (``[False, True]``: True means the turn failed) and ``training_data_`` (rows, defects and
    the SHA-256 of the feature matrix and labels).
    """

    def __init__(
        self,
        *,
        features: Sequence[str] | None = None,
        max_iter: int = 200,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.features = features
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.threshold = threshold
        self.seed = seed

    def _matrix(self, signals: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
        missing = [f for f in features if f not in signals.columns]
        if missing:
            raise SchemaError(f"signals: missing feature column(s) {missing}; expected {list(features)}")
        return signals[list(features)].to_numpy(dtype=np.float64)

    def fit(self, signals: pd.DataFrame, labels: Sequence[bool] | np.ndarray, *, tune_threshold: bool = True):
        """Learn from ``signals`` (rows of :func:`defect_signals`) and ``labels`` (True = the turn failed)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        features = tuple(self.features) if self.features is not None else SIGNAL_FEATURES
        y = np.asarray(labels, dtype=bool)
        if len(y) != len(signals):
            raise SchemaError(f"labels: expected one per signal row ({len(signals)}), got {len(y)}")
        if len(y) == 0:
            raise NoDataError("DefectModel.fit: expected labelled turns, got none")
        if y.all() or not y.any():
            raise NoDataError(f"DefectModel.fit: expected both failed and successful turns, got only {bool(y[0])}")
        x = self._matrix(signals, features)

        def make():
            return HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                random_state=self.seed,
            )

        threshold = float(self.threshold)
        if tune_threshold and len(y) >= 200:
            rng = np.random.default_rng(self.seed)
            held = rng.random(len(y)) < 0.2
            if y[held].any() and (~y[held]).any() and y[~held].any() and (~y[~held]).any():
                probe = make().fit(x[~held], y[~held])
                threshold = best_f1_threshold(y[held], probe.predict_proba(x[held])[:, 1])
        self.classifier_ = make().fit(x, y)
        self.features_ = features
        self.threshold_ = threshold
        self.defect_rate_ = float(y.mean())
        self.classes_ = self.classifier_.classes_
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
        digest.update(y.tobytes())
        self.training_data_ = {"size": len(y), "defects": int(y.sum()), "sha256": digest.hexdigest()}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise NotFittedError("DefectModel: call fit() before predict_proba()")

    def predict_proba(self, signals: pd.DataFrame) -> np.ndarray:
        """Probabilities, shape ``(n, 2)`` in the order of ``classes_``: column 1 is the probability that
        the turn failed."""
        self._check_fitted()
        if len(signals) == 0:
            return np.zeros((0, 2))
        return self.classifier_.predict_proba(self._matrix(signals, self.features_))

    def predict(self, signals: pd.DataFrame) -> np.ndarray:
        """Defect flags: probability of failure at or above the fitted threshold."""
        return self.predict_proba(signals)[:, 1] >= self.threshold_


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold with the highest F1 on ``(y, p)``."""
    order = np.argsort(-p, kind="stable")
    ys, ps = np.asarray(y, dtype=bool)[order], p[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    positives = ys.sum()
    f1 = 2 * tp / (tp + fp + positives)
    # only cut between distinct scores
    last = np.r_[ps[1:] != ps[:-1], True]
    best = int(np.argmax(np.where(last, f1, -1)))
    return float(ps[best])


def binary_metrics(y_true: Sequence[bool], flags: Sequence[bool], scores: Sequence[float] | None = None) -> dict:
    """Precision, recall, F1 (and ROC AUC when ``scores`` are given) of defect flags against truth."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=bool)
    f = np.asarray(flags, dtype=bool)
    tp = int((y & f).sum())
    precision = tp / f.sum() if f.sum() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {"precision": round(float(precision), 4), "recall": round(float(recall), 4), "f1": round(float(f1), 4)}
    if scores is not None:
        s = np.asarray(scores, dtype=float)
        out["auc"] = round(float(roc_auc_score(y, s)), 4) if 0 < y.sum() < len(y) else None
    out["n"] = len(y)
    out["positives"] = int(y.sum())
    return out


# --------------------------------------------------------------------------- lake


def signals_from_lake(
    lake,
    dataset: str,
    *,
    gap_seconds: float = DEFAULT_SESSION_GAP_SECONDS,
    rephrase_window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS,
) -> pd.DataFrame:
    """Sessionize the ``turns`` of ``dataset`` and compute their :func:`defect_signals`, plus ``home_id``.

    Raises :class:`NoDataError` when the dataset has no turns, or when its turns carry no feedback
    at all (no barge-in, feedback or response type on any turn) and no session has two turns, so
    that not even a rephrase could show a defect.
    """
    columns = [
        "turn_id", "user_id", "home_id", "device_id", "time", "asr_text", "asr_confidence", "nlu_confidence",
        "intent", "response_type", "barge_in", "feedback", "rewritten_from", "resolved_entities",
    ]  # fmt: skip
    turns = lake.read(dataset, "turns", columns=columns)
    if turns.num_rows == 0:
        raise NoDataError(f"lake dataset {dataset!r}: table 'turns' is empty; ingest or simulate turns first")
    sessions = sessionize(turns, gap_seconds=gap_seconds)
    has_feedback = bool(sessions["barge_in"].any()) or any(
        (sessions[c].fillna("").astype(str) != "").any() for c in ("feedback", "response_type")
    )
    if not has_feedback and (sessions["position"] > 0).sum() == 0:
        raise NoDataError(
            f"lake dataset {dataset!r}: no feedback signals at all: none of {list(_FEEDBACK_COLUMNS)} is set on any "
            f"of {len(sessions)} turns and no session has a second turn (no rephrase or 'no' can follow); "
            "expected logs with barge-ins, feedback, response types or multi-turn sessions"
        )
    if not has_feedback:
        warnings.warn(
            f"lake dataset {dataset!r}: no barge-in, feedback or response type on any turn; defects are read from "
            "rephrases, 'no' turns and abandonment only",
            stacklevel=2,
        )
    events = None
    if lake.has(dataset, "device_events"):
        events = lake.read(dataset, "device_events", columns=["device_id", "time", "source"])
    signals = defect_signals(sessions, rephrase_window_seconds=rephrase_window_seconds, device_events=events)
    signals["home_id"] = sessions["home_id"].values
    signals.attrs["has_feedback"] = has_feedback
    return signals


def truth_labels(lake, dataset: str, turn_ids: Sequence[str]) -> np.ndarray:
    """For measurement only: True where the simulator's ``truth_turns`` says the turn failed."""
    truth = lake.read(dataset, "truth_turns", columns=["turn_id", "success"])
    if truth.num_rows == 0:
        raise MissingInputError(f"lake dataset {dataset!r} has no 'truth_turns' (only simulated datasets have them)")
    success = dict(zip(truth["turn_id"].to_pylist(), truth["success"].to_pylist(), strict=True))
    missing = [t for t in turn_ids if t not in success]
    if missing:
        raise SchemaError(f"truth_turns of {dataset!r}: no truth for {len(missing)} turn(s), e.g. {missing[:3]}")
    return ~np.array([success[t] for t in turn_ids], dtype=bool)


def split_homes(homes: Sequence[str], *, test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """A boolean mask over rows: True for rows whose home is held out (whole homes, never split)."""
    distinct = sorted(set(homes))
    if len(distinct) < 2:
        raise NoDataError(f"held-out split by home: expected at least 2 homes, got {len(distinct)}")
    rng = np.random.default_rng(seed)
    n_test = max(1, round(len(distinct) * test_fraction))
    held = set(rng.permutation(distinct)[:n_test].tolist())
    return np.array([h in held for h in homes], dtype=bool)


def train_defect_model_on_truth(
    lake,
    dataset: str,
    *,
    model: DefectModel | None = None,
    test_fraction: float = 0.3,
    seed: int = 0,
    signals: pd.DataFrame | None = None,
) -> tuple[DefectModel, dict[str, Any]]:
    """Fit a defect model on a simulated dataset's truth, homes split into train and held-out test.

    Returns the model (fitted on the training homes only) and held-out figures: AUC, precision,
    recall and F1 of the model and of the rules on the test homes' turns.
    """
    signals = signals if signals is not None else signals_from_lake(lake, dataset)
    y = truth_labels(lake, dataset, signals["turn_id"].tolist())
    test = split_homes(signals["home_id"].fillna("").tolist(), test_fraction=test_fraction, seed=seed)
    model = model if model is not None else DefectModel(seed=seed)
    started = time.perf_counter()
    model.fit(signals[~test], y[~test])
    seconds = time.perf_counter() - started
    p = model.predict_proba(signals[test])[:, 1]
    rules = rule_defects(signals[test])
    figures = {
        "dataset": dataset,
        "train_turns": int((~test).sum()),
        "test_turns": int(test.sum()),
        "test_homes": int(signals.loc[test, "home_id"].nunique()),
        "test_defect_rate": round(float(y[test].mean()), 4),
        "threshold": round(model.threshold_, 4),
        "model": binary_metrics(y[test], p >= model.threshold_, p),
        "rules": binary_metrics(y[test], rules, rules.astype(float)),
        "training_seconds": round(seconds, 2),
    }
    return model, figures


def label_defects(
    lake,
    dataset: str,
    *,
    model: DefectModel | None = None,
    signals: pd.DataFrame | None = None,
    write: bool = True,
) -> pa.Table:
    """Label every turn of ``dataset`` as a defect or not and write the lake table ``defect_labels``.

    With a fitted ``model``, ``p_defect`` is its probability and ``defect`` the thresholded flag;
    without one, the rules decide (``p_defect`` is 1.0 or 0.0). The table replaces any older
    ``defect_labels`` of the dataset whole. Its schema metadata says which labeller was used.
    """
    signals = signals if signals is not None else signals_from_lake(lake, dataset)
    if model is not None:
        p = model.predict_proba(signals)[:, 1]
        flags = p >= model.threshold_
        labeller = "model"
    else:
        flags = rule_defects(signals)
        p = flags.astype(float)
        labeller = "rules"
    from homeloop.data.schema import table as schema_table

    schema = schema_table("defect_labels").arrow_schema
    out = pa.table(
        {
            "turn_id": pa.array(signals["turn_id"].astype(str).tolist(), pa.string()),
            "time": pa.array(pd.to_datetime(signals["time"], utc=True)).cast(schema.field("time").type),
            "p_defect": pa.array(p.astype(float), pa.float64()),
            "defect": pa.array(flags.astype(bool), pa.bool_()),
        },
        schema=schema,
    )
    out = out.replace_schema_metadata({"labeller": labeller})
    if write:
        replace_table(lake, dataset, "defect_labels", out)
    return out


def replace_table(lake, dataset: str, table_name: str, data: pa.Table) -> None:
    """Write ``data`` as the whole of ``table_name`` in ``dataset``: staged in a hidden folder, then
    swapped in by renames, so readers see the old table or the new one, never a mix."""
    from homeloop.data.lake import Lake

    target = lake.path(dataset, table_name)
    stage_root = lake.root / f".stage-{uuid.uuid4().hex[:10]}"
    try:
        Lake(stage_root).write(dataset, table_name, data)
        staged = stage_root / dataset / table_name
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(f".old-{table_name}-{uuid.uuid4().hex[:8]}")
        if target.exists():
            os.rename(target, old)
        if staged.exists():
            os.rename(staged, target)
        else:
            target.mkdir()
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
