"""Regression metrics of a model update: negative and positive flips, with intervals, a test and slices.

A *negative flip* is an example the old model got right and the new one gets
wrong; a *positive flip* is the reverse. Following Yan et al. (CVPR 2021,
"Positive-Congruent Training") and Xie et al. (ACL 2021, "Regression Bugs Are
In Your Model!"):

- negative flip rate ``NFR = #{old right, new wrong} / n``;
- positive flip rate ``PFR = #{old wrong, new right} / n``;
- negative flip impact ``NFI = #{negative flips} / #{new model's errors}``
  (the share of the new model's errors that are regressions);
- relative NFR ``NFR / ((1 - ER_old) * ER_new)``: the NFR divided by what it
  would be if the two models erred independently (1 = independent errors,
  below 1 = the new model's errors concentrate where the old one erred too).

:func:`compare_predictions` computes them all with percentile bootstrap
intervals (examples resampled with replacement), McNemar's exact test of
"the two models are equally accurate" on the discordant pairs, and per-slice
tables (e.g. by intent or scenario) sorted by where the regressions are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from homeloop.errors import InvalidInputError, NoDataError

__all__ = [
    "FLIP_METRICS",
    "FlipReport",
    "Interval",
    "SliceReport",
    "bootstrap_interval",
    "compare_predictions",
    "mcnemar_test",
    "negative_flip_impact",
    "negative_flip_rate",
    "positive_flip_rate",
    "relative_negative_flip_rate",
]


def _arrays(y_true: Sequence[Any], old_pred: Sequence[Any], new_pred: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean arrays ``old_right``, ``new_right``; checks the three sequences line up."""
    n = len(y_true)
    if len(old_pred) != n or len(new_pred) != n:
        raise InvalidInputError(
            f"flip metrics: expected as many old and new predictions as labels ({n}), "
            f"got {len(old_pred)} old and {len(new_pred)} new"
        )
    if n == 0:
        raise NoDataError("flip metrics: expected at least one labelled example, got none")
    y = np.asarray(list(y_true), dtype=object)
    old_right = np.asarray(list(old_pred), dtype=object) == y
    new_right = np.asarray(list(new_pred), dtype=object) == y
    return old_right.astype(bool), new_right.astype(bool)


def _nfr(old_right: np.ndarray, new_right: np.ndarray) -> float:
    return float(np.mean(old_right & ~new_right))


def _pfr(old_right: np.ndarray, new_right: np.ndarray) -> float:
    return float(np.mean(~old_right & new_right))


def _nfi(old_right: np.ndarray, new_right: np.ndarray) -> float:
    errors = int(np.sum(~new_right))
    return float(np.sum(old_right & ~new_right) / errors) if errors else 0.0


def _relative_nfr(old_right: np.ndarray, new_right: np.ndarray) -> float:
    expected = float(np.mean(old_right)) * float(np.mean(~new_right))
    return _nfr(old_right, new_right) / expected if expected > 0 else 0.0


def _old_error(old_right: np.ndarray, new_right: np.ndarray) -> float:
    return float(np.mean(~old_right))


def _new_error(old_right: np.ndarray, new_right: np.ndarray) -> float:
    return float(np.mean(~new_right))


def _error_change(old_right: np.ndarray, new_right: np.ndarray) -> float:
    return float(np.mean(~new_right) - np.mean(~old_right))


#: the update's figures as functions of (old_right, new_right) boolean arrays, by name
FLIP_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "negative_flip_rate": _nfr,
    "positive_flip_rate": _pfr,
    "negative_flip_impact": _nfi,
    "relative_negative_flip_rate": _relative_nfr,
    "old_error_rate": _old_error,
    "new_error_rate": _new_error,
    "error_rate_change": _error_change,
}


def negative_flip_rate(y_true: Sequence[Any], old_pred: Sequence[Any], new_pred: Sequence[Any]) -> float:
    """Share of examples the old model got right and the new one gets wrong."""
    return _nfr(*_arrays(y_true, old_pred, new_pred))


def positive_flip_rate(y_true: Sequence[Any], old_pred: Sequence[Any], new_pred: Sequence[Any]) -> float:
    """Share of examples the old model got wrong and the new one gets right."""
    return _pfr(*_arrays(y_true, old_pred, new_pred))


def negative_flip_impact(y_true: Sequence[Any], old_pred: Sequence[Any], new_pred: Sequence[Any]) -> float:
    """Negative flips over the new model's errors (0 when the new model makes none)."""
    return _nfi(*_arrays(y_true, old_pred, new_pred))


def relative_negative_flip_rate(y_true: Sequence[Any], old_pred: Sequence[Any], new_pred: Sequence[Any]) -> float:
    """NFR over ``(1 - ER_old) * ER_new``, the NFR of two models that err independently (0 when that is 0)."""
    return _relative_nfr(*_arrays(y_true, old_pred, new_pred))


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided bootstrap interval at ``confidence``."""

    value: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "confidence": self.confidence}


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    old_right: np.ndarray,
    new_right: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic(old_right, new_right)``, resampling examples (paired)."""
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence: expected a number between 0 and 1, got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise InvalidInputError(f"n_resamples: expected a positive integer, got {n_resamples!r}")
    old_right, new_right = np.asarray(old_right, dtype=bool), np.asarray(new_right, dtype=bool)
    n = len(old_right)
    value = statistic(old_right, new_right)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for b in range(n_resamples):
        take = rng.integers(0, n, n)
        draws[b] = statistic(old_right[take], new_right[take])
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(value=value, low=float(low), high=float(high), confidence=confidence)


