"""Real smart-home sensor timelines: the van Kasteren (houses A-C) and MIT (houses D-E) data.

The vendored folder ``homeloop/datasets/vendor/van_kasteren_mit`` holds houses A and D
in the format its ``README.txt`` describes: ``house<X>.sensors`` and
``house<X>.activities`` have one tab-separated row per firing (start as epoch seconds
in GMT, duration in seconds, id); ``house<X>.sensor_names`` and
``house<X>.activity_names`` map ids to names.

Each sensor that fires at least once becomes a device (house A: 14, house D: 72);
named sensors that never fire are kept in :attr:`House.silent_sensors` but are not
devices. Each on-interval becomes two device events, ``"on"`` at its start and
``"off"`` at its end, with source ``"unknown"`` (the data does not say who acted).

Intervals of one sensor that overlap or touch are merged into one, because a
sensor cannot switch on while it is on, and two events at the same instant would
share one key in the lake. A zero-length firing (shorter than the files' one-second
resolution) counts as one second long. A row with a negative duration or that is
not three integers is rejected: :func:`load_house` raises an error naming the file
and line, or, for :func:`ingest_houses`, the row goes to the lake's quarantine.

Names: house D names are ``"Room,Object"``; the room is the configuration's ground
truth (room inference hides it later) and the object is the device name. House A
names carry no room (``"Hall-Toilet door"`` stays the name, room ``None``). Device
types come from the keyword table :data:`OBJECT_TYPES`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from homeloop.data.lake import IngestResult, Lake
from homeloop.datasets._base import vendor_path
from homeloop.errors import InvalidInputError, MissingInputError, SchemaError

__all__ = [
    "HOUSE_TIMEZONES",
    "OBJECT_TYPES",
    "ActivityInterval",
    "House",
    "RejectedRow",
    "SensorInterval",
    "device_type_for",
    "ingest_houses",
    "load_house",
]

_UTC = dt.UTC

#: Where the houses are: van Kasteren's houses A-C in the Netherlands, MIT's D-E near Boston.
HOUSE_TIMEZONES: dict[str, str] = {
    "A": "Europe/Amsterdam",
    "B": "Europe/Amsterdam",
    "C": "Europe/Amsterdam",
    "D": "America/New_York",
    "E": "America/New_York",
}

_HOUSE_NAMES: dict[str, str] = {
    "A": "van Kasteren house A",
    "B": "van Kasteren house B",
    "C": "van Kasteren house C",
    "D": "MIT house D",
    "E": "MIT house E",
}

#: Object keyword -> device type, checked in order on the lower-cased object name; the
#: first keyword contained in the name wins, and a name matching none is ``"other"``.
OBJECT_TYPES: tuple[tuple[str, str], ...] = (
    ("light switch", "light"),
    ("lamp", "light"),
    ("light", "light"),
    ("door", "door"),  # room doors, front door, and house D's kitchen doors
    ("window", "window"),
    ("exhaust fan", "fan"),
    ("fan", "fan"),
    ("coffee", "coffee_maker"),
    ("dvd", "tv"),
    ("tv", "tv"),
    ("microwave", "appliance"),
    ("oven", "appliance"),
    ("burner", "appliance"),
    ("toaster", "appliance"),
    ("dishwasher", "appliance"),
    ("washing machine", "appliance"),
    ("washingmachine", "appliance"),
    ("dryer", "appliance"),
    ("refrigerator", "appliance"),
    ("fridge", "appliance"),
    ("freezer", "appliance"),
    ("garbage disposal", "appliance"),
    ("toilet flush", "sensor"),  # water-use sensors
    ("faucet", "sensor"),
    ("shower", "sensor"),
    ("cupboard", "sensor"),  # contact sensors on furniture and containers
    ("cabinet", "sensor"),
    ("drawer", "sensor"),
    ("closet", "sensor"),
    ("jewelry box", "sensor"),
    ("container", "sensor"),
    ("cereal", "sensor"),
)


def device_type_for(object_name: str) -> str:
    """The device type of a sensed object, from :data:`OBJECT_TYPES` (``"other"`` if none matches)."""
    lowered = object_name.lower()
    for keyword, device_type in OBJECT_TYPES:
        if keyword in lowered:
            return device_type
    return "other"


@dataclass(frozen=True)
class SensorInterval:
    """One merged on-interval of a sensor: ``start`` and ``end`` are UTC datetimes.

    ``line`` is the line of the sensors file where the interval's first row is.
    """

    device_id: str
    start: dt.datetime
    end: dt.datetime
    line: int = 0


@dataclass(frozen=True)
class ActivityInterval:
    """One annotated activity of the resident (``end`` exclusive)."""

    activity: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class RejectedRow:
    """A data row that could not be used, with the file, its 1-based line and the reason."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: {self.reason}"


