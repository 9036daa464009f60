"""Residents' days: presence, the device usage it drives, forgotten devices, and the
requests residents make to the assistant.

Times are local hours counted from midnight of the simulation's first day (so day
``d`` spans ``[24 d, 24 (d + 1))``); :mod:`homeloop.world.simulate` turns them
into UTC with the home's time zone. Everything here draws from streams keyed by
home and day, so a day is the same whatever else changes.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

import numpy as np

from homeloop.world.config import WorldConfig
from homeloop.world.homes import Resident, SimDevice, SimHome
from homeloop.world.rng import stream

__all__ = ["Goal", "HomeTimeline", "Interval", "simulate_routines"]

HOME, AWAY, ASLEEP = 0, 1, 2
_STATE_NAMES = {HOME: "home", AWAY: "away", ASLEEP: "asleep"}
MINUTES = 1440


@dataclass
class Interval:
    """A device is on (a lock: unlocked) from ``start`` to ``end`` local hours."""

    device: SimDevice
    start: float
    end: float
    on_by: str  # "person" or "automation"
    off_by: str


@dataclass
class Goal:
    """Something a resident wants from the assistant at a time."""

    goal_id: str
    home: SimHome
    resident: Resident | None  # None for a false wake
    time: float  # local hours since the first midnight
    kind: str  # "device", "info" or "false_wake"
    device: SimDevice | None = None
    action: str | None = None  # "on" / "off" for device goals
    intent: str | None = None  # the true intent
    speaker_index: int = 0


@dataclass
class HomeTimeline:
    home: SimHome
    intervals: list[Interval] = field(default_factory=list)
    presence: list[tuple[str, float, float, str]] = field(default_factory=list)  # resident, start, end, state
    forgotten: list[tuple[SimDevice, float, str]] = field(default_factory=list)  # device, when, reason
    goals: list[Goal] = field(default_factory=list)
    # voice goals behind transitions: (device_id, time) -> goal_id; source decided by the outcome
    voice_transitions: dict[tuple[str, float], str] = field(default_factory=dict)


def _poisson(rnd: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rnd.random()
        if p <= threshold:
            return k
        k += 1


class _Day:
    """Presence of a home's residents on one day, on a one-minute grid."""

    def __init__(self, home: SimHome, day: int, date: dt.date, config: WorldConfig) -> None:
        self.day, self.date, self.base = day, date, 24.0 * day
        self.weekday = date.weekday() < 5
        rnd = stream(config.seed, "day", home.index, date.toordinal())
        self.states = np.full((len(home.residents), MINUTES), ASLEEP, dtype=np.int8)
        self.segments: list[list[tuple[float, float, int]]] = []
        self.leaves: list[float] = []
        self.returns: list[float] = []
        self.wakes: list[float] = []
        self.sleeps: list[float] = []
        for r, res in enumerate(home.residents):
            wake = (res.wake_weekday if self.weekday else res.wake_weekend) + rnd.gauss(0, 0.25)
            late = 0.5 if date.weekday() in (4, 5) else 0.0
            sleep = min(res.sleep + late + rnd.gauss(0, 0.3), 23.95)
            wake = min(max(wake, 4.5), sleep - 6)
            away: tuple[float, float] | None = None
            if res.works_away and self.weekday:
                leave = max(res.leave + rnd.gauss(0, 0.15), wake + 0.4)
                back = min(res.come_back + rnd.gauss(0, 0.4), sleep - 1.0)
                away = (leave, back)
            elif rnd.random() < 0.45:
                start = rnd.uniform(max(wake + 1, 10), 16)
                away = (start, min(start + rnd.uniform(1, 3.5), sleep - 1.0))
            segs = [(0.0, wake, ASLEEP)]
            if away and away[1] - away[0] > 0.25:
                segs += [(wake, away[0], HOME), (away[0], away[1], AWAY), (away[1], sleep, HOME)]
                self.leaves.append(away[0])
                self.returns.append(away[1])
            else:
                segs.append((wake, sleep, HOME))
            segs.append((sleep, 24.0, ASLEEP))
            for s, e, state in segs:
                self.states[r, int(s * 60) : int(e * 60)] = state
            self.segments.append(segs)
            self.wakes.append(wake)
            self.sleeps.append(sleep)
        self.awake_home = (self.states == HOME).any(axis=0)
        self.anyone_asleep = (self.states == ASLEEP).any(axis=0)
        self._spans: list[tuple[float, float]] | None = None

    @staticmethod
    def minute(h: float) -> int:
        return min(max(int(h * 60), 0), MINUTES - 1)

    def awake_at(self, h: float) -> list[int]:
        m = self.minute(h)
        return [r for r in range(self.states.shape[0]) if self.states[r, m] == HOME]

    def spans(self) -> list[tuple[float, float]]:
        """Stretches of the day when someone is at home and awake."""
        if self._spans is not None:
            return self._spans
        mask = self.awake_home.astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask, [0]))))
        self._spans = [(s / 60, e / 60) for s, e in zip(edges[::2], edges[1::2], strict=True)]
        return self._spans

    def next_awake(self, h: float) -> float | None:
        m = self.minute(h)
        later = np.flatnonzero(self.awake_home[m:])
        return (m + later[0]) / 60 if len(later) else None


