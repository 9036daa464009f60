"""Questions to the device-state model and the features that describe them.

A :class:`Queries` asks: is a device on in a slot of its home, knowing the home up to
``horizon`` slots earlier? :func:`query_features` describes each question
(:data:`QUERY_FEATURE_NAMES`): the time of day and week, how far ahead (the horizon),
the device's last known state and how long ago it was last on, the home's activity at
the last known moment (how many of its other devices are on, how many switched on
recently, how long since anything happened) and its room's. :class:`Transitions` holds
the device's transition rates (how often it was on ``horizon`` slots after being off,
and after being on, which is all that "the last state persists" knows); :func:`time_index`
gives the hour of day and of week of slots, for looking up the device's own profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from homeloop.errors import InvalidInputError
from homeloop.home.features import DeviceHistory, HomeSlots

__all__ = [
    "DEFAULT_HORIZONS",
    "QUERY_FEATURE_NAMES",
    "HomeCache",
    "Queries",
    "Transitions",
    "query_features",
    "time_index",
]

DEFAULT_HORIZONS: tuple[int, ...] = (1, 2, 3, 6, 12, 36)
QUERY_FEATURE_NAMES: tuple[str, ...] = (
    "last_state",
    "since_on",
    "since_switch",
    "recency_hidden",
    "others_on_share",
    "home_switches_1h",
    "home_switches_3h",
    "since_home_switch",
    "own_switches_3h",
    "room_on_share",
    "room_switches_1h",
    "time_sin",
    "time_cos",
    "weekend",
    "log_horizon",
)


@dataclass
@dataclass
class Queries:
    """Questions to the model: is device ``device`` (its position in the history's device table) on in
    ``slot`` (of its home), knowing its home up to ``slot - horizon``?"""

    device: np.ndarray
    slot: np.ndarray
    horizon: np.ndarray

    def __len__(self) -> int:
        return int(self.device.size)


class HomeCache:
    """Per-home arrays the query features need (computed once per home)."""

    def __init__(self, home: HomeSlots) -> None:
        n = home.n_slots
        idx = np.arange(n, dtype=np.int32)
        self.last_on = np.maximum.accumulate(np.where(home.on > 0, idx, -1), axis=1)
        self.last_switch = np.maximum.accumulate(np.where(home.starts > 0, idx, -1), axis=1)
        self.home_on = home.on.sum(axis=0, dtype=np.int32)
        switches = home.starts.sum(axis=0, dtype=np.int32)
        self.switch_cum = np.concatenate([[0], np.cumsum(switches)])
        self.last_home_switch = np.maximum.accumulate(np.where(switches > 0, idx, -1))
        self.n_active = max(int(home.has_events.sum()), 1)
        self.own_cum = np.concatenate(
            [np.zeros((len(home.devices), 1), np.int32), np.cumsum(home.starts, axis=1, dtype=np.int32)], axis=1
        )
        # the device's room (or first group): devices sharing it, their on-count and switch counts per slot
        keys = [
            r if isinstance(r, str) and r else (g[0] if len(g) else None)
            for r, g in zip(home.devices["room"], home.devices["groups"], strict=True)
        ]
        names = sorted({k for k in keys if k is not None})
        self.room_of = np.array([names.index(k) if k is not None else -1 for k in keys], dtype=np.int64)
        self.room_size = np.array([(self.room_of == r).sum() for r in range(len(names))] + [0], dtype=np.int64)
        self.room_on = np.zeros((len(names) + 1, n), np.int32)
        self.room_cum = np.zeros((len(names) + 1, n + 1), np.int32)
        for r in range(len(names)):
            sel = self.room_of == r
            self.room_on[r] = home.on[sel].sum(axis=0)
            self.room_cum[r, 1:] = np.cumsum(home.starts[sel].sum(axis=0))


def query_features(
    home: HomeSlots,
    rows: np.ndarray,
    slots: np.ndarray,
    horizons: np.ndarray,
    *,
    hide_recency: np.ndarray | bool = False,
    cache: HomeCache | None = None,
) -> np.ndarray:
    """:data:`QUERY_FEATURE_NAMES` for devices ``rows`` of ``home`` asked about ``slots`` ``horizons`` ahead."""
    cache = cache or HomeCache(home)
    rows, slots, horizons = (np.asarray(a, dtype=np.int64) for a in (rows, slots, horizons))
    if np.any(slots - horizons < 0) or np.any(slots >= home.n_slots):
        raise InvalidInputError(f"home {home.home_id}: query slots must satisfy horizon <= slot < {home.n_slots}")
    known = slots - horizons
    spd = home.slots_per_day
    cap = 2 * spd
    scale = np.log1p(cap)

    def since(last: np.ndarray) -> np.ndarray:
        gap = np.where(last >= 0, known - last, cap)
        return np.log1p(np.minimum(gap, cap)) / scale

    last = home.on[rows, known].astype(np.float32)
    since_on = since(cache.last_on[rows, known])
    since_switch = since(cache.last_switch[rows, known])
    hidden = np.broadcast_to(np.asarray(hide_recency, dtype=bool), rows.shape)
    last = np.where(hidden, 0.0, last)
    since_on = np.where(hidden, 1.0, since_on)
    since_switch = np.where(hidden, 1.0, since_switch)
    others = (cache.home_on[known] - home.on[rows, known]) / max(cache.n_active - 1, 1)
    per_hour = 60 // home.slot_minutes
    ev1 = cache.switch_cum[known + 1] - cache.switch_cum[np.maximum(known + 1 - per_hour, 0)]
    ev3 = cache.switch_cum[known + 1] - cache.switch_cum[np.maximum(known + 1 - 3 * per_hour, 0)]
    since_home = since(cache.last_home_switch[known])
    own3 = cache.own_cum[rows, known + 1] - cache.own_cum[rows, np.maximum(known + 1 - 3 * per_hour, 0)]
    room = cache.room_of[rows]  # -1 (no room) indexes the last, empty row
    own_on = home.on[rows, known].astype(np.int64)
    own_sw = cache.own_cum[rows, known + 1] - cache.own_cum[rows, np.maximum(known + 1 - per_hour, 0)]
    room_others = np.maximum(cache.room_size[room] - 1, 0)
    room_on = np.where(room_others > 0, (cache.room_on[room, known] - own_on) / np.maximum(room_others, 1), 0.0)
    room_sw = cache.room_cum[room, known + 1] - cache.room_cum[room, np.maximum(known + 1 - per_hour, 0)] - own_sw
    room_sw = np.where(room >= 0, np.maximum(room_sw, 0), 0)
    minute = (slots % spd) * home.slot_minutes + home.slot_minutes / 2
    angle = 2 * np.pi * minute / 1440
    weekend = home.weekday(slots // spd) >= 5
    return np.stack(
        [
            last,
            since_on,
            since_switch,
            hidden.astype(np.float32),
            others,
            np.log1p(ev1),
            np.log1p(ev3),
            since_home,
            np.where(hidden, 0.0, np.log1p(own3)),
            room_on,
            np.log1p(room_sw),
            np.sin(angle),
            np.cos(angle),
            weekend.astype(np.float32),
            np.log1p(horizons) / np.log1p(spd),
        ],
        axis=1,
    ).astype(np.float32)


def time_index(home: HomeSlots, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day and hour of week of ``slots`` (for looking up the device's own profile)."""
    spd = home.slots_per_day
    hour = (slots % spd) * home.slot_minutes // 60
    return hour, home.weekday(slots // spd) * 24 + hour


class Transitions:
    """How often each device was on ``h`` slots after being off, and after being on, per training day.

    The decoder gets, for the query's horizon, ``P(on | off h slots before)`` and ``P(on | on h slots
    before)`` of the device (with the target's own day left out while training, like the usage features):
    what "the last state persists" knows, so the model starts from it and learns what the rest adds.
    Counts are smoothed towards the device's on-share with one pseudo-observation.
    """

    def __init__(self, history: DeviceHistory, days: Mapping[str, int] | None, horizons: Sequence[int]) -> None:
        self.horizons = np.asarray(sorted(set(int(h) for h in horizons)), dtype=np.int64)
        n, width = history.n_devices, max((h.days for h in history.homes), default=1)
        self.on_after = np.zeros((n, width, self.horizons.size, 2), np.float32)
        self.total = np.zeros((n, width, self.horizons.size, 2), np.float32)
        self.valid = np.zeros((n, width), bool)
        at = 0
        for home in history.homes:
            k, spd = len(home.devices), home.slots_per_day
            d = home.days if days is None else min(home.days, days.get(home.home_id, home.days))
            t = d * spd
            on = home.on[:, :t].astype(np.float32)
            self.valid[at : at + k, :d] = True
            for j, h in enumerate(self.horizons.tolist()):
                if t <= h:
                    continue
                prev = np.zeros_like(on)
                prev[:, : t - h] = on[:, : t - h]
                was_off = np.zeros_like(on)
                was_off[:, : t - h] = 1 - on[:, : t - h]
                nxt = np.zeros_like(on)
                nxt[:, : t - h] = on[:, h:]
                for state, mask in ((0, was_off), (1, prev)):
                    self.total[at : at + k, :d, j, state] = mask.reshape(k, d, spd).sum(axis=2)
                    self.on_after[at : at + k, :d, j, state] = (mask * nxt).reshape(k, d, spd).sum(axis=2)
            at += k

    def features(self, rows: np.ndarray, horizons: np.ndarray, leave_out_day: np.ndarray | None = None) -> np.ndarray:
        """``[n, 2]``: P(on | off before), P(on | on before) for devices ``rows`` at ``horizons`` (the nearest
        fitted horizon), each optionally without one day."""
        rows = np.asarray(rows, dtype=np.int64)
        j = np.abs(self.horizons[None, :] - np.asarray(horizons, dtype=np.int64)[:, None]).argmin(axis=1)
        use = self.valid[rows].astype(np.float32)
        if leave_out_day is not None:
            lod = np.asarray(leave_out_day)
            hit = lod >= 0
            use[np.flatnonzero(hit), lod[hit]] = 0.0
        on_after = np.einsum("nd,nds->ns", use, self.on_after[rows, :, j])
        total = np.einsum("nd,nds->ns", use, self.total[rows, :, j])
        base = on_after.sum(axis=1) / np.maximum(total.sum(axis=1), 1)
        return ((on_after + base[:, None]) / (total + 1)).astype(np.float32)
