"""Device timelines on the slot grid, bad input, and usage features."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from homeloop.adapters.houses import ingest_houses
from homeloop.errors import InvalidInputError, NoDataError
from homeloop.home.features import (
    UsageAggregates,
    clean_intervals,
    history_from_intervals,
    intervals_from_events,
    load_history,
    split_days,
    usage_features,
)

UTC = dt.UTC


def _t(h, m=0, day=2):
    return dt.datetime(2026, 3, day, h, m, tzinfo=UTC)


def test_intervals_from_events_opens_on_and_closes_on_off():
    us = np.array([0, 10, 20, 30, 40, 50], dtype=np.int64)
    starts, ends = intervals_from_events(us, ["on", "on", "off", "unlocked", None, "locked"])
    assert starts.tolist() == [0, 30] and ends.tolist() == [20, 50]
    # an interval still open at the end closes at the last event
    starts, ends = intervals_from_events(np.array([5, 9]), ["off", "open"])
    assert starts.tolist() == [9] and ends.tolist() == [10]


def test_clean_intervals_drops_reversed_and_merges_overlaps():
    s, e, rev, merged = clean_intervals(np.array([50, 0, 10, 100]), np.array([40, 20, 30, 120]))
    assert rev == 1 and merged == 1
    assert s.tolist() == [0, 100] and e.tolist() == [30, 120]
    with pytest.raises(InvalidInputError, match="equal lengths"):
        clean_intervals(np.array([1]), np.array([1, 2]))


def test_history_handles_bad_input():
    homes = [{"home_id": "h", "timezone": "Europe/Amsterdam"}, {"home_id": "solo", "timezone": None}]
    devices = pd.DataFrame(
        [
            {"device_id": "lamp", "home_id": "h", "name": "Lamp", "type": "light", "room": "Living", "groups": []},
            {"device_id": "ghost", "home_id": "h", "name": "Plug 1", "type": "plug", "room": None, "groups": None},
            {"device_id": "weird", "home_id": "h", "name": "Gizmo", "type": "teleporter", "room": "", "groups": []},
            {"device_id": "only", "home_id": "solo", "name": "Bulb", "type": "light", "room": None, "groups": []},
        ]
    )
    intervals = {
        # 18:00-19:00 UTC is 19:00-20:00 in Amsterdam; an overlapping and a reversed interval
        "lamp": ([_t(18), _t(18, 30), _t(21)], [_t(19), _t(18, 45), _t(20)]),
        "weird": ([_t(8)], [_t(8, 5)]),
        "only": ([_t(7, day=3)], [_t(7, 20, day=3)]),
    }
    history = history_from_intervals(homes, devices, intervals, slot_minutes=10)
    assert history.skipped["reversed_interval"] == 1
    assert history.skipped["merged_interval"] == 1
    assert history.skipped["no_events"] == 1  # the ghost plug
    assert history.skipped["unknown_type"] == 1
    home = history.home("h")
    assert home.devices["type"].tolist() == ["light", "plug", "other"]
    assert home.has_events.tolist() == [True, False, True]
    lamp = np.flatnonzero(home.on[0])
    assert lamp[0] == 19 * 6 and lamp[-1] == 20 * 6 - 1  # local time, slots 19:00 to 19:50
    assert home.on[1].sum() == 0
    solo = history.home("solo")  # a home with a single device
    assert solo.days == 1 and solo.on[0].sum() == 2 and solo.starts[0].sum() == 1
    assert split_days(history) == {"h": 1, "solo": 1}
    with pytest.raises(InvalidInputError, match="not in this history"):
        history.home("nowhere")
    with pytest.raises(InvalidInputError, match="slot_minutes"):
        history_from_intervals(homes, devices, intervals, slot_minutes=7)


def test_usage_features_leave_one_day_out_equals_the_other_days():
    rng = np.random.default_rng(0)
    homes = [{"home_id": "h", "timezone": "UTC"}]
    devices = [{"device_id": f"d{i}", "home_id": "h", "name": f"D{i}", "type": "light"} for i in range(3)]
    intervals = {}
    for i in range(3):
        starts = sorted(rng.integers(0, 6 * 86400, 30))
        intervals[f"d{i}"] = (
            [1_772_409_600_000_000 + int(s) * 1_000_000 for s in starts],
            [1_772_409_600_000_000 + (int(s) + 1800) * 1_000_000 for s in starts],
        )
    history = history_from_intervals(homes, devices, intervals)
    full = UsageAggregates.of(history)
    left = usage_features(full, np.array([0, 1]), np.array([2, 2]))
    # the same features computed from aggregates without day 2
    other = UsageAggregates.of(history)
    other.valid[:, 2] = False
    direct = usage_features(other, np.array([0, 1]))
    np.testing.assert_allclose(left, direct, rtol=1e-5, atol=1e-6)
    assert not np.allclose(left, usage_features(full, np.array([0, 1])))


def test_load_history_reads_the_real_houses(lake):
    ingest_houses(lake, ["A", "D"])
    history = load_history(lake, "houses")
    assert [h.home_id for h in history.homes] == ["houseA", "houseD"]
    assert [len(h.devices) for h in history.homes] == [14, 72]
    assert all(h.has_events.all() for h in history.homes)
    a = history.home("houseA")
    assert a.days == 28 and a.timezone == "Europe/Amsterdam"
    assert 0.01 < a.on.mean() < 0.5
    with pytest.raises(NoDataError, match="missing"):
        load_history(lake, "nothing-here")


def test_transitions_count_what_follows_each_state_and_leave_a_day_out():
    from homeloop.home.queries import Transitions

    # on 08:00-10:00 on two days, hourly slots: on in slots 8, 9 and 32, 33
    history = history_from_intervals(
        [{"home_id": "h", "timezone": "UTC"}],
        [{"device_id": "d", "home_id": "h", "name": "Lamp", "type": "light"}],
        {"d": ([_t(8, day=2), _t(8, day=3)], [_t(10, day=2), _t(10, day=3)])},
        slot_minutes=60,
    )
    assert np.flatnonzero(history.homes[0].on[0]).tolist() == [8, 9, 32, 33]
    trans = Transitions(history, {"h": 2}, horizons=[1, 6])
    # one slot later: on after on 2 of 4 times, after off 2 of 43; smoothed towards 4/47 with one pseudo-count
    base = 4 / 47
    expected = [(2 + base) / (43 + 1), (2 + base) / (4 + 1)]
    np.testing.assert_allclose(trans.features(np.array([0]), np.array([1]))[0], expected, rtol=1e-5)
    # a horizon that was not counted takes the nearest one
    np.testing.assert_allclose(trans.features(np.array([0]), np.array([2]))[0], expected, rtol=1e-5)
    # leaving day 0 out counts the second day's pairs alone (23 of them, 1 of 2 after on, 1 of 21 after off)
    base = 2 / 23
    left = trans.features(np.array([0]), np.array([1]), leave_out_day=np.array([0]))[0]
    np.testing.assert_allclose(left, [(1 + base) / 22, (1 + base) / 3], rtol=1e-5)


def test_a_device_forgotten_before_the_window_is_still_forgotten_inside_it():
    from homeloop.home.hunches import CONTEXT_FEATURE_NAMES, HunchCandidates, forgotten_labels

    # the lamp is left on at 22:30 on day 1 and stays on until 08:00 on day 2; a second period on day 2 is fine
    history = history_from_intervals(
        [{"home_id": "h", "timezone": "UTC"}],
        [{"device_id": "lamp", "home_id": "h", "name": "Lamp", "type": "light"}],
        {"lamp": ([_t(22, day=2), _t(18, day=3)], [_t(8, day=3), _t(19, day=3)])},
        slot_minutes=60,
    )
    forgotten = pd.DataFrame({"device_id": ["lamp"], "time": [_t(22, 30, day=2)]})
    # candidates from a window that starts at midnight of day 2 (slot 24): the first period runs into it
    slots = np.array([24, 25, 26, 42])
    candidates = HunchCandidates(
        device=np.zeros(4, np.int64),
        slot=slots,
        run=np.array([0, 0, 0, 1]),
        context=np.zeros((4, len(CONTEXT_FEATURE_NAMES)), np.float32),
    )
    assert forgotten_labels(history, candidates, forgotten).tolist() == [1, 1, 1, 0]
