"""Home state: are the residents at home and awake, away, or asleep, told from device activity alone.

:func:`home_activity_features` describes each slot of a home by what its devices did
up to the end of that slot (switches in the last hour, three and six hours, time since
anything happened, share of devices and of lights on, door and lock activity, time of
day): only the past, so the state can be told as it happens. :class:`HomeStateModel`
is a gradient-boosted classifier over those features, trained across homes; it can
also take a *home embedding* (:func:`home_embeddings`, the mean and maximum of a home's
device embeddings), which says what kind of home it is, or, as a control, a random
vector per home (:func:`random_home_vectors`), which tells homes apart and says nothing
about them. :func:`home_state_labels` turns the simulator's per-resident presence into
the home's state: away when every resident is away, asleep when nobody is awake at home
and someone sleeps, else home.

:func:`evaluate_home_state` scores each feature set on the held-out later days of the
homes it trained on, and on homes it never saw (:func:`home_folds`): only the second can
show that what the home embedding *says* helps, since on the first a per-home constant
can work as a home identifier.
"""

from __future__ import annotations

import zlib
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from homeloop.errors import InvalidInputError, NotFittedError
from homeloop.home.features import DeviceHistory, HomeSlots, _local_minutes, utc_microseconds

__all__ = [
    "HOME_STATES",
    "HomeStateModel",
    "by_home",
    "evaluate_home_state",
    "home_activity_features",
    "home_embeddings",
    "home_folds",
    "home_state_labels",
    "random_home_vectors",
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


def by_home(history: DeviceHistory, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per home, its rows of ``rows``: one row per slot of every home of ``history``, in order (what a
    home-state model's ``predict_proba`` returns)."""
    if len(rows) != sum(h.n_slots for h in history.homes):
        raise InvalidInputError(
            f"rows: expected one per slot of every home ({sum(h.n_slots for h in history.homes)}), got {len(rows)}"
        )
    out, at = {}, 0
    for h in history.homes:
        out[h.home_id] = rows[at : at + h.n_slots]
        at += h.n_slots
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


def random_home_vectors(home_ids: Sequence[str], dim: int, *, seed: int = 0) -> np.ndarray:
    """``[homes, dim]`` standard-normal vectors drawn from ``seed`` and each home's id alone.

    The control for :func:`home_embeddings`: a per-home constant that tells homes apart
    and carries nothing about them (the same home always gets the same vector).
    """
    out = np.empty((len(home_ids), dim), np.float32)
    for i, home_id in enumerate(home_ids):
        out[i] = np.random.default_rng([seed, zlib.crc32(str(home_id).encode())]).standard_normal(dim)
    return out


def home_folds(home_ids: Sequence[str], *, folds: int = 3, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``folds`` pairs ``(train homes, test homes)``: every home is a test home exactly once, never both."""
    ids = sorted(set(home_ids))
    if not 2 <= folds <= len(ids):
        raise InvalidInputError(f"folds: expected 2 to {len(ids)} (the number of homes), got {folds}")
    parts = np.array_split(np.random.default_rng(seed).permutation(len(ids)), folds)
    return [
        ([ids[j] for j in sorted(set(range(len(ids))) - set(part.tolist()))], [ids[j] for j in sorted(part)])
        for part in parts
    ]


class HomeStateModel(BaseEstimator):
    """Gradient-boosted classifier of the home's state from :func:`home_activity_features`.

    ``features``: ``"activity"`` (device activity and time), ``"clock"`` (time of day and
    weekend only: the baseline), ``"activity+home"`` (activity plus the home embedding), or
    ``"activity+random"`` (activity plus :func:`random_home_vectors` of ``random_dim``
    dimensions: the control for the home embedding). ``max_rows``: at most this many
    labelled slots (drawn at random) train the classifier.

    :meth:`predict_proba` has one row per slot of every home, in the history's order
    (:func:`by_home` splits them), and one column per state of :data:`HOME_STATES`
    (``classes_`` are their codes).
    """

    FEATURE_SETS = ("activity", "clock", "activity+home", "activity+random")

    def __init__(
        self,
        *,
        features: str = "activity",
        max_iter: int = 200,
        random_dim: int = 64,
        max_rows: int = 200_000,
        seed: int = 0,
    ) -> None:
        self.features = features
        self.max_iter = max_iter
        self.random_dim = random_dim
        self.max_rows = max_rows
        self.seed = seed

    def _design(self, history: DeviceHistory, home_emb: np.ndarray | None, home_ids=None) -> list[np.ndarray]:
        if self.features not in self.FEATURE_SETS:
            raise InvalidInputError(f"features: expected one of {self.FEATURE_SETS}, got {self.features!r}")
        if self.features == "activity+random":
            home_emb = random_home_vectors([h.home_id for h in history.homes], self.random_dim, seed=self.seed)
        elif self.features == "activity+home" and home_emb is None:
            raise InvalidInputError("features='activity+home' needs home_embeddings")
        out = []
        for i, h in enumerate(history.homes):
            x = home_activity_features(h)
            if self.features == "clock":
                x = x[:, 8:11]
            elif self.features in ("activity+home", "activity+random"):
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
        if len(x) > self.max_rows:
            pick = np.random.default_rng(self.seed).choice(len(x), self.max_rows, replace=False)
            x, y = x[pick], y[pick]
        self.classifier_ = HistGradientBoostingClassifier(max_iter=self.max_iter, random_state=self.seed).fit(x, y)
        self.classes_ = np.arange(len(HOME_STATES))
        return self

    def predict_proba(self, history: DeviceHistory, *, home_embeddings: np.ndarray | None = None) -> np.ndarray:
        """``[slots of every home, 3]`` probabilities of :data:`HOME_STATES` (:func:`by_home` splits them)."""
        if not hasattr(self, "classifier_"):
            raise NotFittedError("HomeStateModel: call fit before predict_proba")
        out = []
        for x in self._design(history, home_embeddings):
            p = np.zeros((len(x), 3), np.float32)
            p[:, self.classifier_.classes_] = self.classifier_.predict_proba(x)
            out.append(p)
        return np.concatenate(out) if out else np.zeros((0, 3), np.float32)

    def predict(self, history: DeviceHistory, *, home_embeddings: np.ndarray | None = None) -> np.ndarray:
        """The likeliest state's code (index into :data:`HOME_STATES`) of every slot of every home."""
        proba = self.predict_proba(history, home_embeddings=home_embeddings)
        return self.classes_[proba.argmax(axis=1)]


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    pred = p.argmax(axis=1)
    return {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "away_auc": float(roc_auc_score(y == 1, p[:, 1])) if 0 < (y == 1).sum() < len(y) else float("nan"),
        "asleep_auc": float(roc_auc_score(y == 2, p[:, 2])) if 0 < (y == 2).sum() < len(y) else float("nan"),
    }


def _held_out_slots(
    history: DeviceHistory, labels: Mapping[str, np.ndarray], train_days: Mapping[str, int], probs: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    probs = by_home(history, probs)
    ys, ps = [], []
    for h in history.homes:
        t = train_days.get(h.home_id, h.days) * h.slots_per_day
        y = labels[h.home_id][t:]
        keep = y >= 0
        ys.append(y[keep])
        ps.append(probs[h.home_id][t:][keep])
    return ys, ps


def evaluate_home_state(
    history: DeviceHistory,
    labels: Mapping[str, np.ndarray],
    train_days: Mapping[str, int],
    *,
    device_embeddings: np.ndarray | None = None,
    home_folds_count: int | None = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Each feature set trained on the training days and scored on the held-out later days.

    Figures per feature set: accuracy, macro F1, and one-vs-rest ROC-AUC for away and asleep.
    With ``device_embeddings``, ``"activity+home"`` and its control ``"activity+random"`` (a
    random vector per home of the same dimension) join ``"clock"`` and ``"activity"``.

    Two settings: the top-level figures train on every home's training days and score the
    same homes' later days (a per-home constant can act as a home identifier there);
    ``"held_out_homes"`` (unless ``home_folds_count`` is None) splits the homes into
    ``home_folds_count`` folds (:func:`home_folds`), trains on the other folds' training days
    and scores each fold's later days, so every home is scored once by a model that never saw it.
    """
    emb = home_embeddings(history, device_embeddings) if device_embeddings is not None else None
    sets = ["clock", "activity"] + (["activity+home", "activity+random"] if emb is not None else [])
    dim = emb.shape[1] if emb is not None else 64

    def model(name: str) -> HomeStateModel:
        return HomeStateModel(features=name, random_dim=dim, seed=seed)

    out: dict[str, Any] = {}
    for name in sets:
        probs = (
            model(name)
            .fit(history, labels, train_days, home_embeddings=emb)
            .predict_proba(history, home_embeddings=emb)
        )
        ys, ps = _held_out_slots(history, labels, train_days, probs)
        y = np.concatenate(ys)
        out[name] = _scores(y, np.concatenate(ps))
    out["slots"] = int(len(y))
    out["state_shares"] = {s: float((y == i).mean()) for i, s in enumerate(HOME_STATES)}
    if emb is not None:
        out["home_embedding_gain_macro_f1"] = out["activity+home"]["macro_f1"] - out["activity"]["macro_f1"]
        out["random_vector_gain_macro_f1"] = out["activity+random"]["macro_f1"] - out["activity"]["macro_f1"]
    if home_folds_count is None:
        return out
    row = {h.home_id: i for i, h in enumerate(history.homes)}
    folds = home_folds(list(row), folds=home_folds_count, seed=seed)
    unseen: dict[str, Any] = {"folds": len(folds), "homes": len(row)}
    for name in sets:
        ys, ps = [], []
        for train_ids, test_ids in folds:
            train, test = history.subset(train_ids), history.subset(test_ids)
            e_train = emb[[row[h.home_id] for h in train.homes]] if emb is not None else None
            e_test = emb[[row[h.home_id] for h in test.homes]] if emb is not None else None
            probs = (
                model(name)
                .fit(train, labels, train_days, home_embeddings=e_train)
                .predict_proba(test, home_embeddings=e_test)
            )
            y_f, p_f = _held_out_slots(test, labels, train_days, probs)
            ys += y_f
            ps += p_f
        unseen[name] = _scores(np.concatenate(ys), np.concatenate(ps))
    unseen["slots"] = int(sum(len(y) for y in ys))
    if emb is not None:
        unseen["home_embedding_gain_macro_f1"] = unseen["activity+home"]["macro_f1"] - unseen["activity"]["macro_f1"]
        unseen["random_vector_gain_macro_f1"] = unseen["activity+random"]["macro_f1"] - unseen["activity"]["macro_f1"]
    out["held_out_homes"] = unseen
    return out
