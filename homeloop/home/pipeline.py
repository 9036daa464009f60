"""From a lake dataset to a trained device model, hunches, rooms and archetypes (what ``homeloop home`` runs).

Saved models are versions in the artefact store, ``<workspace>/models/device-state/<dataset>/v<N>/``
(format :data:`homeloop.home.artifacts.FORMAT`: safetensors and JSON).

For a real home there is no presence ground truth to train a home-state model on, so
:class:`InactivityHomeState` stands in: the longer nothing in the home has switched,
the likelier everyone is asleep (at night) or away (by day).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from homeloop import artifacts
from homeloop.errors import ArtifactError, InvalidInputError, MissingInputError, NotFittedError
from homeloop.home.artifacts import FORMAT, KIND
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.features import DeviceHistory
from homeloop.home.hunches import hunch_candidates
from homeloop.home.presence import HOME_STATES

__all__ = ["InactivityHomeState", "find_hunches", "load_device_model", "model_path", "save_device_model"]


def model_path(models_dir: str | os.PathLike[str], dataset: str) -> Path:
    """The folder of the saved versions of ``dataset``'s device model (:func:`load_device_model` takes the newest)."""
    return Path(models_dir) / KIND / dataset


def save_device_model(
    model: DeviceStateModel,
    models_dir: str | os.PathLike[str],
    *,
    dataset: str,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model``, trained on ``dataset``, as the next version ``<models_dir>/device-state/<dataset>/v<N>/``
    (:func:`homeloop.artifacts.save`) and return that folder."""
    if not isinstance(model, DeviceStateModel):
        raise ArtifactError(f"save_device_model: expected a DeviceStateModel, got {type(model).__name__}")
    data = {"dataset": dataset, **dict(training_data or {})}
    return artifacts.save(model, models_dir, name=dataset, metrics=metrics, training_data=data)


def load_device_model(path: str | os.PathLike[str]) -> DeviceStateModel:
    """The device model saved at ``path``: a version folder, or the folder of versions (:func:`model_path`; the
    newest is loaded). Its metadata is ``model.metadata_``."""
    path = Path(path)
    has_versions = path.is_dir() and any(p.is_dir() and re.fullmatch(r"v\d+", p.name) for p in path.iterdir())
    if not (path / "metadata.json").is_file() and not has_versions:
        raise MissingInputError(f"device model {path} does not exist; run 'homeloop home train' first")
    model = artifacts.load(path)
    if not isinstance(model, DeviceStateModel):
        raise ArtifactError(
            f"{model.path_}: expected a saved device model (format {FORMAT!r}), found a "
            f"{model.metadata_.get('format')!r} model"
        )
    return model


class InactivityHomeState(BaseEstimator):
    """P(asleep) and P(away) from how long nothing in the home switched, split by the time of day.

    Inactivity rises from 0 after ``quiet_minutes`` to 1 after ``3 * quiet_minutes``; between
    ``night_start`` and ``night_end`` (local hours) it counts as asleep, otherwise as away.

    It learns nothing: :meth:`fit` checks the parameters and takes the same arguments as
    :meth:`HomeStateModel.fit <homeloop.home.presence.HomeStateModel.fit>` (all optional), so
    either serves as the home-state model of :func:`find_hunches`. :meth:`predict_proba` has one
    row per slot of every home (:func:`~homeloop.home.presence.by_home` splits them) and one
    column per state of :data:`~homeloop.home.presence.HOME_STATES`.
    """

    def __init__(self, *, quiet_minutes: int = 45, night_start: float = 22.0, night_end: float = 6.0) -> None:
        self.quiet_minutes = quiet_minutes
        self.night_start = night_start
        self.night_end = night_end

    def fit(
        self,
        history: DeviceHistory | None = None,
        labels: Mapping[str, np.ndarray] | None = None,
        train_days: Mapping[str, int] | None = None,
        *,
        home_embeddings: np.ndarray | None = None,
    ) -> InactivityHomeState:
        if not self.quiet_minutes > 0:
            raise InvalidInputError(f"quiet_minutes: expected a positive number, got {self.quiet_minutes!r}")
        for name in ("night_start", "night_end"):
            if not 0 <= getattr(self, name) <= 24:
                raise InvalidInputError(f"{name}: expected a local hour from 0 to 24, got {getattr(self, name)!r}")
        self.classes_ = np.arange(len(HOME_STATES))
        return self

    def predict_proba(self, history: DeviceHistory, *, home_embeddings: np.ndarray | None = None) -> np.ndarray:
        """``[slots of every home, 3]`` probabilities of home, away and asleep."""
        if not hasattr(self, "classes_"):
            raise NotFittedError("InactivityHomeState: call fit before predict_proba")
        out = []
        for h in history.homes:
            idx = np.arange(h.n_slots)
            switches = h.starts[h.has_events].sum(axis=0)
            last = np.maximum.accumulate(np.where(switches > 0, idx, -(10**6)))
            quiet = (idx - last) * h.slot_minutes
            inactive = np.clip((quiet - self.quiet_minutes) / (2 * self.quiet_minutes), 0, 1)
            hour = (idx % h.slots_per_day) * h.slot_minutes / 60
            night = (hour >= self.night_start) | (hour < self.night_end)
            p = np.zeros((h.n_slots, 3), np.float32)
            p[:, 2] = np.where(night, inactive, 0)
            p[:, 1] = np.where(night, 0, inactive)
            p[:, 0] = 1 - p[:, 1] - p[:, 2]
            out.append(p)
        return np.concatenate(out) if out else np.zeros((0, 3), np.float32)

    def predict(self, history: DeviceHistory, *, home_embeddings: np.ndarray | None = None) -> np.ndarray:
        """The likeliest state's code (index into :data:`~homeloop.home.presence.HOME_STATES`) of every slot."""
        proba = self.predict_proba(history)
        return self.classes_[proba.argmax(axis=1)]


def find_hunches(
    history: DeviceHistory,
    model: DeviceStateModel,
    *,
    days: int = 2,
    threshold: float = 0.5,
    home_state: Any | None = None,
    acceptance: Any | None = None,
) -> pd.DataFrame:
    """Hunches over the last ``days`` of each home: devices on whose score is at least ``threshold``.

    The score is the acceptance model's probability when one is given, else the rule score
    ``(1 - expected_on) * (P(asleep) + P(away))``. One row per device and on-period (its
    first slot over the threshold), with the local time, the expectation and the home state.
    """
    home_state = home_state if home_state is not None else InactivityHomeState().fit(history)
    slots = {h.home_id: (max(0, h.n_slots - days * h.slots_per_day), h.n_slots) for h in history.homes}
    cands = hunch_candidates(history, model, home_state, slots=slots)
    if len(cands) == 0:
        return pd.DataFrame(columns=["device_id", "name", "type", "home_id", "local_time", "expected_on",
                                     "p_asleep", "p_away", "score"])  # fmt: skip
    score = acceptance.predict_proba(history, cands)[:, 1] if acceptance is not None else cands.rule_score
    df = cands.frame(history)
    df["score"] = score
    df["type"] = history.device_table()["type"].to_numpy()[cands.device]
    df = df[df["score"] >= threshold].sort_values(["run", "slot"]).groupby("run").head(1)
    homes = {h.home_id: h for h in history.homes}
    df["local_time"] = [
        dt.datetime.combine(homes[hid].start, dt.time()) + dt.timedelta(minutes=int(s) * homes[hid].slot_minutes)
        for hid, s in zip(df["home_id"], df["slot"], strict=True)
    ]
    cols = ["device_id", "name", "type", "home_id", "local_time", "expected_on", "p_asleep", "p_away", "score", "slot"]
    return df[cols].reset_index(drop=True)
