"""Simple baselines for device-state prediction, each fitted per device on the training days.

- :class:`HourOfWeekPrior`: the share of the training days the device was on in the
  query's hour of the week (shrunk towards its hour-of-day share).
- :class:`LastStatePersists`: the device's last known state persists; as a
  probability, how often the device's state at ``horizon`` slots later matched that
  state on the training days (so the ranking is the last state's, and the Brier score is fair).
- :class:`HourLogistic`: logistic regression on the hour of day (one-hot) and a weekend flag.

All share ``fit(history, train_days)``, ``predict_proba(history, queries)`` (``[n, 2]``: P(off),
P(on)) and ``predict`` with :class:`~homeloop.home.device_model.DeviceStateModel`;
:data:`BASELINES` lists them by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from homeloop.errors import NotFittedError
from homeloop.home.features import DeviceHistory, UsageAggregates, usage_features
from homeloop.home.queries import DEFAULT_HORIZONS, Queries, time_index

__all__ = ["BASELINES", "HourLogistic", "HourOfWeekPrior", "LastStatePersists"]


def _locate(history: DeviceHistory) -> tuple[np.ndarray, np.ndarray]:
    homes = np.repeat(np.arange(len(history.homes)), [len(h.devices) for h in history.homes])
    rows = np.concatenate([np.arange(len(h.devices)) for h in history.homes])
    return homes, rows


class _StateBaseline(BaseEstimator):
    """What the baselines share: ``classes_`` (off, on), the fitted check, and :meth:`_labels` for ``predict``."""

    _fitted: str  # the attribute fit sets

    def _check(self) -> None:
        if not hasattr(self, self._fitted):
            raise NotFittedError(f"{type(self).__name__}: call fit(history, train_days) before predicting")

    @staticmethod
    def _on_off(on: np.ndarray) -> np.ndarray:
        return np.stack([1 - on, on], axis=1)

    def _labels(self, proba: np.ndarray) -> np.ndarray:
        return self.classes_[proba.argmax(axis=1)]


class HourOfWeekPrior(_StateBaseline):
    """P(on) = the device's on-share in the query's hour of the week on the training days."""

    _fitted = "profiles_"

    def __init__(self, *, shrinkage: float = 1.0) -> None:
        self.shrinkage = shrinkage

    def fit(self, history: DeviceHistory, train_days: Mapping[str, int]) -> HourOfWeekPrior:
        agg = UsageAggregates.of(history, train_days)
        self.profiles_ = usage_features(agg, np.arange(history.n_devices), shrinkage=self.shrinkage)[:, 24:192]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        self._check()
        homes, _ = _locate(history)
        out = np.zeros(len(queries), np.float32)
        for hi in np.unique(homes[queries.device]):
            sel = np.flatnonzero(homes[queries.device] == hi)
            _, how = time_index(history.homes[hi], queries.slot[sel])
            out[sel] = self.profiles_[queries.device[sel], how]
        return self._on_off(out)

    def predict(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        """1 where the queried device is more likely on than off in its slot, else 0."""
        return self._labels(self.predict_proba(history, queries))


class LastStatePersists(_StateBaseline):
    """P(on) = how often, on the training days, the device's state ``horizon`` slots later was on given the
    state it had then (a per-device table for each of ``horizons``; a query at another horizon uses the
    nearest)."""

    _fitted = "table_"

    def __init__(self, *, horizons: Sequence[int] = DEFAULT_HORIZONS) -> None:
        self.horizons = horizons

    def fit(self, history: DeviceHistory, train_days: Mapping[str, int]) -> LastStatePersists:
        self.table_: dict[int, np.ndarray] = {}
        homes, rows = _locate(history)
        for h in self.horizons:
            table = np.zeros((history.n_devices, 2), np.float32)
            at = 0
            for home in history.homes:
                k = len(home.devices)
                t = train_days.get(home.home_id, home.days) * home.slots_per_day
                on = home.on[:, :t].astype(np.float32)
                if t > h:
                    prev, nxt = on[:, :-h], on[:, h:]
                    base = (on.mean(axis=1) if t else np.zeros(k)).astype(np.float32)
                    p_after_on = ((prev * nxt).sum(1) + base) / (prev.sum(1) + 1)
                    p_after_off = (((1 - prev) * nxt).sum(1) + base) / ((1 - prev).sum(1) + 1)
                    table[at : at + k] = np.stack([p_after_off, p_after_on], axis=1)
                at += k
            self.table_[h] = table
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        self._check()
        homes, rows = _locate(history)
        out = np.zeros(len(queries), np.float32)
        for hz in np.unique(queries.horizon):
            sel = np.flatnonzero(queries.horizon == hz)
            table = self.table_.get(int(hz))
            if table is None:  # a horizon not fitted: the nearest one
                table = self.table_[min(self.table_, key=lambda k: abs(k - int(hz)))]
            for hi in np.unique(homes[queries.device[sel]]):
                s2 = sel[homes[queries.device[sel]] == hi]
                home = history.homes[hi]
                last = home.on[rows[queries.device[s2]], queries.slot[s2] - queries.horizon[s2]]
                out[s2] = table[queries.device[s2], last]
        return self._on_off(out)

    def predict(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        """1 where the queried device is more likely on than off in its slot, else 0."""
        return self._labels(self.predict_proba(history, queries))


class HourLogistic(_StateBaseline):
    """Per-device logistic regression of the state on the hour of day (one-hot) and a weekend flag."""

    _fitted = "coef_"

    def __init__(self, *, C: float = 1.0) -> None:
        self.C = C

    def fit(self, history: DeviceHistory, train_days: Mapping[str, int]) -> HourLogistic:
        from sklearn.linear_model import LogisticRegression

        self.coef_ = np.zeros((history.n_devices, 25), np.float32)
        self.intercept_ = np.zeros(history.n_devices, np.float32)
        at = 0
        for home in history.homes:
            k = len(home.devices)
            t = train_days.get(home.home_id, home.days) * home.slots_per_day
            x = self._design(home, np.arange(t))
            for r in range(k):
                y = home.on[r, :t]
                if y.min() == y.max():  # never or always on: a constant
                    p = np.clip(y.mean() if y.size else 0.0, 1e-4, 1 - 1e-4)
                    self.intercept_[at + r] = np.log(p / (1 - p))
                    continue
                lr = LogisticRegression(C=self.C, max_iter=200).fit(x, y)
                self.coef_[at + r], self.intercept_[at + r] = lr.coef_[0], lr.intercept_[0]
            at += k
        self.classes_ = np.array([0, 1])
        return self

    @staticmethod
    def _design(home, slots: np.ndarray) -> np.ndarray:
        hour, _ = time_index(home, slots)
        weekend = home.weekday(slots // home.slots_per_day) >= 5
        return np.concatenate([np.eye(24, dtype=np.float32)[hour], weekend[:, None].astype(np.float32)], axis=1)

    def predict_proba(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        self._check()
        homes, _ = _locate(history)
        out = np.zeros(len(queries), np.float32)
        for hi in np.unique(homes[queries.device]):
            sel = np.flatnonzero(homes[queries.device] == hi)
            x = self._design(history.homes[hi], queries.slot[sel])
            d = queries.device[sel]
            out[sel] = 1 / (1 + np.exp(-((x * self.coef_[d]).sum(1) + self.intercept_[d])))
        return self._on_off(out)

    def predict(self, history: DeviceHistory, queries: Queries) -> np.ndarray:
        """1 where the queried device is more likely on than off in its slot, else 0."""
        return self._labels(self.predict_proba(history, queries))


#: baselines by the name the figures use
BASELINES = {
    "hour_of_week_prior": HourOfWeekPrior,
    "last_state_persists": LastStatePersists,
    "hour_logistic": HourLogistic,
}