def _clip_to_spans(day: _Day, start: float, end: float) -> list[tuple[float, float]]:
    out = []
    for s, e in day.spans():
        lo, hi = max(s, start), min(e, end)
        if hi - lo > 0.03:
            out.append((lo, hi))
    return out


def _device_day(dev: SimDevice, day: _Day, rnd: random.Random, has: set[str]) -> list[tuple[float, float, str, str]]:
    """On-intervals of one device on one day, in hours of that day (end may pass 24)."""
    a = dev.archetype.name
    P, A = "person", "automation"
    out: list[tuple[float, float, str, str]] = []
    first_wake = min(day.wakes)
    last_sleep = max(day.sleeps)
    if a in ("living_lamp", "lamp_plug") and (a == "living_lamp" or "living_lamp" not in has):
        evening = rnd.uniform(17.25, 19.5)
        out += [(s, e - rnd.uniform(0.0, 0.1), P, P) for s, e in _clip_to_spans(day, evening, 24)]
    elif a == "porch_light":
        dusk, dawn = rnd.uniform(18.5, 20.5), rnd.uniform(6.0, 7.25)
        out.append((dusk, 24 + dawn, A if rnd.random() < 0.7 else P, A))
    elif a == "kitchen_light":
        out += [(s, s + rnd.uniform(0.3, 0.8), P, P) for s, _ in _clip_to_spans(day, first_wake, first_wake + 1)[:1]]
        dinner = rnd.uniform(17.5, 19.5)
        out += [(s, min(e, s + rnd.uniform(0.75, 1.75)), P, P) for s, e in _clip_to_spans(day, dinner, dinner + 2)[:1]]
    elif a == "bathroom_light":
        for r in range(len(day.wakes)):
            mins = np.flatnonzero(day.states[r] == HOME)
            if len(mins) == 0:
                continue
            for _ in range(_poisson(rnd, 2.5)):
                s = mins[rnd.randrange(len(mins))] / 60
                out.append((s, s + rnd.uniform(0.05, 0.2), P, P))
            if rnd.random() < 0.5:
                s = rnd.uniform(19.5, max(day.sleeps[r] - 0.6, 19.6))
                if day.states[r, day.minute(s)] == HOME:
                    out.append((s, s + rnd.uniform(0.33, 0.67), P, P))
    elif a == "bedroom_light":
        out.append((day.sleeps[0] - rnd.uniform(0.3, 0.7), day.sleeps[0] - 0.02, P, P))
        out.append((day.wakes[0], day.wakes[0] + rnd.uniform(0.1, 0.3), P, P))
    elif a == "coffee_maker":
        s = first_wake + rnd.uniform(0.05, 0.3)
        out.append((s, s + rnd.uniform(0.15, 0.4), P, A if rnd.random() < 0.5 else P))
    elif a == "oven":
        if rnd.random() < 0.6:  # dinner
            s = rnd.uniform(17.0, 18.75)
            out += [(lo, min(hi, lo + rnd.uniform(0.5, 1.25)), P, P) for lo, hi in _clip_to_spans(day, s, s + 2)[:1]]
        if not day.weekday and rnd.random() < 0.4:  # weekend lunch
            s = rnd.uniform(11.5, 12.5)
            out += [(lo, min(hi, lo + rnd.uniform(0.4, 1.0)), P, P) for lo, hi in _clip_to_spans(day, s, s + 1.5)[:1]]
    elif a == "tv":
        s = rnd.uniform(19.5, 21.0)
        out += [(lo, min(hi, lo + rnd.uniform(1, 3)), P, P) for lo, hi in _clip_to_spans(day, s, last_sleep)[:1]]
        if not day.weekday and rnd.random() < 0.4:
            s = rnd.uniform(13, 16)
            out += [(lo, min(hi, lo + rnd.uniform(0.5, 2)), P, P) for lo, hi in _clip_to_spans(day, s, s + 2)[:1]]
    elif a in ("hall_light", "garage_light"):
        for t in day.returns:
            out.append((t, t + rnd.uniform(0.05, 0.2), P, P))
        for t in day.leaves:
            out.append((t - rnd.uniform(0.05, 0.15), t - 0.01, P, P))
    elif a == "office_light":
        if day.weekday:  # someone works from home: only while someone is at home and awake
            for s, e in ((rnd.uniform(8.75, 9.5), 12.5), (13.5, rnd.uniform(16.5, 17.75))):
                out += [(lo, hi, P, P) for lo, hi in _clip_to_spans(day, s, e)[:1]]
    elif a == "front_door":
        for t in day.leaves + day.returns:
            out.append((t - 0.02, t + rnd.uniform(0.03, 0.1), P, P))
    elif a == "vacuum":
        if day.weekday and day.leaves and rnd.random() < 0.4:
            s = max(day.leaves) - 0.05
            out.append((s, s + rnd.uniform(0.75, 1.25), P, A))
    elif a == "bedroom_fan":
        if rnd.random() < 0.5:
            out.append((day.sleeps[0] - 0.2, 24 + day.wakes[0] - 0.1, P, P))
    elif a == "kids_lamp":
        s = rnd.uniform(18.75, 19.5)
        out += [(lo, min(hi, lo + rnd.uniform(0.75, 1.5)), P, P) for lo, hi in _clip_to_spans(day, s, s + 2)[:1]]
    return [(s, e, on, off) for s, e, on, off in out if e - s > 0.01]