def mcnemar_test(old_right: Sequence[bool], new_right: Sequence[bool]) -> dict[str, float]:
    """McNemar's exact test of equal accuracy on paired predictions.

    Under the null hypothesis a discordant example is as likely to be a
    negative as a positive flip, so the negative flips follow
    Binomial(negative + positive, 1/2). Returns the two counts and the
    two-sided p-value (1.0 when there is no discordant example).
    """
    old_right, new_right = np.asarray(old_right, dtype=bool), np.asarray(new_right, dtype=bool)
    negative = int(np.sum(old_right & ~new_right))
    positive = int(np.sum(~old_right & new_right))
    discordant = negative + positive
    p = float(stats.binomtest(negative, discordant, 0.5).pvalue) if discordant else 1.0
    return {"negative_flips": negative, "positive_flips": positive, "p_value": p}


@dataclass(frozen=True)
class SliceReport:
    """The update's figures on one slice of the examples (one intent, one scenario, ...)."""

    slice: str
    n: int
    old_accuracy: float
    new_accuracy: float
    negative_flips: int
    positive_flips: int

    @property
    def negative_flip_rate(self) -> float:
        return self.negative_flips / self.n if self.n else 0.0

    @property
    def accuracy_change(self) -> float:
        return self.new_accuracy - self.old_accuracy

    def as_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "n": self.n,
            "old_accuracy": self.old_accuracy,
            "new_accuracy": self.new_accuracy,
            "accuracy_change": self.accuracy_change,
            "negative_flips": self.negative_flips,
            "positive_flips": self.positive_flips,
            "negative_flip_rate": self.negative_flip_rate,
        }


@dataclass(frozen=True)
class FlipReport:
    """What an update changed, example by example (see the module docstring for the metrics).

    ``metrics`` maps each name of :data:`FLIP_METRICS` to an :class:`Interval`;
    ``mcnemar`` holds the flip counts and the test's p-value; ``slices`` maps a
    slicing name (``"intent"``, ``"scenario"``) to its slices, most negative
    flips first.
    """

    n: int
    metrics: dict[str, Interval]
    mcnemar: dict[str, float]
    slices: dict[str, list[SliceReport]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name].value

    @property
    def negative_flip_rate(self) -> Interval:
        return self.metrics["negative_flip_rate"]

    def regressions(self, slicing: str, *, min_n: int = 1, min_drop: float = 0.0) -> list[SliceReport]:
        """The slices of ``slicing`` with at least ``min_n`` examples whose accuracy fell by more than ``min_drop``."""
        return [s for s in self.slices.get(slicing, []) if s.n >= min_n and -s.accuracy_change > min_drop]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
            "mcnemar": dict(self.mcnemar),
            "slices": {k: [s.as_dict() for s in v] for k, v in self.slices.items()},
        }


def _slice_reports(keys: Sequence[Any], old_right: np.ndarray, new_right: np.ndarray) -> list[SliceReport]:
    if len(keys) != len(old_right):
        raise InvalidInputError(f"slices: expected one slice key per example ({len(old_right)}), got {len(keys)}")
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(str(key), []).append(i)
    out = []
    for key, rows in groups.items():
        o, w = old_right[rows], new_right[rows]
        out.append(
            SliceReport(
                slice=key,
                n=len(rows),
                old_accuracy=float(o.mean()),
                new_accuracy=float(w.mean()),
                negative_flips=int(np.sum(o & ~w)),
                positive_flips=int(np.sum(~o & w)),
            )
        )
    out.sort(key=lambda s: (-s.negative_flips, s.accuracy_change, s.slice))
    return out


def compare_predictions(
    y_true: Sequence[Any],
    old_pred: Sequence[Any],
    new_pred: Sequence[Any],
    *,
    slices: Mapping[str, Sequence[Any]] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> FlipReport:
    """Every flip metric with a bootstrap interval, McNemar's test and per-slice tables.

    ``slices`` maps a slicing name to one key per example, e.g.
    ``{"intent": y_true, "scenario": [u.scenario for u in test]}``.
    """
    old_right, new_right = _arrays(y_true, old_pred, new_pred)
    metrics = {
        name: bootstrap_interval(fn, old_right, new_right, n_resamples=n_resamples, confidence=confidence, seed=seed)
        for name, fn in FLIP_METRICS.items()
    }
    return FlipReport(
        n=len(old_right),
        metrics=metrics,
        mcnemar=mcnemar_test(old_right, new_right),
        slices={name: _slice_reports(list(keys), old_right, new_right) for name, keys in (slices or {}).items()},
    )