@dataclass(frozen=True)
class House:
    """One house: its ``homes`` record, ``devices`` records, sensor intervals and activities."""

    home: dict[str, Any]
    devices: list[dict[str, Any]]
    intervals: list[SensorInterval]
    activities: list[ActivityInterval]
    silent_sensors: dict[str, str] = field(default_factory=dict)  # sensor id -> name, never fired
    rejected: list[RejectedRow] = field(default_factory=list)
    merged_intervals: int = 0  # raw intervals folded into an overlapping or touching one

    @property
    def home_id(self) -> str:
        return self.home["home_id"]

    def device_events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line, record)``: two ``device_events`` per interval, ``on`` at its start, ``off`` at its end."""
        for iv in self.intervals:
            for time, state in ((iv.start, "on"), (iv.end, "off")):
                yield (
                    iv.line,
                    {
                        "device_id": iv.device_id,
                        "home_id": self.home_id,
                        "time": time,
                        "state": state,
                        "source": "unknown",
                    },
                )


# --------------------------------------------------------------------------- reading


def _house_letter(name: str) -> str:
    letter = str(name).strip().removeprefix("house").strip().upper()
    if len(letter) != 1 or not letter.isalpha():
        raise InvalidInputError(f"house name {name!r}: expected one letter such as 'A' or 'D'")
    return letter


def _file(root: Path, letter: str, suffix: str, *, required: bool) -> Path | None:
    path = root / f"house{letter}.{suffix}"
    if path.is_file():
        return path
    if required:
        raise MissingInputError(f"house {letter}: file {path} is missing; expected house{letter}.{suffix} in {root}")
    return None


def _read_names(path: Path | None) -> dict[int, str]:
    names: dict[int, str] = {}
    if path is None:
        return names
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip().lstrip("-").isdigit() or not parts[1].strip():
            raise InvalidInputError(f"{path} line {line_no}: expected '<id><TAB><name>', got {line!r:.80}")
        ident = int(parts[0])
        if ident in names:
            raise InvalidInputError(f"{path} line {line_no}: id {ident} is named twice")
        names[ident] = parts[1].strip()
    return names


def _read_rows(path: Path, rejected: list[RejectedRow], errors: str) -> list[tuple[int, int, int, int]]:
    """``(line, start, duration, id)`` rows; bad rows are raised or recorded in ``rejected``."""
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        reason = None
        try:
            start, duration, ident = (int(p) for p in parts)
        except ValueError:
            reason = f"expected three tab-separated integers (start, duration, id), got {line!r:.80}"
        else:
            if duration < 0:
                reason = f"duration {duration} is negative; expected seconds >= 0 (start {start}, id {ident})"
        if reason is not None:
            if errors == "raise":
                raise InvalidInputError(f"{path} line {line_no}: {reason}")
            rejected.append(RejectedRow(path, line_no, reason))
            continue
        rows.append((line_no, start, duration, ident))
    return rows


def _merge(spans: list[tuple[int, int, int]]) -> tuple[list[tuple[int, int, int]], int]:
    """Merge overlapping or touching ``(start, end, line)`` spans; return them and how many were folded in."""
    merged: list[list[int]] = []
    folded = 0
    for start, end, line in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            folded += 1
        else:
            merged.append([start, end, line])
    return [(s, e, line) for s, e, line in merged], folded


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, _UTC)


def load_house(
    name: str = "A",
    *,
    root: str | os.PathLike[str] | None = None,
    errors: Literal["raise", "collect"] = "raise",
) -> House:
    """Read house ``name`` (``"A"`` or ``"D"`` vendored; any letter with ``root``).

    ``root`` is a folder with ``house<X>.sensors`` (required), ``house<X>.sensor_names``,
    ``house<X>.activities`` and ``house<X>.activity_names`` (optional). With
    ``errors="raise"`` a bad row raises :class:`~homeloop.errors.InvalidInputError`
    naming the file and line; with ``errors="collect"`` it is kept in
    :attr:`House.rejected` and left out.
    """
    if errors not in ("raise", "collect"):
        raise InvalidInputError(f"errors={errors!r}: expected 'raise' or 'collect'")
    letter = _house_letter(name)
    base = Path(root) if root is not None else vendor_path("van_kasteren_mit")
    if not base.is_dir():
        raise MissingInputError(f"house data folder {base} does not exist")
    home_id = f"house{letter}"
    rejected: list[RejectedRow] = []

    sensors_path = _file(base, letter, "sensors", required=True)
    assert sensors_path is not None
    sensor_names = _read_names(_file(base, letter, "sensor_names", required=False))
    rows = _read_rows(sensors_path, rejected, errors)

    spans: dict[int, list[tuple[int, int, int]]] = {}
    for line_no, start, duration, ident in rows:
        spans.setdefault(ident, []).append((start, start + max(duration, 1), line_no))

    devices: list[dict[str, Any]] = []
    intervals: list[SensorInterval] = []
    folded_total = 0
    for ident in sorted(spans):
        raw_name = sensor_names.get(ident, f"sensor {ident}")
        room, obj = _split_room(raw_name)
        device_id = f"{home_id}:{ident}"
        devices.append(
            {
                "device_id": device_id,
                "home_id": home_id,
                "name": obj,
                "type": device_type_for(obj) if ident in sensor_names else "other",
                "room": room,
                "groups": [],
            }
        )
        merged, folded = _merge(spans[ident])
        folded_total += folded
        intervals.extend(SensorInterval(device_id, _utc(s), _utc(e), line) for s, e, line in merged)
    intervals.sort(key=lambda iv: (iv.start, iv.device_id))
    silent = {str(i): n for i, n in sorted(sensor_names.items()) if i not in spans}

    activities: list[ActivityInterval] = []
    activities_path = _file(base, letter, "activities", required=False)
    if activities_path is not None:
        activity_names = _read_names(_file(base, letter, "activity_names", required=False))
        for _, start, duration, ident in _read_rows(activities_path, rejected, errors):
            label = activity_names.get(ident, f"activity {ident}")
            activities.append(ActivityInterval(label, _utc(start), _utc(start + duration)))
        activities.sort(key=lambda a: a.start)

    home = {
        "home_id": home_id,
        "name": _HOUSE_NAMES.get(letter, f"house {letter}"),
        "timezone": HOUSE_TIMEZONES.get(letter),
        "source": "houses",
    }
    return House(home, devices, intervals, activities, silent, rejected, folded_total)


def _split_room(raw_name: str) -> tuple[str | None, str]:
    """``"Kitchen,Burner A"`` -> ``("Kitchen", "Burner A")``; a name without a comma has no room."""
    if "," in raw_name:
        room, obj = raw_name.split(",", 1)
        room, obj = room.strip(), obj.strip()
        if room and obj:
            return room, obj
    return None, raw_name.strip()


# --------------------------------------------------------------------------- ingesting


def ingest_houses(
    lake: Lake,
    names: Sequence[str] = ("A", "D"),
    *,
    dataset: str = "houses",
    root: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, IngestResult]:
    """Write the houses' ``homes``, ``devices`` and ``device_events`` into ``dataset``.

    Returns one :class:`~homeloop.data.lake.IngestResult` per table, summed over the
    houses. Rejected rows (a negative duration, a malformed line) go to the dataset's
    quarantine with their file and line; ingesting the same houses again adds nothing.
    ``root`` is passed to :func:`load_house`; ``progress`` is called with 1 after each house.
    """
    if isinstance(names, str):
        names = (names,)
    if not names:
        raise InvalidInputError("names: expected at least one house such as 'A' or 'D', got none")
    houses = [load_house(n, root=root, errors="collect") for n in dict.fromkeys(_house_letter(n) for n in names)]
    totals: dict[str, IngestResult] = {}

    def add(result: IngestResult) -> None:
        old = totals.get(result.table)
        totals[result.table] = result if old is None else old + result

    for house in houses:
        add(lake.ingest(dataset, "homes", [(0, house.home)], source=f"{house.home_id}.sensor_names"))
        add(lake.ingest(dataset, "devices", enumerate(house.devices, 1), source=f"{house.home_id}.sensor_names"))
        records: list[tuple[int, Any]] = list(house.device_events())
        records.extend((r.line, SchemaError(f"{r.path.name}: {r.reason}")) for r in house.rejected)
        add(lake.ingest(dataset, "device_events", records, source=f"{house.home_id}.sensors"))
        if progress is not None:
            progress(1)
    return totals