def _merge(intervals: list[Interval]) -> list[Interval]:
    intervals.sort(key=lambda i: i.start)
    merged: list[Interval] = []
    for iv in intervals:
        if merged and iv.start <= merged[-1].end + 1 / 120:
            last = merged[-1]
            if iv.end > last.end:
                last.end, last.off_by = iv.end, iv.off_by
        else:
            merged.append(iv)
    return merged


def simulate_routines(home: SimHome, config: WorldConfig) -> HomeTimeline:
    """Presence, device intervals, forgotten devices and goals of one home over the whole run."""
    tl = HomeTimeline(home)
    has = {d.archetype.name for d in home.devices}
    per_device: dict[str, list[Interval]] = {d.device_id: [] for d in home.devices}
    days: list[_Day] = []
    for d in range(config.days):
        date = config.start + dt.timedelta(days=d)
        day = _Day(home, d, date, config)
        days.append(day)
        for r, segs in enumerate(day.segments):
            for s, e, state in segs:
                if e > s:
                    tl.presence.append((home.residents[r].resident_id, day.base + s, day.base + e, _STATE_NAMES[state]))
        for dev in home.devices:
            rnd = stream(config.seed, "usage", home.index, date.toordinal(), dev.device_id)
            for s, e, on_by, off_by in _device_day(dev, day, rnd, has):
                if dev.archetype.forgettable and off_by == "person" and e < 24:
                    m = day.minute(e + 5 / 60)
                    if not day.awake_home[m] and rnd.random() < config.forget_probability:
                        reason = "sleeping" if day.anyone_asleep[m] else "leaving"
                        back = day.next_awake(e + 5 / 60)
                        tl.forgotten.append((dev, day.base + e, reason))
                        e = (back if back is not None else 24 + min(day.wakes)) + rnd.uniform(0.02, 0.2)
                per_device[dev.device_id].append(Interval(dev, day.base + s, day.base + e, on_by, off_by))
    # lamp_plug follows the living-room lamp by automation
    lamp = next((d for d in home.devices if d.archetype.name == "living_lamp"), None)
    for dev in home.devices:
        if dev.archetype.name == "lamp_plug" and lamp is not None:
            rnd = stream(config.seed, "follow", home.index, dev.device_id)
            per_device[dev.device_id] = [
                Interval(
                    dev,
                    iv.start + rnd.uniform(0.005, 0.03),
                    iv.end + rnd.uniform(0.005, 0.03),
                    "automation",
                    "automation",
                )
                for iv in per_device[lamp.device_id]
            ]
    for dev in home.devices:
        tl.intervals.extend(_merge(per_device[dev.device_id]))
    tl.intervals.sort(key=lambda i: (i.start, i.device.device_id))
    _make_goals(tl, days, config)
    return tl


