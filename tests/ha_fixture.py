"""Build a Home Assistant installation for tests from a real house timeline.

:func:`build_installation` writes ``<root>/home-assistant_v2.db`` (a recorder database
with the table definitions of recorder schema 51 as SQLAlchemy creates them on
SQLite, taken from Home Assistant's ``recorder/db_schema.py``) and
``<root>/.storage/core.*`` registries (the storage envelopes and entry fields of
``helpers/area_registry.py``, ``device_registry.py``, ``entity_registry.py``), from the
vendored MIT house D: each of its 72 sensors becomes an entity whose states are the
sensor's on/off intervals, its room an area. On top of the real timeline it adds
what real recorders hold: ``unknown`` and ``unavailable`` rows, attribute-only
updates, two numeric sensors (one not in the entity registry), ``sun.sun``, user-
and automation-caused changes, entities whose own area overrides their device's.

Everything the adapter should read back is computed while building and returned
in :class:`HAFixture` so tests compare against it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from homeloop.adapters.houses import load_house

# ---------------------------------------------------------------- recorder schema 51 (SQLite)

SCHEMA_51 = """
CREATE TABLE event_data (
	data_id INTEGER NOT NULL,
	hash BIGINT,
	shared_data TEXT,
	PRIMARY KEY (data_id)
);
CREATE INDEX ix_event_data_hash ON event_data (hash);
CREATE TABLE event_types (
	event_type_id INTEGER NOT NULL,
	event_type VARCHAR(64),
	PRIMARY KEY (event_type_id)
);
CREATE UNIQUE INDEX ix_event_types_event_type ON event_types (event_type);
CREATE TABLE state_attributes (
	attributes_id INTEGER NOT NULL,
	hash BIGINT,
	shared_attrs TEXT,
	PRIMARY KEY (attributes_id)
);
CREATE INDEX ix_state_attributes_hash ON state_attributes (hash);
CREATE TABLE states_meta (
	metadata_id INTEGER NOT NULL,
	entity_id VARCHAR(255),
	PRIMARY KEY (metadata_id)
);
CREATE UNIQUE INDEX ix_states_meta_entity_id ON states_meta (entity_id);
CREATE TABLE statistics_meta (
	id INTEGER NOT NULL,
	statistic_id VARCHAR(255),
	source VARCHAR(32),
	unit_of_measurement VARCHAR(255),
	unit_class VARCHAR(255),
	has_mean BOOLEAN,
	has_sum BOOLEAN,
	name VARCHAR(255),
	mean_type SMALLINT NOT NULL,
	PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_statistics_meta_statistic_id ON statistics_meta (statistic_id);
CREATE TABLE recorder_runs (
	run_id INTEGER NOT NULL,
	start DATETIME NOT NULL,
	"end" DATETIME,
	closed_incorrect BOOLEAN NOT NULL,
	created DATETIME NOT NULL,
	PRIMARY KEY (run_id)
);
CREATE INDEX ix_recorder_runs_start_end ON recorder_runs (start, "end");
CREATE TABLE migration_changes (
	migration_id VARCHAR(255) NOT NULL,
	version SMALLINT NOT NULL,
	PRIMARY KEY (migration_id)
);
CREATE TABLE schema_changes (
	change_id INTEGER NOT NULL,
	schema_version INTEGER,
	changed DATETIME NOT NULL,
	PRIMARY KEY (change_id)
);
CREATE TABLE statistics_runs (
	run_id INTEGER NOT NULL,
	start DATETIME NOT NULL,
	PRIMARY KEY (run_id)
);
CREATE INDEX ix_statistics_runs_start ON statistics_runs (start);
CREATE TABLE events (
	event_id INTEGER NOT NULL,
	event_type CHAR(0),
	event_data CHAR(0),
	origin CHAR(0),
	origin_idx SMALLINT,
	time_fired CHAR(0),
	time_fired_ts FLOAT,
	context_id CHAR(0),
	context_user_id CHAR(0),
	context_parent_id CHAR(0),
	data_id INTEGER,
	context_id_bin BLOB,
	context_user_id_bin BLOB,
	context_parent_id_bin BLOB,
	event_type_id INTEGER,
	PRIMARY KEY (event_id),
	FOREIGN KEY(data_id) REFERENCES event_data (data_id),
	FOREIGN KEY(event_type_id) REFERENCES event_types (event_type_id)
);
CREATE INDEX ix_events_event_type_id_time_fired_ts ON events (event_type_id, time_fired_ts);
CREATE INDEX ix_events_context_id_bin ON events (context_id_bin);
CREATE INDEX ix_events_time_fired_ts ON events (time_fired_ts);
CREATE INDEX ix_events_data_id ON events (data_id);
CREATE TABLE states (
	state_id INTEGER NOT NULL,
	entity_id CHAR(0),
	state VARCHAR(255),
	attributes CHAR(0),
	event_id SMALLINT,
	last_changed CHAR(0),
	last_changed_ts FLOAT,
	last_reported_ts FLOAT,
	last_updated CHAR(0),
	last_updated_ts FLOAT,
	old_state_id INTEGER,
	attributes_id INTEGER,
	context_id CHAR(0),
	context_user_id CHAR(0),
	context_parent_id CHAR(0),
	origin_idx SMALLINT,
	context_id_bin BLOB,
	context_user_id_bin BLOB,
	context_parent_id_bin BLOB,
	metadata_id INTEGER,
	PRIMARY KEY (state_id),
	FOREIGN KEY(old_state_id) REFERENCES states (state_id),
	FOREIGN KEY(attributes_id) REFERENCES state_attributes (attributes_id),
	FOREIGN KEY(metadata_id) REFERENCES states_meta (metadata_id)
);
CREATE INDEX ix_states_metadata_id_last_updated_ts ON states (metadata_id, last_updated_ts);
CREATE INDEX ix_states_context_id_bin ON states (context_id_bin);
CREATE INDEX ix_states_last_updated_ts ON states (last_updated_ts);
CREATE INDEX ix_states_old_state_id ON states (old_state_id);
CREATE INDEX ix_states_attributes_id ON states (attributes_id);
CREATE TABLE statistics (
	id INTEGER NOT NULL,
	created CHAR(0),
	created_ts FLOAT,
	metadata_id INTEGER,
	start CHAR(0),
	start_ts FLOAT,
	mean FLOAT,
	mean_weight FLOAT,
	min FLOAT,
	max FLOAT,
	last_reset CHAR(0),
	last_reset_ts FLOAT,
	state FLOAT,
	sum FLOAT,
	PRIMARY KEY (id),
	FOREIGN KEY(metadata_id) REFERENCES statistics_meta (id) ON DELETE CASCADE
);
CREATE INDEX ix_statistics_start_ts ON statistics (start_ts);
CREATE UNIQUE INDEX ix_statistics_statistic_id_start_ts ON statistics (metadata_id, start_ts);
CREATE TABLE statistics_short_term (
	id INTEGER NOT NULL,
	created CHAR(0),
	created_ts FLOAT,
	metadata_id INTEGER,
	start CHAR(0),
	start_ts FLOAT,
	mean FLOAT,
	mean_weight FLOAT,
	min FLOAT,
	max FLOAT,
	last_reset CHAR(0),
	last_reset_ts FLOAT,
	state FLOAT,
	sum FLOAT,
	PRIMARY KEY (id),
	FOREIGN KEY(metadata_id) REFERENCES statistics_meta (id) ON DELETE CASCADE
);
CREATE INDEX ix_statistics_short_term_start_ts ON statistics_short_term (start_ts);
CREATE UNIQUE INDEX ix_statistics_short_term_statistic_id_start_ts ON statistics_short_term (metadata_id, start_ts);
"""

# Schema 37 (Home Assistant 2023.3): entity ids still in states.entity_id, no states_meta.
SCHEMA_37 = """
CREATE TABLE state_attributes (
	attributes_id INTEGER NOT NULL,
	hash BIGINT,
	shared_attrs TEXT,
	PRIMARY KEY (attributes_id)
);
CREATE TABLE states (
	state_id INTEGER NOT NULL,
	entity_id VARCHAR(255),
	state VARCHAR(255),
	attributes TEXT,
	event_id INTEGER,
	last_changed DATETIME,
	last_changed_ts FLOAT,
	last_updated DATETIME,
	last_updated_ts FLOAT,
	old_state_id INTEGER,
	attributes_id INTEGER,
	context_id VARCHAR(36),
	context_user_id VARCHAR(36),
	context_parent_id VARCHAR(36),
	origin_idx SMALLINT,
	context_id_bin BLOB,
	context_user_id_bin BLOB,
	context_parent_id_bin BLOB,
	PRIMARY KEY (state_id)
);
CREATE TABLE schema_changes (
	change_id INTEGER NOT NULL,
	schema_version INTEGER,
	changed DATETIME NOT NULL,
	PRIMARY KEY (change_id)
);
"""


def fnv1a_32(data: bytes) -> int:
    """The hash Home Assistant stores next to shared attributes (``fnv_hash_fast.fnv1a_32``)."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _hex_id(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - ids, not security


def _store(key: str, version: int, minor: int, data: dict) -> str:
    return json.dumps({"version": version, "minor_version": minor, "key": key, "data": data}, indent=2)


# ---------------------------------------------------------------- what the house becomes

_APPLIANCES = (
    "oven",
    "microwave",
    "toaster",
    "washing machine",
    "dryer",
    "dishwasher",
    "garbage disposal",
    "refrigerator",
    "freezer",
)
_COOKING = ("burner", "oven", "microwave", "toaster")


def _domain_and_class(obj: str) -> tuple[str, str | None]:
    o = obj.lower()
    if "light switch" in o or "lamp" in o:
        return "light", None
    if "window" in o:
        return "binary_sensor", "window"
    if "door" in o:
        return "binary_sensor", "door"
    if "burner" in o:
        return "binary_sensor", "heat"
    if "coffee" in o:
        return "switch", "outlet"
    if any(a in o for a in _APPLIANCES):
        return "switch", "outlet"
    if "dvd" in o:
        return "media_player", "tv"
    if "fan" in o:
        return "fan", None
    return "binary_sensor", "opening"


_EXPECTED_TYPE = {
    ("light", None): "light",
    ("binary_sensor", "window"): "window",
    ("binary_sensor", "door"): "door",
    ("binary_sensor", "heat"): "sensor",
    ("binary_sensor", "opening"): "sensor",
    ("switch", "outlet"): "plug",
    ("media_player", "tv"): "tv",
    ("fan", None): "fan",
}


@dataclass
class HAFixture:
    """A built installation and what an adapter should read back from it."""

    root: Path
    db_path: Path
    storage_dir: Path
    home_id: str
    events: int  # device_events the adapter should write
    entities: dict[str, dict] = field(default_factory=dict)  # entity_id -> expected name/type/room/groups
    excluded: tuple[str, ...] = ()
    skipped: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)  # expected events per source
    overridden: tuple[str, ...] = ()  # entities whose own area overrides a different device area
    state_rows: int = 0


