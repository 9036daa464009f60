"""Record schemas of the lake: what each table holds, its key and its partitioning.

Observable tables (what a real assistant or smart home logs) are ``homes``,
``devices``, ``device_events`` and ``turns``. Simulated ground truth lives in
separate tables whose names start with ``truth_``; no learning code reads them,
only measurement does.

Each field has a *kind*; :func:`validate_record` turns a JSON-like record into
typed values or raises :class:`~homeloop.errors.SchemaError` naming the field.
Kinds:

``str``, ``float``, ``int``, ``bool``
    the obvious scalars (a float field accepts an int; a bool field only a bool).
``time``
    an instant, stored as UTC microseconds: an ISO 8601 string *with* a UTC
    offset (``2026-03-01T07:15:00+01:00`` or ``...Z``) or epoch seconds.
``localtime``
    a wall-clock time in the home's time zone, ISO 8601 without offset.
``str_list``
    a list of strings.
``pairs``
    a list of two-string records (``name``/``value`` for slots), given either as
    a JSON object ``{"name": "value"}`` or as a list of ``{"name":..,"value":..}``
    (the list form allows a name to repeat).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from homeloop.errors import SchemaError

__all__ = [
    "DEVICE_TYPES",
    "EVENT_SOURCES",
    "FAILURE_POINTS",
    "FEEDBACK_VALUES",
    "PRESENCE_STATES",
    "RESPONSE_TYPES",
    "TABLES",
    "Field",
    "Table",
    "table",
    "validate_record",
]

DEVICE_TYPES = (
    "light", "plug", "switch", "lock", "door", "window", "thermostat", "tv", "speaker",
    "coffee_maker", "vacuum", "fan", "cover", "appliance", "sensor", "other",
)
EVENT_SOURCES = ("voice", "manual", "automation", "unknown")
FEEDBACK_VALUES = ("positive", "negative")
RESPONSE_TYPES = ("action", "answer", "clarification", "error", "none")
FAILURE_POINTS = ("none", "wake_word", "asr", "nlu", "entity_resolution", "result")
ASR_ERROR_KINDS = ("none", "random", "systematic", "personal")
PRESENCE_STATES = ("home", "away", "asleep")

_UTC = dt.UTC
_PAIR_FIELDS = {
    "slots": ("name", "value"),
    "resolved_entities": ("mention", "entity_id"),
    "device_states": ("entity_id", "state"),
    "true_slots": ("name", "value"),
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    required: bool = True
    choices: tuple[str, ...] | None = None
    doc: str = ""

    def arrow_type(self) -> pa.DataType:
        if self.kind == "pairs":
            a, b = _PAIR_FIELDS[self.name]
            return pa.list_(pa.struct([(a, pa.string()), (b, pa.string())]))
        return _ARROW[self.kind]


_ARROW: dict[str, pa.DataType] = {
    "str": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "time": pa.timestamp("us", tz="UTC"),
    "localtime": pa.timestamp("us"),
    "str_list": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Table:
    """One lake table: its fields, the fields that identify a row, how it is partitioned."""

    name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    partition_by: str | None = None  # a ``time`` field: partitions are UTC days
    truth: bool = False
    doc: str = ""
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.arrow_type(), nullable=not f.required) for f in self.fields])

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]


def _f(name: str, kind: str, required: bool = True, choices: tuple[str, ...] | None = None, doc: str = "") -> Field:
    return Field(name, kind, required, choices, doc)


HOMES = Table(
    "homes",
    (
        _f("home_id", "str"),
        _f("name", "str", False),
        _f("timezone", "str", False, doc="IANA time zone, e.g. Europe/Amsterdam"),
        _f("source", "str", False, doc="where the home came from: simulator, home-assistant, houses, logs"),
    ),
    key=("home_id",),
    doc="A household.",
)

DEVICES = Table(
    "devices",
    (
        _f("device_id", "str"),
        _f("home_id", "str"),
        _f("name", "str"),
        _f("type", "str", doc="one of DEVICE_TYPES; adapters map foreign types, unknown ones become 'other'"),
        _f("room", "str", False, doc="the room the home's configuration gives, if any"),
        _f("groups", "str_list", False),
    ),
    key=("device_id",),
    doc="A smart-home device, or a speaker the assistant listens through.",
)

DEVICE_EVENTS = Table(
    "device_events",
    (
        _f("device_id", "str"),
        _f("home_id", "str"),
        _f("time", "time"),
        _f("state", "str", False, doc="a discrete state such as on/off/locked; state or value is required"),
        _f("value", "float", False, doc="a numeric reading such as brightness or temperature"),
        _f("source", "str", True, EVENT_SOURCES),
    ),
    key=("device_id", "time"),
    partition_by="time",
    doc="A device changed state at a time.",
)

TURNS = Table(
    "turns",
    (
        _f("turn_id", "str"),
        _f("session_id", "str"),
        _f("user_id", "str", doc="pseudonymous"),
        _f("home_id", "str"),
        _f("device_id", "str", doc="the speaking device that heard the request"),
        _f("time", "time"),
        _f("asr_text", "str", doc="the text as recognised"),
        _f("asr_confidence", "float", False),
        _f("intent", "str", False, doc="NLU intent; empty when NLU did not run"),
        _f("slots", "pairs", False),
        _f("nlu_confidence", "float", False),
        _f("resolved_entities", "pairs", False),
        _f("response", "str", False),
        _f("response_type", "str", False, RESPONSE_TYPES),
        _f("barge_in", "bool", False, doc="the user interrupted the response"),
        _f("feedback", "str", False, FEEDBACK_VALUES, doc="explicit answer to 'did I answer your question?'"),
        _f("device_states", "pairs", False, doc="context: states of the home's devices at the time"),
        _f("has_screen", "bool", False, doc="context: the speaking device has a screen"),
        _f("local_time", "localtime", False, doc="context: wall-clock time in the home"),
        _f("rewritten_from", "str", False, doc="the recognised text before a rewrite fired, if one did"),
    ),
    key=("turn_id",),
    partition_by="time",
    doc="One request to the assistant and what it did.",
)

TRUTH_TURNS = Table(
    "truth_turns",
    (
        _f("turn_id", "str"),
        _f("time", "time"),
        _f("true_text", "str", doc="the words actually spoken"),
        _f("true_intent", "str", False),
        _f("true_slots", "pairs", False),
        _f("goal_id", "str", doc="the resident's goal this turn served; rephrases share it"),
        _f("failure_point", "str", True, FAILURE_POINTS),
        _f("success", "bool"),
        _f("asr_error", "str", True, ASR_ERROR_KINDS),
        _f("target_device_id", "str", False),
        _f("kind", "str", True, ("request", "rephrase", "reaction", "false_wake"),
           doc="a first request, a rephrase of it, a reaction such as 'no', or TV speech that woke the assistant"),
        _f("attempt", "int", doc="0 for the first request of a goal, then 1, 2, ... for each rephrase"),
    ),
    key=("turn_id",),
    partition_by="time",
    truth=True,
    doc="Simulated ground truth for each turn.",
)

TRUTH_PRESENCE = Table(
    "truth_presence",
    (
        _f("home_id", "str"),
        _f("resident_id", "str"),
        _f("start", "time"),
        _f("end", "time"),
        _f("state", "str", True, PRESENCE_STATES),
    ),
    key=("resident_id", "start"),
    partition_by="start",
    truth=True,
    doc="Where each resident was: at home and awake, away, or asleep.",
)

TRUTH_FORGOTTEN = Table(
    "truth_forgotten",
    (
        _f("home_id", "str"),
        _f("device_id", "str"),
        _f("time", "time", doc="when the device was forgotten (left on)"),
        _f("reason", "str", True, ("leaving", "sleeping")),
    ),
    key=("device_id", "time"),
    partition_by="time",
    truth=True,
    doc="Devices residents forgot to switch off.",
)

TRUTH_DEVICES = Table(
    "truth_devices",
    (
        _f("device_id", "str"),
        _f("home_id", "str"),
        _f("archetype", "str"),
        _f("true_room", "str"),
    ),
    key=("device_id",),
    truth=True,
    doc="Each simulated device's usage archetype and real room.",
)

DEFECT_LABELS = Table(
    "defect_labels",
    (
        _f("turn_id", "str"),
        _f("time", "time"),
        _f("p_defect", "float", doc="the defect model's probability that the turn failed"),
        _f("defect", "bool", doc="p_defect at or above the model's threshold (or a rule fired, for rules)"),
    ),
    key=("turn_id",),
    partition_by="time",
    doc="Derived: which turns failed, read from implicit feedback (homeloop.selflearn.label_defects).",
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        HOMES, DEVICES, DEVICE_EVENTS, TURNS, TRUTH_TURNS, TRUTH_PRESENCE, TRUTH_FORGOTTEN, TRUTH_DEVICES,
        DEFECT_LABELS,
    )
}  # fmt: skip


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaError(f"unknown table {name!r}; expected one of {sorted(TABLES)}") from None


# --------------------------------------------------------------------------- validation


def _parse_time(value: Any, *, aware: bool) -> dt.datetime:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, (int, float)) and aware:
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return dt.datetime.fromtimestamp(value, _UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        parsed = dt.datetime.fromisoformat(text)
    else:
        raise TypeError
    if aware:
        if parsed.tzinfo is None:
            raise ValueError("has no UTC offset (write e.g. 2026-03-01T07:15:00+01:00 or ...Z)")
        return parsed.astimezone(_UTC)
    return parsed.replace(tzinfo=None)


def _check_value(f: Field, value: Any) -> Any:
    kind = f.kind
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError
        if f.choices is not None and value not in f.choices:
            raise SchemaError(f"field {f.name!r}: expected one of {list(f.choices)}, got {value!r}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        if not math.isfinite(value):
            raise SchemaError(f"field {f.name!r}: expected a finite number, got {value!r}")
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind in ("time", "localtime"):
        try:
            return _parse_time(value, aware=kind == "time")
        except (ValueError, OverflowError, OSError) as exc:
            raise SchemaError(f"field {f.name!r}: {value!r} is not a valid time: {exc}") from None
    if kind == "str_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return value
    if kind == "pairs":
        a, b = _PAIR_FIELDS[f.name]
        if isinstance(value, Mapping):
            items = [{a: k, b: v} for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(v, Mapping) and set(v) == {a, b} for v in value):
            items = [{a: v[a], b: v[b]} for v in value]
        else:
            raise TypeError
        if not all(isinstance(i[a], str) and isinstance(i[b], str) for i in items):
            raise TypeError
        return items
    raise AssertionError(f"unknown kind {kind}")  # pragma: no cover - schema definitions are static


_KIND_WORDS = {
    "str": "a string",
    "float": "a number",
    "int": "an integer",
    "bool": "true or false",
    "time": "an ISO 8601 time with UTC offset or epoch seconds",
    "localtime": "an ISO 8601 local time",
    "str_list": "a list of strings",
    "pairs": "an object of string values or a list of two-string records",
}


def validate_record(tbl: Table, record: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``record`` with typed values, or raise :class:`SchemaError` naming the field."""
    if not isinstance(record, Mapping):
        raise SchemaError(f"table {tbl.name!r}: expected a JSON object, got {type(record).__name__}")
    unknown = [k for k in record if k not in tbl._by_name]
    if unknown:
        raise SchemaError(
            f"table {tbl.name!r}: unknown field {unknown[0]!r}; known fields are {list(tbl.field_names)}"
        )
    out: dict[str, Any] = {}
    for f in tbl.fields:
        value = record.get(f.name)
        if value is None or (f.kind == "str" and value == "" and not f.required):
            if f.required:
                raise SchemaError(f"table {tbl.name!r}: required field {f.name!r} is missing")
            out[f.name] = None
            continue
        try:
            out[f.name] = _check_value(f, value)
        except TypeError:
            raise SchemaError(
                f"field {f.name!r}: expected {_KIND_WORDS[f.kind]}, got {type(value).__name__} {value!r:.60}"
            ) from None
        if f.kind == "str" and f.required and not value.strip():
            raise SchemaError(f"field {f.name!r}: must not be empty")
    if tbl.name == "device_events" and out["state"] is None and out["value"] is None:
        raise SchemaError("table 'device_events': a row needs a 'state' or a 'value'")
    return out
