"""Device timelines on a grid of time slots, and the usage features every home model shares.

A home's device history becomes one array ``on[device, slot]``: slot ``k`` covers
``slot_minutes`` of local wall-clock time from local midnight of the home's first
day, and a device is *on* in a slot when it was on (a lock: unlocked, a door or
window: open) at any moment of it. ``starts[device, slot]`` counts the on-switches
in the slot. Short firings of real sensors (a cupboard opened for a few seconds)
therefore count as on for their slot, which is what "was it used then" means.

Time is local so that "7 in the morning" is the same slot in every home; a
daylight-saving day keeps 24 slots-per-hour rows (the hour that repeats folds onto
the one before it).

Bad input is handled, not raised, and counted in :attr:`DeviceHistory.skipped`:

- an interval whose end is before its start is dropped (``reversed_interval``);
- overlapping or touching intervals of one device are merged (``merged_interval``);
- a device with no events stays in the history with an all-off row and
  ``has_events`` false; models skip it for training and scoring (``no_events``);
- a device whose events carry only numbers (a temperature sensor) has no on/off
  state and is treated like one without events (``numeric_only``);
- a type outside :data:`~homeloop.data.schema.DEVICE_TYPES` becomes ``"other"``
  (``unknown_type``).

:func:`usage_features` turns a history into the fixed-length usage vector of each
device (on-probability by hour of day and by hour of week, activations per day,
lengths of on-spans, share of nights on, ...), optionally leaving one day out so
that a model trained on a day never sees that day's own usage in its inputs.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from homeloop.data.schema import DEVICE_TYPES
from homeloop.errors import InvalidInputError, NoDataError

__all__ = [
    "OFF_STATES",
    "ON_STATES",
    "USAGE_FEATURE_NAMES",
    "DeviceHistory",
    "HomeSlots",
    "clean_intervals",
    "history_from_intervals",
    "intervals_from_events",
    "load_history",
    "split_days",
    "usage_features",
    "utc_microseconds",
    "UsageAggregates",
]

#: states that count as on (a light on, a lock unlocked, a door open, a TV playing, ...)
ON_STATES = frozenset(
    {
        "on", "unlocked", "unlocking", "open", "opening", "playing", "paused", "heat", "cool", "heat_cool",
        "auto", "dry", "fan_only", "cleaning", "returning", "active", "detected", "true", "home",
    }
)  # fmt: skip
#: every other discrete state counts as off
OFF_STATES = frozenset({"off", "locked", "locking", "closed", "closing", "idle", "standby", "docked", "false"})

_US_PER_MINUTE = 60_000_000
_TYPE_INDEX = {t: i for i, t in enumerate(DEVICE_TYPES)}


# --------------------------------------------------------------------------- intervals


def intervals_from_events(times_us: np.ndarray, states: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """On-intervals ``(starts, ends)`` in UTC microseconds from one device's time-ordered state changes.

    An on-state opens an interval (a second on-state while on changes nothing), an
    off-state closes it; a ``None`` state (a numeric reading) is ignored. An interval
    still open after the last event ends at the last event of the device.
    """
    starts: list[int] = []
    ends: list[int] = []
    open_at: int | None = None
    last = None
    for t, s in zip(times_us.tolist(), states, strict=True):
        last = t
        if s is None:
            continue
        if s.lower() in ON_STATES:
            if open_at is None:
                open_at = t
        elif open_at is not None:
            starts.append(open_at)
            ends.append(t)
            open_at = None
    if open_at is not None and last is not None:
        starts.append(open_at)
        ends.append(max(last, open_at + 1))
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def clean_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Drop reversed intervals and merge overlapping or touching ones.

    Returns ``(starts, ends, reversed_count, merged_count)``; the result is sorted
    and disjoint. A zero-length interval is kept (it becomes one slot on).
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.shape != ends.shape:
        raise InvalidInputError(f"interval starts and ends: expected equal lengths, got {starts.size} and {ends.size}")
    ok = ends >= starts
    reversed_count = int((~ok).sum())
    starts, ends = starts[ok], ends[ok]
    if starts.size == 0:
        return starts, ends, reversed_count, 0
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    running_end = np.maximum.accumulate(ends)
    new = np.ones(starts.size, dtype=bool)
    new[1:] = starts[1:] > running_end[:-1]
    group = np.cumsum(new) - 1
    merged_starts = starts[new]
    merged_ends = np.zeros(merged_starts.size, dtype=np.int64)
    np.maximum.at(merged_ends, group, ends)
    return merged_starts, merged_ends, reversed_count, int((~new).sum())


# --------------------------------------------------------------------------- slots


@dataclass
class HomeSlots:
    """One home's devices on the slot grid.

    ``devices`` has one row per device (``device_id``, ``name``, ``type``, ``room``,
    ``groups``; from the lake also ``automated_share``, the share of its switch-ons that an
    automation made) in the order of the rows of ``on`` and ``starts``.
    """

    home_id: str
    timezone: str
    start: dt.date  # local date of the first slot
    days: int
    slot_minutes: int
    devices: pd.DataFrame
    on: np.ndarray  # uint8 [devices, days * slots_per_day]
    starts: np.ndarray  # uint8 [devices, days * slots_per_day]: on-switches in the slot (capped at 255)
    has_events: np.ndarray  # bool [devices]

    @property
    def slots_per_day(self) -> int:
        return 1440 // self.slot_minutes

    @property
    def n_slots(self) -> int:
        return self.days * self.slots_per_day

    def weekday(self, day: np.ndarray | int) -> np.ndarray:
        """Weekday (Monday 0) of day index ``day``."""
        return (self.start.weekday() + np.asarray(day)) % 7

    def slot_time(self, slot: int) -> dt.datetime:
        """Local wall-clock time at which ``slot`` begins."""
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(minutes=self.slot_minutes * int(slot))


@dataclass
class DeviceHistory:
    """The homes of a dataset on the slot grid, and what was left out or repaired while reading."""

    homes: list[HomeSlots]
    slot_minutes: int
    skipped: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._index = {h.home_id: i for i, h in enumerate(self.homes)}
        self._table: pd.DataFrame | None = None

    def home(self, home_id: str) -> HomeSlots:
        try:
            return self.homes[self._index[home_id]]
        except KeyError:
            raise InvalidInputError(
                f"home {home_id!r}: not in this history; known homes are {list(self._index)[:10]}"
            ) from None

    @property
    def n_devices(self) -> int:
        return sum(len(h.devices) for h in self.homes)

    def device_table(self) -> pd.DataFrame:
        """Every device of every home, with ``home_id``, its row in its home and ``has_events`` (a copy)."""
        if self._table is None:
            self._table = self._device_table()
        return self._table.copy()

    def _device_table(self) -> pd.DataFrame:
        frames = []
        for h in self.homes:
            df = h.devices.copy()
            df["home_id"] = h.home_id
            df["row"] = np.arange(len(df))
            df["has_events"] = h.has_events
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=["device_id", "name", "type", "room", "groups", "home_id", "row", "has_events"])
        return pd.concat(frames, ignore_index=True)

    def subset(self, home_ids: Iterable[str]) -> DeviceHistory:
        wanted = set(home_ids)
        return DeviceHistory([h for h in self.homes if h.home_id in wanted], self.slot_minutes, Counter(self.skipped))


def _normalise_devices(devices: pd.DataFrame, skipped: Counter) -> pd.DataFrame:
    n = len(devices)

    def column(name: str, default: Any) -> list[Any]:
        return list(devices[name]) if name in devices.columns else [default] * n

    types = column("type", "other")
    unknown = [t not in _TYPE_INDEX for t in types]
    skipped["unknown_type"] += sum(unknown)
    return pd.DataFrame(
        {
            "device_id": list(devices["device_id"]),
            "name": ["" if not isinstance(v, str) else v for v in column("name", "")],
            "type": ["other" if u else t for t, u in zip(types, unknown, strict=True)],
            "room": [r if isinstance(r, str) and r.strip() else None for r in column("room", None)],
            "groups": [list(g) if g is not None and not isinstance(g, float) else [] for g in column("groups", None)],
        }
    )


def _local_us(us: np.ndarray, zone: zoneinfo.ZoneInfo, origin: dt.datetime) -> np.ndarray:
    """Microseconds of local wall-clock time since the local naive datetime ``origin``."""
    if us.size == 0:
        return np.zeros(0, dtype=np.int64)
    if zone.key == "UTC":
        return np.asarray(us, dtype=np.int64) - np.datetime64(origin, "us").astype(np.int64)
    local = pd.to_datetime(us, unit="us", utc=True).tz_convert(zone).tz_localize(None).as_unit("us")
    return (local.asi8 - np.datetime64(origin, "us").astype(np.int64)).astype(np.int64)


def _local_minutes(us: np.ndarray, zone: zoneinfo.ZoneInfo, origin: dt.datetime) -> np.ndarray:
    """Minutes of local wall-clock time since the local naive datetime ``origin``."""
    return _local_us(us, zone, origin) // _US_PER_MINUTE


def _home_slots(
    home_id: str,
    timezone: str | None,
    devices: pd.DataFrame,
    intervals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    slot_minutes: int,
    skipped: Counter,
    span_us: tuple[int, int] | None = None,
) -> HomeSlots | None:
    zone = zoneinfo.ZoneInfo(timezone or "UTC")
    devices = _normalise_devices(devices, skipped)
    cleaned: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lo, hi = None, None
    for device_id in devices["device_id"]:
        s, e = intervals.get(device_id, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        s, e, rev, merged = clean_intervals(s, e)
        skipped["reversed_interval"] += rev
        skipped["merged_interval"] += merged
        if s.size:
            cleaned[device_id] = (s, e)
            lo = int(s[0]) if lo is None else min(lo, int(s[0]))
            hi = int(e.max()) if hi is None else max(hi, int(e.max()))
    if span_us is not None:
        lo = span_us[0] if lo is None else min(lo, span_us[0])
        hi = span_us[1] if hi is None else max(hi, span_us[1])
    if lo is None or hi is None:
        skipped["home_without_events"] += 1
        return None
    first = pd.Timestamp(lo, unit="us", tz="UTC").tz_convert(zone).date()
    last = pd.Timestamp(hi, unit="us", tz="UTC").tz_convert(zone).date()
    days = (last - first).days + 1
    spd = 1440 // slot_minutes
    n = days * spd
    origin = dt.datetime.combine(first, dt.time())
    on = np.zeros((len(devices), n), dtype=np.uint8)
    starts = np.zeros((len(devices), n), dtype=np.uint8)
    has = np.zeros(len(devices), dtype=bool)
    slot_us = slot_minutes * _US_PER_MINUTE
    ids = [d for d in devices["device_id"] if d in cleaned]
    if ids:  # one time-zone conversion for the whole home
        lengths = [cleaned[d][0].size for d in ids]
        local_s = _local_us(np.concatenate([cleaned[d][0] for d in ids]), zone, origin)
        local_e = _local_us(np.concatenate([cleaned[d][1] for d in ids]), zone, origin)
        cuts = np.cumsum(lengths)[:-1]
        local = dict(zip(ids, zip(np.split(local_s, cuts), np.split(local_e, cuts), strict=True), strict=True))
    for row, device_id in enumerate(devices["device_id"]):
        if device_id not in cleaned:
            continue
        ls, le = local[device_id]
        a = np.clip(ls // slot_us, 0, n - 1)
        b = np.clip((le - 1) // slot_us, 0, n - 1)  # an end on a boundary ends the slot before
        b = np.maximum(a, b)  # a daylight-saving fold can put an end before its start in local time
        delta = np.zeros(n + 1, dtype=np.int32)
        np.add.at(delta, a, 1)
        np.add.at(delta, b + 1, -1)
        on[row] = np.cumsum(delta[:-1]) > 0
        np.add.at(starts[row], a, 1)
        has[row] = True
    skipped["no_events"] += int((~has).sum())
    return HomeSlots(home_id, zone.key, first, days, slot_minutes, devices, on, starts, has)


def history_from_intervals(
    homes: Sequence[Mapping[str, Any]],
    devices: pd.DataFrame | Sequence[Mapping[str, Any]],
    intervals: Mapping[str, tuple[Sequence[Any], Sequence[Any]]],
    *,
    slot_minutes: int = 10,
) -> DeviceHistory:
    """A history from on-intervals given directly: ``intervals[device_id] = (starts, ends)``.

    Times are UTC datetimes, pandas timestamps or microseconds since the epoch.
    Reversed intervals are dropped and overlapping ones merged (see the module docs).
    """
    _check_slot_minutes(slot_minutes)
    devices = pd.DataFrame(list(devices)) if not isinstance(devices, pd.DataFrame) else devices
    skipped: Counter = Counter()
    out = []
    for home in homes:
        hid = home["home_id"]
        devs = devices[devices["home_id"] == hid]
        ivs = {d: (_to_us(s), _to_us(e)) for d, (s, e) in intervals.items() if d in set(devs["device_id"])}
        hs = _home_slots(hid, home.get("timezone"), devs, ivs, slot_minutes, skipped)
        if hs is not None:
            out.append(hs)
    return DeviceHistory(out, slot_minutes, skipped)


def utc_microseconds(values: Any) -> np.ndarray:
    """UTC microseconds since the epoch of times (datetimes, strings with offsets, a pandas column)."""
    return pd.to_datetime(pd.Series(values), utc=True).dt.as_unit("us").astype("int64").to_numpy()


def _to_us(values: Sequence[Any]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "i":
        return values.astype(np.int64)
    values = list(values)
    if values and isinstance(values[0], (int, np.integer)):
        return np.asarray(values, dtype=np.int64)
    return utc_microseconds(pd.Series(values, dtype=object))


def _check_slot_minutes(slot_minutes: int) -> None:
    if not isinstance(slot_minutes, int) or slot_minutes < 1 or 1440 % slot_minutes or 60 % slot_minutes:
        raise InvalidInputError(f"slot_minutes: expected a divisor of 60 such as 5, 10 or 15, got {slot_minutes!r}")


def load_history(
    lake: Any, dataset: str, *, slot_minutes: int = 10, home_ids: Iterable[str] | None = None
) -> DeviceHistory:
    """Read ``homes``, ``devices`` and ``device_events`` of ``dataset`` from the lake onto the slot grid.

    Speakers and devices without events are kept with ``has_events`` false. Raises
    :class:`~homeloop.errors.NoDataError` when the dataset has no device events.
    """
    _check_slot_minutes(slot_minutes)
    for name in ("devices", "device_events"):
        if not lake.has(dataset, name):
            raise NoDataError(f"dataset {dataset!r}: table {name!r} is missing; ingest device history first")
    con = lake.connect(dataset)
    wanted = None if home_ids is None else sorted(set(home_ids))
    where = "" if wanted is None else "WHERE home_id IN (SELECT unnest(?::VARCHAR[]))"
    params = [] if wanted is None else [wanted]
    homes = (
        con.execute(f"SELECT home_id, timezone FROM homes {where} ORDER BY home_id", params).df()
        if lake.has(dataset, "homes")
        else pd.DataFrame(columns=["home_id", "timezone"])
    )
    devices = con.execute(f"SELECT device_id, home_id, name, type, room, groups FROM devices {where}", params).df()
    events = con.execute(
        f"SELECT device_id, home_id, epoch_us(time) AS t, state, source FROM device_events {where} "
        "ORDER BY device_id, time",
        params,
    ).df()
    if events.empty:
        raise NoDataError(f"dataset {dataset!r}: no device events" + ("" if wanted is None else f" for {wanted}"))
    skipped: Counter = Counter()
    zones = dict(zip(homes["home_id"], homes["timezone"], strict=True))
    dev_ids = events["device_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, dev_ids[1:] != dev_ids[:-1], True])
    times = events["t"].to_numpy(dtype=np.int64)
    states = events["state"].to_numpy(dtype=object)
    ivs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    span: dict[str, tuple[int, int]] = {}
    home_of = events["home_id"].to_numpy()
    sources = events["source"].to_numpy(dtype=object)
    automated: dict[str, float] = {}
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        st = [s if isinstance(s, str) else None for s in states[a:b]]
        if all(s is None for s in st):
            skipped["numeric_only"] += 1
            continue
        on = [i for i, s in enumerate(st) if s is not None and s.lower() in ON_STATES]
        if on:
            automated[dev_ids[a]] = sum(sources[a + i] == "automation" for i in on) / len(on)
        ivs[dev_ids[a]] = intervals_from_events(times[a:b], st)
        hid = home_of[a]
        lo, hi = span.get(hid, (times[a], times[b - 1]))
        span[hid] = (min(lo, times[a]), max(hi, times[b - 1]))
    out = []
    for hid, devs in devices.groupby("home_id", sort=True):
        hs = _home_slots(str(hid), zones.get(hid), devs, ivs, slot_minutes, skipped, span.get(hid))
        if hs is not None:
            hs.devices["automated_share"] = [automated.get(d, 0.0) for d in hs.devices["device_id"]]
            out.append(hs)
    if not out:
        raise NoDataError(f"dataset {dataset!r}: no device has an on/off state")
    return DeviceHistory(out, slot_minutes, skipped)


def split_days(history: DeviceHistory, *, train_fraction: float = 0.7) -> dict[str, int]:
    """How many leading days of each home are for training; the later days are held out.

    At least one day is trained on and, when a home has two days or more, at least one is held out.
    """
    if not 0 < train_fraction < 1:
        raise InvalidInputError(f"train_fraction: expected a number strictly between 0 and 1, got {train_fraction}")
    return {
        h.home_id: max(1, min(h.days - 1, round(h.days * train_fraction))) if h.days > 1 else 1 for h in history.homes
    }


# --------------------------------------------------------------------------- usage features

USAGE_FEATURE_NAMES: tuple[str, ...] = (
    *(f"on_hour_{h:02d}" for h in range(24)),
    *(f"on_week_{d}_{h:02d}" for d in range(7) for h in range(24)),
    "log_activations_per_day",
    "log_mean_on_span_hours",
    "on_share",
    "night_on_share",
    "active_day_share",
    "home_log_devices",
    *(f"home_on_hour_{h:02d}" for h in range(24)),
)


@dataclass
class UsageAggregates:
    """Per-day sums of every device of a history, from which usage features are computed.

    Arrays are indexed by the device's position in :meth:`DeviceHistory.device_table`
    and by day (padded to the longest home); ``valid`` marks the days that may be used
    (the training days).
    """

    hourly: np.ndarray  # float32 [devices, days, 24]: share of the hour's slots on
    activations: np.ndarray  # float32 [devices, days]
    on_slots: np.ndarray  # float32 [devices, days]
    valid: np.ndarray  # bool [devices, days]
    weekday: np.ndarray  # int8 [devices, days]
    home_log_devices: np.ndarray  # float32 [devices]
    home_hod: np.ndarray  # float32 [devices, 24]: mean on-share by hour over the home's devices
    slot_minutes: int

    @classmethod
    def of(cls, history: DeviceHistory, days: Mapping[str, int] | None = None) -> UsageAggregates:
        """Aggregates of ``history`` over each home's first ``days[home_id]`` days (all days by default)."""
        n = history.n_devices
        max_days = max((h.days for h in history.homes), default=1)
        hourly = np.zeros((n, max_days, 24), np.float32)
        activations = np.zeros((n, max_days), np.float32)
        valid = np.zeros((n, max_days), bool)
        weekday = np.zeros((n, max_days), np.int8)
        home_log = np.zeros(n, np.float32)
        home_hod = np.zeros((n, 24), np.float32)
        at = 0
        for h in history.homes:
            d = h.days if days is None else min(h.days, days.get(h.home_id, h.days))
            k = len(h.devices)
            spd, per_hour = h.slots_per_day, 60 // h.slot_minutes
            on = h.on[:, : d * spd].reshape(k, d, 24, per_hour)
            hourly[at : at + k, :d] = on.mean(axis=3, dtype=np.float32)
            activations[at : at + k, :d] = h.starts[:, : d * spd].reshape(k, d, spd).sum(axis=2, dtype=np.float32)
            valid[at : at + k, :d] = True
            weekday[at : at + k, : h.days] = h.weekday(np.arange(h.days))
            active = h.has_events
            home_log[at : at + k] = np.log1p(max(int(active.sum()), 1))
            if active.any():
                home_hod[at : at + k] = hourly[at : at + k][active].mean(axis=(0, 1))
            at += k
        on_slots = hourly.sum(axis=2) * (60 // history.slot_minutes)
        return cls(hourly, activations, on_slots, valid, weekday, home_log, home_hod, history.slot_minutes)


def usage_features(
    agg: UsageAggregates, rows: np.ndarray, leave_out_day: np.ndarray | None = None, *, shrinkage: float = 1.0
) -> np.ndarray:
    """Usage vectors (:data:`USAGE_FEATURE_NAMES`) of devices ``rows``, each optionally without one day.

    ``leave_out_day[i]`` is a day to leave out for ``rows[i]`` or ``-1`` for none. The
    hour-of-week profile is shrunk towards the hour-of-day profile by ``shrinkage``
    pseudo-days, because a few weeks give few observations of each hour of the week.
    """
    rows = np.asarray(rows)
    n = rows.size
    use = agg.valid[rows].astype(np.float32)  # [n, days]
    if leave_out_day is not None:
        lod = np.asarray(leave_out_day)
        hit = lod >= 0
        use[np.flatnonzero(hit), lod[hit]] = 0.0
    hourly = agg.hourly[rows]
    n_eff = np.maximum(use.sum(axis=1), 1.0)
    hod = np.einsum("nd,ndh->nh", use, hourly) / n_eff[:, None]
    week = np.eye(7, dtype=np.float32)[agg.weekday[rows]] * use[:, :, None]  # [n, days, 7]
    week_sum = np.einsum("ndw,ndh->nwh", week, hourly)
    week_n = week.sum(axis=1)
    how = (week_sum + shrinkage * hod[:, None, :]) / (week_n[:, :, None] + shrinkage)
    act_total = (agg.activations[rows] * use).sum(axis=1)
    on_total = (agg.on_slots[rows] * use).sum(axis=1)
    active_days = ((agg.activations[rows] > 0) * use).sum(axis=1)
    slots_per_hour = 60 / agg.slot_minutes
    mean_span_hours = np.where(act_total > 0, on_total / np.maximum(act_total, 1) / slots_per_hour, 0.0)
    stats = np.stack(
        [
            np.log1p(act_total / n_eff),
            np.log1p(mean_span_hours),
            hod.mean(axis=1),
            hod[:, :5].mean(axis=1),
            active_days / n_eff,
        ],
        axis=1,
    )
    return np.concatenate(
        [hod, how.reshape(n, 168), stats, agg.home_log_devices[rows, None], agg.home_hod[rows]], axis=1
    ).astype(np.float32)