def build_recorder(path: Path, *, schema_version: int = 51) -> sqlite3.Connection:
    """An empty recorder database of ``schema_version`` (51, or 37 for the too-old case)."""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA_51 if schema_version >= 38 else SCHEMA_37)
    con.execute(
        "INSERT INTO schema_changes (schema_version, changed) VALUES (?, ?)",
        (schema_version, "2025-06-01 10:00:00.000000"),
    )
    con.commit()
    return con


def build_installation(root: Path, *, seed: int = 7) -> HAFixture:
    """Write the recorder and the registries under ``root`` (see the module docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    storage = root / ".storage"
    storage.mkdir(exist_ok=True)
    rng = random.Random(seed)
    house = load_house("D")
    uuid = _hex_id("homeloop-test-house-D")
    home_id = f"ha-{uuid[:12]}"

    # ---- areas: the house's rooms plus a garage used as a wrong device area
    rooms = sorted({d["room"] for d in house.devices if d["room"]})
    areas = {slugify(r): r for r in [*rooms, "Garage"]}
    area_id_of = {r: slugify(r) for r in [*rooms, "Garage"]}

    ha_devices: list[dict] = []
    ha_entities: list[dict] = []
    expected: dict[str, dict] = {}
    entity_of_sensor: dict[str, str] = {}
    overridden: list[str] = []

    def device_entry(dev_id: str, name: str, area_id: str | None, *, name_by_user=None, labels=(), model="sensor"):
        return {
            "area_id": area_id,
            "config_entries": [_hex_id("zha")],
            "config_entries_subentries": {_hex_id("zha"): [None]},
            "configuration_url": None,
            "connections": [["zigbee", ":".join(dev_id[i : i + 2] for i in range(0, 16, 2))]],
            "created_at": "2025-05-01T08:00:00+00:00",
            "disabled_by": None,
            "entry_type": None,
            "hw_version": None,
            "id": dev_id,
            "identifiers": [["zha", dev_id[:16]]],
            "labels": list(labels),
            "manufacturer": "MIT PlaceLab",
            "model": model,
            "model_id": None,
            "modified_at": "2025-05-01T08:00:00+00:00",
            "name_by_user": name_by_user,
            "name": name,
            "primary_config_entry": _hex_id("zha"),
            "serial_number": None,
            "sw_version": None,
            "via_device_id": None,
        }

    def entity_entry(entity_id: str, *, device_id, area_id=None, name=None, original_name=None, has_entity_name=True,
                     device_class=None, labels=()):  # fmt: skip
        return {
            "aliases": [],
            "area_id": area_id,
            "categories": {},
            "capabilities": None,
            "config_entry_id": _hex_id("zha") if device_id else None,
            "device_class": None,
            "device_id": device_id,
            "disabled_by": None,
            "entity_category": None,
            "entity_id": entity_id,
            "hidden_by": None,
            "icon": None,
            "id": _hex_id("entity:" + entity_id),
            "has_entity_name": has_entity_name,
            "labels": list(labels),
            "name": name,
            "options": {"conversation": {"should_expose": True}},
            "original_device_class": device_class,
            "original_icon": None,
            "original_name": original_name,
            "platform": "zha" if device_id else "template",
            "supported_features": 0,
            "translation_key": None,
            "unique_id": _hex_id("unique:" + entity_id),
            "previous_unique_id": None,
            "unit_of_measurement": None,
        }

    for i, dev in enumerate(house.devices):
        room, obj = dev["room"], dev["name"]
        domain, device_class = _domain_and_class(obj)
        entity_id = f"{domain}.{slugify(room)}_{slugify(obj)}"
        entity_of_sensor[dev["device_id"]] = entity_id
        dev_id = _hex_id("device:" + entity_id)
        device_name = f"{room} {obj}"
        labels = ["cooking"] if any(c in obj.lower() for c in _COOKING) else []
        entity_labels = ["lights"] if domain == "light" else []
        groups = [*(["Lights"] if entity_labels else []), *(["Cooking"] if labels else [])]
        exp_room: str | None = room
        if domain == "fan":  # a template fan with no device; its area comes from the entity only
            ha_entities.append(
                entity_entry(
                    entity_id,
                    device_id=None,
                    area_id=area_id_of[room],
                    original_name=f"{room} {obj}",
                    has_entity_name=False,
                )  # fmt: skip
            )
            name = f"{room} {obj}"
        elif domain == "media_player":  # a device nobody put in an area
            ha_devices.append(device_entry(dev_id, device_name, None, model="DVD player"))
            ha_entities.append(entity_entry(entity_id, device_id=dev_id, device_class=device_class))
            name, exp_room = device_name, None
        elif i % 9 == 0:  # the entity's own area overrides the device's (wrong) one
            ha_devices.append(device_entry(dev_id, device_name, "garage", labels=labels))
            ha_entities.append(
                entity_entry(
                    entity_id,
                    device_id=dev_id,
                    area_id=area_id_of[room],
                    device_class=device_class,
                    labels=entity_labels,
                )  # fmt: skip
            )
            name = device_name
            overridden.append(entity_id)
        elif i % 9 == 4:  # the user renamed the entity
            ha_devices.append(device_entry(dev_id, device_name, area_id_of[room], labels=labels))
            name = f"{obj} in the {room.lower()}"
            ha_entities.append(
                entity_entry(
                    entity_id,
                    device_id=dev_id,
                    name=name,
                    original_name="Contact",
                    device_class=device_class,
                    labels=entity_labels,
                )  # fmt: skip
            )
        elif i % 9 == 6:  # the user renamed the device
            name = f"{obj} ({room})"
            ha_devices.append(device_entry(dev_id, device_name, area_id_of[room], name_by_user=name, labels=labels))
            ha_entities.append(
                entity_entry(entity_id, device_id=dev_id, device_class=device_class, labels=entity_labels)
            )
        elif i % 3 == 2:  # an entity with its own name under its device: "<device> <entity>"
            ha_devices.append(device_entry(dev_id, device_name, area_id_of[room], labels=labels))
            ha_entities.append(
                entity_entry(
                    entity_id, device_id=dev_id, original_name="State", device_class=device_class, labels=entity_labels
                )  # fmt: skip
            )
            name = f"{device_name} State"
        else:  # the main entity of its device: the device's name
            ha_devices.append(device_entry(dev_id, device_name, area_id_of[room], labels=labels))
            ha_entities.append(
                entity_entry(entity_id, device_id=dev_id, device_class=device_class, labels=entity_labels)
            )
            name = device_name
        expected[entity_id] = {
            "name": name,
            "type": "coffee_maker" if "coffee" in obj.lower() else _EXPECTED_TYPE[(domain, device_class)],
            "room": exp_room,
            "groups": groups,
            "device_class": device_class,
            "friendly_name": name,
        }

    # ---- two numeric sensors: one registered under a device, one known only from its attributes
    clim_dev = _hex_id("device:bedroom-climate")
    ha_devices.append(device_entry(clim_dev, "Bedroom Climate Sensor", "bedroom", model="climate sensor"))
    ha_entities.append(
        entity_entry("sensor.bedroom_humidity", device_id=clim_dev, original_name="Humidity", device_class="humidity")
    )
    expected["sensor.bedroom_humidity"] = {
        "name": "Bedroom Climate Sensor Humidity", "type": "sensor", "room": "Bedroom", "groups": [],
        "device_class": "humidity", "friendly_name": "Bedroom Climate Sensor Humidity",
    }  # fmt: skip
    expected["sensor.kitchen_temperature"] = {
        "name": "Kitchen Temperature", "type": "sensor", "room": None, "groups": [],
        "device_class": "temperature", "friendly_name": "Kitchen Temperature",
    }  # fmt: skip

    # ---- the timeline: (time, entity_id, state, extra) rows, sorted by time
    rows: list[tuple[float, str, str, dict]] = []
    skipped: Counter = Counter()
    sources: Counter = Counter()
    n_events = 0
    first_seen: set[str] = set()
    for k, iv in enumerate(house.intervals):
        entity_id = entity_of_sensor[iv.device_id]
        on, off = iv.start.timestamp(), iv.end.timestamp()
        if entity_id not in first_seen:
            first_seen.add(entity_id)
            if len(first_seen) % 7 == 0:  # Home Assistant starts before the device reports
                rows.append((on - 0.5, entity_id, "unknown", {}))
                skipped["unknown"] += 1
        src_on = "manual" if entity_id.startswith("light.") and k % 5 == 0 else "unknown"
        src_off = "automation" if entity_id.startswith("light.") and k % 4 == 0 else "unknown"
        rows.append((on, entity_id, "on", {"source": src_on}))
        rows.append((off, entity_id, "off", {"source": src_off}))
        sources[src_on] += 1
        sources[src_off] += 1
        n_events += 2
        if entity_id.startswith("light."):  # a brightness change: attributes only
            rows.append((on + 0.25, entity_id, "on", {"changed": on, "brightness": 128}))
            skipped["attribute_only"] += 1
        if k % 11 == 0:  # the radio dropped out after the device switched off
            rows.append((off + 0.5, entity_id, "unavailable", {}))
            skipped["unavailable"] += 1

    start = house.intervals[0].start.timestamp()
    for h in range(5 * 24):  # hourly readings for five days
        t = start + 3600 * h + 17
        if h % 10 == 3:
            rows.append((t, "sensor.kitchen_temperature", "unavailable", {}))
            skipped["unavailable"] += 1
        else:
            rows.append((t, "sensor.kitchen_temperature", f"{19 + (h % 24) / 8:.2f}", {}))
            n_events += 1
            sources["unknown"] += 1
        if h % 25 == 0:
            rows.append((t + 1, "sensor.bedroom_humidity", "unknown", {}))
            skipped["unknown"] += 1
        else:
            rows.append((t + 1, "sensor.bedroom_humidity", str(40 + h % 13), {}))
            n_events += 1
            sources["unknown"] += 1
    for d in range(5):  # sun.sun: not a device
        for hour, state in ((11, "above_horizon"), (22, "below_horizon")):
            rows.append((start + 86400 * d + 3600 * hour, "sun.sun", state, {}))
            skipped["excluded_domain"] += 1
    rows.sort(key=lambda r: (r[0], r[1]))

    # ---- the database
    db_path = root / "home-assistant_v2.db"
    if db_path.exists():
        db_path.unlink()
    con = build_recorder(db_path)
    metadata: dict[str, int] = {}
    attrs_ids: dict[bytes, int] = {}
    last_state: dict[str, int] = {}
    user_id = bytes.fromhex(_hex_id("user:resident"))
    for t, entity_id, state, extra in rows:
        if entity_id not in metadata:
            cur = con.execute("INSERT INTO states_meta (entity_id) VALUES (?)", (entity_id,))
            metadata[entity_id] = cur.lastrowid
        exp = expected.get(entity_id, {})
        attrs = {}
        if exp.get("device_class"):
            attrs["device_class"] = exp["device_class"]
        if entity_id.startswith("sensor."):
            attrs["state_class"] = "measurement"
            attrs["unit_of_measurement"] = "°C" if "temperature" in entity_id else "%"
        if "brightness" in extra or (entity_id.startswith("light.") and state == "on"):
            attrs["brightness"] = extra.get("brightness", 255)
            attrs["color_mode"] = "brightness"
        attrs["friendly_name"] = exp.get("friendly_name", "Sun" if entity_id == "sun.sun" else entity_id)
        shared = json.dumps(attrs, separators=(",", ":")).encode()
        if shared not in attrs_ids:
            cur = con.execute(
                "INSERT INTO state_attributes (hash, shared_attrs) VALUES (?, ?)", (fnv1a_32(shared), shared.decode())
            )
            attrs_ids[shared] = cur.lastrowid
        source = extra.get("source", "unknown")
        changed = extra.get("changed")
        cur = con.execute(
            "INSERT INTO states (state, last_changed_ts, last_reported_ts, last_updated_ts, old_state_id, "
            "attributes_id, origin_idx, context_id_bin, context_user_id_bin, context_parent_id_bin, metadata_id) "
            "VALUES (?, ?, NULL, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                state,
                changed,
                t,
                last_state.get(entity_id),
                attrs_ids[shared],
                rng.randbytes(16),
                user_id if source == "manual" else None,
                rng.randbytes(16) if source == "automation" else None,
                metadata[entity_id],
            ),
        )
        last_state[entity_id] = cur.lastrowid
    # a recorder run and its start/stop events, as Home Assistant writes them
    con.execute(
        'INSERT INTO recorder_runs (start, "end", closed_incorrect, created) VALUES (?, ?, 0, ?)',
        ("2003-03-27 06:00:00.000000", "2003-04-11 23:00:00.000000", "2003-03-27 06:00:00.000000"),
    )
    for event_type, t in (("homeassistant_start", start - 60), ("homeassistant_stop", rows[-1][0] + 60)):
        cur = con.execute("INSERT INTO event_types (event_type) VALUES (?)", (event_type,))
        con.execute(
            "INSERT INTO events (origin_idx, time_fired_ts, context_id_bin, event_type_id) VALUES (0, ?, ?, ?)",
            (t, rng.randbytes(16), cur.lastrowid),
        )
    con.commit()
    con.close()

    # ---- the registries
    (storage / "core.area_registry").write_text(
        _store(
            "core.area_registry", 1, 6,
            {"areas": [
                {"aliases": [], "floor_id": None, "icon": None, "id": aid, "labels": [], "name": name, "picture": None}
                for aid, name in areas.items()
            ]},
        )
    )  # fmt: skip
    (storage / "core.device_registry").write_text(
        _store("core.device_registry", 1, 12, {"devices": ha_devices, "deleted_devices": []})
    )
    (storage / "core.entity_registry").write_text(
        _store("core.entity_registry", 1, 14, {"entities": ha_entities, "deleted_entities": []})
    )
    (storage / "core.label_registry").write_text(
        _store(
            "core.label_registry", 1, 1,
            {"labels": [
                {"color": None, "created_at": "2025-05-01T08:00:00+00:00", "description": None, "icon": None,
                 "label_id": lid, "name": name, "modified_at": "2025-05-01T08:00:00+00:00"}
                for lid, name in (("lights", "Lights"), ("cooking", "Cooking"))
            ]},
        )
    )  # fmt: skip
    (storage / "core.config").write_text(
        _store(
            "core.config", 1, 4,
            {"latitude": 42.36, "longitude": -71.09, "elevation": 5, "radius": 100, "unit_system_v2": "us_customary",
             "location_name": "MIT house D", "time_zone": "America/New_York", "external_url": None,
             "internal_url": None, "currency": "USD", "country": "US", "language": "en"},
        )
    )  # fmt: skip
    (storage / "core.uuid").write_text(_store("core.uuid", 1, 1, {"uuid": uuid}))

    return HAFixture(
        root=root,
        db_path=db_path,
        storage_dir=storage,
        home_id=home_id,
        events=n_events,
        entities=expected,
        excluded=("sun.sun",),
        skipped=skipped,
        sources=sources,
        overridden=tuple(overridden),
        state_rows=len(rows),
    )