def _pick_speaker(home: SimHome, room: str | None, rnd: random.Random) -> int:
    for i, s in enumerate(home.speakers):
        if s.room == room:
            return i
    return rnd.randrange(len(home.speakers))


def _make_goals(tl: HomeTimeline, days: list[_Day], config: WorldConfig) -> None:
    home = tl.home
    goals: list[Goal] = []
    voice: list[tuple[str, int, Goal]] = []
    # device control by voice: person transitions, by someone awake at home then
    voice_rnd: dict[str, random.Random] = {}
    for iv in tl.intervals:
        rnd = voice_rnd.get(iv.device.device_id)
        if rnd is None:
            rnd = voice_rnd[iv.device.device_id] = stream(config.seed, "voice", iv.device.device_id)
        for when, action, by in ((iv.start, "on", iv.on_by), (iv.end, "off", iv.off_by)):
            d = int(when // 24)
            if by != "person" or d >= len(days):
                continue
            day = days[d]
            awake = day.awake_at(when - day.base - (1 / 60 if action == "off" else 0))
            if not awake or rnd.random() >= iv.device.archetype.voice_share:
                continue
            resident = home.residents[rnd.choice(awake)]
            intent = iv.device.archetype.on_intent if action == "on" else iv.device.archetype.off_intent
            t = when - rnd.uniform(2, 6) / 3600  # the request comes a few seconds before the change
            goal = Goal(
                "", home, resident, t, "device", iv.device, action, intent, _pick_speaker(home, iv.device.room, rnd)
            )
            goals.append(goal)
            voice.append((iv.device.device_id, round(when * 3600), goal))
    # other requests, while awake at home
    for day in days:
        rnd = stream(config.seed, "info", home.index, day.date.toordinal())
        for r, res in enumerate(home.residents):
            mins = np.flatnonzero(day.states[r] == HOME)
            for _ in range(_poisson(rnd, config.info_request_rate * len(mins) / 60)):
                t = day.base + (mins[rnd.randrange(len(mins))] + rnd.random()) / 60
                goals.append(Goal("", home, res, t, "info", speaker_index=_pick_speaker(home, None, rnd)))
    # TV speech that wakes the assistant
    for iv in tl.intervals:
        if iv.device.archetype.name != "tv":
            continue
        rnd = stream(config.seed, "falsewake", iv.device.device_id, round(iv.start * 3600))
        for _ in range(_poisson(rnd, config.false_wake_rate * (iv.end - iv.start))):
            goals.append(
                Goal(
                    "",
                    home,
                    None,
                    rnd.uniform(iv.start, iv.end),
                    "false_wake",
                    speaker_index=_pick_speaker(home, iv.device.room, rnd),
                )
            )
    goals.sort(key=lambda g: (g.time, g.kind, g.device.device_id if g.device else ""))
    for i, g in enumerate(goals):
        g.goal_id = f"{home.home_id}-{config.start:%Y%m%d}-g{i:06d}"
    # remember which goal is behind each voice transition
    tl.voice_transitions = {(device_id, when): g.goal_id for device_id, when, g in voice}
    tl.goals = goals
