"""Home state: are the residents at home and awake, away, or asleep, told from device activity alone.

:func:`home_activity_features` describes each slot of a home by what its devices did
up to the end of that slot (switches in the last hour, three and six hours, time since
anything happened, share of devices and of lights on, door and lock activity, time of
day): only the past, so the state can be told as it happens. :class:`HomeStateModel`
is a gradient-boosted classifier over those features, trained across homes; it can
also take a *home embedding* (:func:`home_embeddings`, the mean and maximum of a home's
device embeddings), which says what kind of home it is. :func:`home_state_labels`
turns the simulator's per-resident presence into the home's state: away when every
resident is away, asleep when nobody is awake at home and someone sleeps, else home.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from homeloop.errors import NotFittedError
from homeloop.home.features import DeviceHistory, HomeSlots, _local_minutes, utc_microseconds

__all__ = [
    "HOME_STATES",
    "HomeStateModel",
    "evaluate_home_state",
    "home_activity_features",
    "home_embeddings",
    "home_state_labels",
]

HOME_STATES = ("home", "away", "asleep")
_CODE = {s: i for i, s in enumerate(HOME_STATES)}
ACTIVITY_FEATURE_NAMES = (
    "switches_1h", "switches_3h", "switches_6h", "since_switch", "on_share", "lights_on_share",
    "entry_switches_1h", "entry_switches_3h", "time_sin", "time_cos", "weekend", "log_devices",
)  # fmt: skip


def home_activity_features(home: HomeSlots) -> np.ndarray:
    """``[slots, len(ACTIVITY_FEATURE_NAMES)]``: the home's activity up to the end of each slot."""
    n, spd = home.n_slots, home.slots_per_day
    per_hour = 60 // home.slot_minutes
    active = home.has_events
    starts = home.starts[active].sum(axis=0, dtype=np.int32)
    cum = np.concatenate([[0], np.cumsum(starts)])
    idx = np.arange(n)

    def window(c: np.ndarray, w: int) -> np.ndarray:
        return np.log1p(c[idx + 1] - c[np.maximum(idx + 1 - w, 0)])

    last = np.maximum.accumulate(np.where(starts > 0, idx, -1))
    cap = 2 * spd
    since = np.log1p(np.minimum(np.where(last >= 0, idx - last, cap), cap)) / np.log1p(cap)
    types = home.devices["type"].to_numpy()
    k = max(int(active.sum()), 1)
    on_share = home.on[active].sum(axis=0) / k
    lights = active & (types == "light")
    lights_on = home.on[lights].sum(axis=0) / max(int(lights.sum()), 1)
    entry = active & np.isin(types, ("door", "lock"))
    ecum = np.concatenate([[0], np.cumsum(home.starts[entry].sum(axis=0, dtype=np.int32))])
    minute = (idx % spd) * home.slot_minutes + home.slot_minutes / 2
    angle = 2 * np.pi * minute / 1440
    weekend = (home.weekday(idx // spd) >= 5).astype(np.float32)
    return np.stack(
        [
            window(cum, per_hour), window(cum, 3 * per_hour), window(cum, 6 * per_hour), since, on_share, lights_on,
            window(ecum, per_hour), window(ecum, 3 * per_hour), np.sin(angle), np.cos(angle), weekend,
            np.full(n, np.log1p(k)),
        ],
        axis=1,
    ).astype(np.float32)  # fmt: skip


def home_state_labels(history: DeviceHistory, presence: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per home, the state code (index into :data:`HOME_STATES`) of each slot, ``-1`` where unknown.

    ``presence`` has the columns of the ``truth_presence`` table.
    """
    out = {}
    for home in history.homes:
        rows = presence[presence["home_id"] == home.home_id]
        n, m = home.n_slots, home.slot_minutes
        labels = np.full(n, -1, np.int8)
        if rows.empty:
            out[home.home_id] = labels
            continue
        zone = zoneinfo.ZoneInfo(home.timezone)
        origin = pd.Timestamp(home.start).to_pydatetime()
        start_us = utc_microseconds(rows["start"])
        end_us = utc_microseconds(rows["end"])
        a = _local_minutes(start_us, zone, origin)
        b = _local_minutes(end_us, zone, origin)
        mid = np.arange(n) * m + m / 2
        residents = rows["resident_id"].to_numpy()
        states = rows["state"].to_numpy()
        awake_home = np.zeros(n, bool)
        asleep = np.zeros(n, bool)
        away_all = np.ones(n, bool)
        covered = np.zeros(n, bool)
        for r in np.unique(residents):
            sel = residents == r
            state_r = np.full(n, -1, np.int8)
            for s, e, st in zip(a[sel], b[sel], states[sel], strict=True):
                lo, hi = np.searchsorted(mid, [s, e])
                state_r[lo:hi] = _CODE[st]
            awake_home |= state_r == 0
            asleep |= state_r == 2
            away_all &= state_r == 1
            covered |= state_r >= 0
        labels[covered] = np.where(away_all, 1, np.where(~awake_home & asleep, 2, 0))[covered]
        out[home.home_id] = labels
    return out


def home_embeddings(history: DeviceHistory, device_embeddings: np.ndarray) -> np.ndarray:
    """``[homes, 2 * dim]``: mean and maximum of each home's device embeddings (devices with events only)."""
    out = np.zeros((len(history.homes), 2 * device_embeddings.shape[1]), np.float32)
    at = 0
    for i, h in enumerate(history.homes):
        e = device_embeddings[at : at + len(h.devices)][h.has_events]
        if len(e):
            out[i] = np.concatenate([e.mean(axis=0), e.max(axis=0)])
        at += len(h.devices)
    return out


class HomeStateModel:
    """Gradient-boosted classifier of the home's state from :func:`home_activity_features`.

    ``features``: ``"activity"`` (device activity and time), ``"clock"`` (time of day and
    weekend only: the baseline), or ``"activity+home"`` (activity plus the home embedding).
    """

    FEATURE_SETS = ("activity", "clock", "activity+home")

    def __init__(self, *, features: str = "activity", max_iter: int = 200, seed: int = 0) -> None:
        self.features = features
        self.max_iter = max_iter
        self.seed = seed

    def _design(self, history: DeviceHistory, home_emb: np.ndarray | None, home_ids=None) -> list[np.ndarray]:
        if self.features not in self.FEATURE_SETS:
            from homeloop.errors import InvalidInputError

            raise InvalidInputError(f"features: expected one of {self.FEATURE_SETS}, got {self.features!r}")
        out = []
        for i, h in enumerate(history.homes):
            x = home_activity_features(h)
            if self.features == "clock":
                x = x[:, 8:11]
            elif self.features == "activity+home":
                if home_emb is None:
                    from homeloop.errors import InvalidInputError

                    raise InvalidInputError("features='activity+home' needs home_embeddings")
                x = np.concatenate([x, np.broadcast_to(home_emb[i], (len(x), home_emb.shape[1]))], axis=1)
            out.append(x)
        return out

    def fit(
        self,
        history: DeviceHistory,
        labels: Mapping[str, np.ndarray],
        train_days: Mapping[str, int],
        *,
        home_embeddings: np.ndarray | None = None,
        max_rows: int = 200_000,
    ) -> HomeStateModel:
        from sklearn.ensemble import HistGradientBoostingClassifier

        xs, ys = [], []
        for h, x in zip(history.homes, self._design(history, home_embeddings), strict=True):
            t = train_days.get(h.home_id, h.days) * h.slots_per_day
            y = labels[h.home_id][:t]
            keep = y >= 0
            xs.append(x[:t][keep])
            ys.append(y[keep])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(x) > max_rows:
            pick = np.random.default_rng(self.seed).choice(len(x), max_rows, replace=False)
            x, y = x[pick], y[pick]
        self.classifier_ = HistGradientBoostingClassifier(max_iter=self.max_iter, random_state=self.seed).fit(x, y)
        return self

    def predict_proba(
        self, history: DeviceHistory, *, home_embeddings: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Per home, ``[slots, 3]`` probabilities of :data:`HOME_STATES`."""
        if not hasattr(self, "classifier_"):
            raise NotFittedError("HomeStateModel: call fit before predict_proba")
        out = {}
        for h, x in zip(history.homes, self._design(history, home_embeddings), strict=True):
            p = np.zeros((len(x), 3), np.float32)
            p[:, self.classifier_.classes_] = self.classifier_.predict_proba(x)
            out[h.home_id] = p
        return out


def evaluate_home_state(
    history: DeviceHistory,
    labels: Mapping[str, np.ndarray],
    train_days: Mapping[str, int],
    *,
    device_embeddings: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Each feature set trained on the training days and scored on the held-out later days.

    Figures per feature set: accuracy, macro F1, and one-vs-rest ROC-AUC for away and asleep.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    emb = home_embeddings(history, device_embeddings) if device_embeddings is not None else None
    sets = ["clock", "activity"] + (["activity+home"] if emb is not None else [])
    out: dict[str, Any] = {}
    for name in sets:
        model = HomeStateModel(features=name, seed=seed).fit(history, labels, train_days, home_embeddings=emb)
        probs = model.predict_proba(history, home_embeddings=emb)
        ys, ps = [], []
        for h in history.homes:
            t = train_days.get(h.home_id, h.days) * h.slots_per_day
            y = labels[h.home_id][t:]
            keep = y >= 0
            ys.append(y[keep])
            ps.append(probs[h.home_id][t:][keep])
        y, p = np.concatenate(ys), np.concatenate(ps)
        pred = p.argmax(axis=1)
        out[name] = {
            "accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, average="macro")),
            "away_auc": float(roc_auc_score(y == 1, p[:, 1])) if 0 < (y == 1).sum() < len(y) else float("nan"),
            "asleep_auc": float(roc_auc_score(y == 2, p[:, 2])) if 0 < (y == 2).sum() < len(y) else float("nan"),
        }
    out["slots"] = int(len(y))
    out["state_shares"] = {s: float((y == i).mean()) for i, s in enumerate(HOME_STATES)}
    if emb is not None:
        out["home_embedding_gain_macro_f1"] = out["activity+home"]["macro_f1"] - out["activity"]["macro_f1"]
    return out
