"""Held-out evaluation of device-state prediction against the baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from homeloop.home.baselines import BASELINES
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.features import DeviceHistory, split_days
from homeloop.home.queries import Queries

__all__ = ["evaluate_state_prediction", "score"]


def score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC and Brier score (AUC is NaN when only one class is present)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y = np.asarray(y).astype(int)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")
    return {"auc": auc, "brier": float(brier_score_loss(y, np.clip(p, 0, 1))) if y.size else float("nan")}


def _targets(history: DeviceHistory, q: Queries) -> np.ndarray:
    homes = np.repeat(np.arange(len(history.homes)), [len(h.devices) for h in history.homes])
    rows = np.concatenate([np.arange(len(h.devices)) for h in history.homes])
    y = np.zeros(len(q), np.int8)
    for hi in np.unique(homes[q.device]):
        sel = np.flatnonzero(homes[q.device] == hi)
        y[sel] = history.homes[hi].on[rows[q.device[sel]], q.slot[sel]]
    return y


def evaluate_state_prediction(
    history: DeviceHistory,
    *,
    model: DeviceStateModel | None = None,
    train_days: Mapping[str, int] | None = None,
    train_fraction: float = 0.7,
    queries_per_device: int = 400,
    seed: int = 1,
    baselines: Sequence[str] = tuple(BASELINES),
    model_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the model (unless ``model`` is fitted already) and the baselines on the leading days of each home,
    and score all of them on random queries on the later, held-out days.

    Returns ``{"model": {...}, "<baseline>": {...}, "best_baseline", "auc_gain_over_best_baseline",
    "queries", "positive_rate", "by_horizon"}``.
    """
    days = dict(train_days) if train_days is not None else split_days(history, train_fraction=train_fraction)
    if model is None:
        model = DeviceStateModel(**dict(model_params or {})).fit(history, days)
    queries = model.sample_queries(history, days, per_device=queries_per_device, seed=seed, held_out=True)
    y = _targets(history, queries)
    predictions = {"model": model.predict_proba(history, queries)[:, 1]}
    for name in baselines:
        predictions[name] = BASELINES[name]().fit(history, days).predict_proba(history, queries)[:, 1]
    out: dict[str, Any] = {name: score(y, p) for name, p in predictions.items()}
    base = {n: out[n]["auc"] for n in baselines if np.isfinite(out[n]["auc"])}
    best = max(base, key=base.get) if base else None
    out["best_baseline"] = best
    out["auc_gain_over_best_baseline"] = out["model"]["auc"] - base[best] if best else float("nan")
    out["queries"] = len(queries)
    out["positive_rate"] = float(y.mean()) if y.size else float("nan")
    out["by_horizon"] = {
        int(h): {n: score(y[queries.horizon == h], p[queries.horizon == h])["auc"] for n, p in predictions.items()}
        for h in np.unique(queries.horizon)
    }
    homes = np.repeat([h.home_id for h in history.homes], [len(h.devices) for h in history.homes])[queries.device]
    if len(history.homes) <= 20:
        out["by_home"] = {
            str(hid): {n: score(y[homes == hid], p[homes == hid])["auc"] for n, p in predictions.items()}
            for hid in np.unique(homes)
        }
    out["train_days"] = days
    out["_predictions"] = predictions
    out["_y"] = y
    out["_queries"] = queries
    return out
