"""Flip metrics: exact values on hand-made cases, intervals, McNemar's test, slices, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from homeloop.errors import InvalidInputError, NoDataError
from homeloop.graceful.flips import (
    bootstrap_interval,
    compare_predictions,
    mcnemar_test,
    negative_flip_impact,
    negative_flip_rate,
    positive_flip_rate,
    relative_negative_flip_rate,
)

# 10 examples: old right on 0-7, new right on 0-5 and 8 -> negative flips 6, 7; positive flip 8
Y = list("aaaaabbbbb")
OLD = list("aaaaabbbaa")
NEW = list("aaaaabaaba")


def test_hand_computed_values():
    assert negative_flip_rate(Y, OLD, NEW) == pytest.approx(2 / 10)
    assert positive_flip_rate(Y, OLD, NEW) == pytest.approx(1 / 10)
    assert negative_flip_impact(Y, OLD, NEW) == pytest.approx(2 / 3)  # 2 of the new model's 3 errors are flips
    # old accuracy 0.8, new error 0.3: independent errors would flip 0.24
    assert relative_negative_flip_rate(Y, OLD, NEW) == pytest.approx(0.2 / 0.24)


def test_identical_models_flip_nothing():
    report = compare_predictions(Y, OLD, OLD, n_resamples=50)
    assert report["negative_flip_rate"] == report["positive_flip_rate"] == 0.0
    assert report.mcnemar == {"negative_flips": 0, "positive_flips": 0, "p_value": 1.0}
    assert negative_flip_impact(Y, OLD, OLD) == pytest.approx(0.0)


def test_mcnemar_exact_p_values():
    old = np.ones(10, dtype=bool)
    new = np.zeros(10, dtype=bool)
    assert mcnemar_test(old, new)["p_value"] == pytest.approx(2 * 0.5**10)
    balanced = mcnemar_test([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)
    assert balanced == {"negative_flips": 5, "positive_flips": 5, "p_value": pytest.approx(1.0)}


def test_bootstrap_interval_brackets_the_value_and_narrows_with_more_data():
    rng = np.random.default_rng(0)

    def width(n: int) -> tuple[float, float, float]:
        old = rng.random(n) < 0.9
        new = np.where(rng.random(n) < 0.05, ~old, old)
        iv = bootstrap_interval(lambda o, w: float(np.mean(o & ~w)), old, new, n_resamples=300, seed=1)
        assert iv.low <= iv.value <= iv.high
        return iv.high - iv.low, iv.low, iv.high

    assert width(4000)[0] < width(200)[0] / 2
    old = np.array([True, True, False, True] * 25)
    new = np.array([True, False, False, True] * 25)
    a = bootstrap_interval(lambda o, w: float(np.mean(o & ~w)), old, new, n_resamples=100, seed=3)
    b = bootstrap_interval(lambda o, w: float(np.mean(o & ~w)), old, new, n_resamples=100, seed=3)
    assert a == b  # seeded


def test_slices_put_the_regressions_first():
    slices = {"intent": Y, "half": ["x"] * 5 + ["y"] * 5}
    report = compare_predictions(Y, OLD, NEW, slices=slices, n_resamples=50)
    by_intent = report.slices["intent"]
    assert [s.slice for s in by_intent] == ["b", "a"]
    assert (by_intent[0].negative_flips, by_intent[0].positive_flips, by_intent[0].n) == (2, 1, 5)
    assert by_intent[0].old_accuracy == pytest.approx(0.6) and by_intent[0].new_accuracy == pytest.approx(0.4)
    assert [s.slice for s in report.regressions("intent")] == ["b"]
    assert report.regressions("intent", min_n=6) == []
    data = report.as_dict()
    assert data["metrics"]["negative_flip_rate"]["value"] == pytest.approx(0.2)
    assert data["slices"]["half"][0]["slice"] == "y"


def test_inputs_are_checked():
    with pytest.raises(InvalidInputError, match="as many old and new predictions"):
        negative_flip_rate(Y, OLD[:3], NEW)
    with pytest.raises(NoDataError):
        negative_flip_rate([], [], [])
    with pytest.raises(InvalidInputError, match="one slice key per example"):
        compare_predictions(Y, OLD, NEW, slices={"intent": Y[:4]})
    with pytest.raises(InvalidInputError, match="confidence"):
        compare_predictions(Y, OLD, NEW, confidence=1.5)
