"""The Home Assistant adapter, on an installation built from the real MIT house D timeline."""

from __future__ import annotations

import collections
import json
import shutil
import sqlite3

import pytest
from ha_fixture import build_installation, build_recorder
from typer.testing import CliRunner

from homeloop.adapters.home_assistant import (
    NON_DEVICE_DOMAINS,
    device_type_for_entity,
    ingest_home_assistant,
    ingest_installation,
    read_recorder,
)
from homeloop.adapters.houses import load_house
from homeloop.data.lake import Lake
from homeloop.data.schema import DEVICE_TYPES
from homeloop.errors import MissingInputError, UnsupportedFormatError


@pytest.fixture(scope="session")
def ha(tmp_path_factory):
    return build_installation(tmp_path_factory.mktemp("home-assistant") / "config")


@pytest.fixture(scope="module")
def installation(ha):
    return read_recorder(ha.db_path, ha.storage_dir)


def test_reads_schema_home_and_entities(ha, installation):
    assert installation.schema_version == 51
    assert installation.home == {
        "home_id": ha.home_id,
        "name": "MIT house D",
        "timezone": "America/New_York",
        "source": "home-assistant",
    }
    # 72 house D sensors and two numeric sensors; sun.sun is not a device
    assert len(installation.entities) == 74
    assert installation.excluded_entities == ("sun.sun",)
    assert "binary_sensor.kitchen_burner_a" in installation.entities
    assert "light.kitchen_light_switch_a" in installation.entities
    # the storage folder defaults to .storage next to the database
    assert read_recorder(ha.db_path).entities == installation.entities


def test_names_types_rooms_and_groups(ha, installation):
    got = {
        e.entity_id: {"name": e.name, "type": e.type, "room": e.room, "groups": list(e.groups)}
        for e in installation.entities.values()
    }
    want = {k: {f: v[f] for f in ("name", "type", "room", "groups")} for k, v in ha.entities.items()}
    assert got == want
    e = installation.entities
    # composed the way Home Assistant composes friendly names
    assert e["sensor.bedroom_humidity"].name == "Bedroom Climate Sensor Humidity"  # device name + original_name
    assert e["sensor.kitchen_temperature"].name == "Kitchen Temperature"  # not registered: recorded friendly_name
    assert not e["sensor.kitchen_temperature"].registered and e["sensor.kitchen_temperature"].room is None
    assert e["sensor.kitchen_temperature"].device_class == "temperature"  # from the recorded attributes
    assert e["fan.bathroom_exhaust_fan"].room == "Bathroom"  # an entity area and no device
    assert (e["media_player.living_room_dvd"].room, e["media_player.living_room_dvd"].type) == (None, "tv")
    assert e["light.kitchen_light_switch_a"].groups == ("Lights",)
    assert e["binary_sensor.kitchen_burner_a"].groups == ("Cooking",)
    assert e["switch.kitchen_coffee_machine"].type == "coffee_maker"
    rooms = collections.Counter(x.room for x in e.values())
    assert rooms["Kitchen"] == 44 and rooms["Bedroom"] == 8 + 1  # house D's rooms, plus the humidity sensor


def test_entity_area_overrides_device_area(ha, installation):
    devices = json.loads((ha.storage_dir / "core.device_registry").read_text())["data"]["devices"]
    entities = json.loads((ha.storage_dir / "core.entity_registry").read_text())["data"]["entities"]
    device_area = {d["id"]: d["area_id"] for d in devices}
    assert len(ha.overridden) >= 5
    for entity_id in ha.overridden:
        entry = next(x for x in entities if x["entity_id"] == entity_id)
        assert device_area[entry["device_id"]] == "garage"  # the device says garage ...
        assert entry["area_id"] not in (None, "garage")
        got = installation.entities[entity_id]
        assert got.area_id == entry["area_id"] and got.room == ha.entities[entity_id]["room"] != "Garage"
    assert all(x.room != "Garage" for x in installation.entities.values())
    # ... and entities without an area of their own take their device's
    plain = next(x for x in entities if x["area_id"] is None and x["device_id"] and x["entity_id"].startswith("light."))
    assert installation.entities[plain["entity_id"]].area_id == device_area[plain["device_id"]]


def test_ingest_reads_back_every_event(ha, lake):
    installation = read_recorder(ha.db_path, ha.storage_dir)
    results = ingest_installation(lake, installation, chunk_size=1000)
    assert {t: (r.written, r.duplicates, r.quarantined) for t, r in results.items()} == {
        "homes": (1, 0, 0),
        "devices": (74, 0, 0),
        "device_events": (ha.events, 0, 0),
    }
    assert ha.events == 5196 + 108 + 115  # house D's on/off pairs and the numeric readings
    # unavailable, unknown, attribute-only and sun rows were read and left out
    assert installation.skipped == ha.skipped
    assert sum(installation.skipped.values()) + ha.events == ha.state_rows
    con = lake.connect("home-assistant")
    states = dict(con.execute("SELECT coalesce(state, '<value>'), count(*) FROM device_events GROUP BY 1").fetchall())
    assert states == {"on": 2598, "off": 2598, "<value>": 223}
    sources = dict(con.execute("SELECT source, count(*) FROM device_events GROUP BY source").fetchall())
    assert sources == dict(ha.sources) and sources["manual"] > 0 and sources["automation"] > 0
    (lo, hi) = con.execute(
        "SELECT min(value), max(value) FROM device_events WHERE device_id LIKE '%sensor.kitchen_temperature'"
    ).fetchone()
    assert 19.0 <= lo < hi <= 22.0
    first = con.execute(
        "SELECT epoch(time), state FROM device_events WHERE device_id = ? ORDER BY time LIMIT 1",
        [f"{ha.home_id}:binary_sensor.kitchen_burner_a"],
    ).fetchone()
    burner = next(d for d in load_house("D").devices if d["name"] == "Burner A")
    assert first == (
        next(iv for iv in load_house("D").intervals if iv.device_id == burner["device_id"]).start.timestamp(),
        "on",
    )
    rooms = dict(con.execute("SELECT room, count(*) FROM devices GROUP BY room").fetchall())
    assert rooms["Kitchen"] == 44


def test_ingest_twice_adds_nothing_and_chunking_does_not_matter(ha, lake, tmp_path):
    first = ingest_home_assistant(lake, ha.db_path, storage=ha.storage_dir)
    again = ingest_home_assistant(lake, ha.db_path, storage=ha.storage_dir)
    assert {t: r.written for t, r in again.items()} == {"homes": 0, "devices": 0, "device_events": 0}
    assert again["device_events"].duplicates == first["device_events"].written == ha.events
    other = Lake(tmp_path / "other")
    ingest_home_assistant(other, ha.db_path, storage=ha.storage_dir, chunk_size=333, home_id="mine")
    table = other.read("home-assistant", "device_events")
    assert table.num_rows == ha.events
    assert set(table["home_id"].to_pylist()) == {"mine"}


def test_schema_37_is_rejected(tmp_path):
    path = tmp_path / "home-assistant_v2.db"
    build_recorder(path, schema_version=37).close()
    with pytest.raises(UnsupportedFormatError) as err:
        read_recorder(path, allow_missing_registry=True)
    message = str(err.value)
    assert str(path) in message and "schema version 37" in message and "38 or later" in message


def test_missing_registries_are_clear_errors(ha, tmp_path):
    storage = tmp_path / ".storage"
    shutil.copytree(ha.storage_dir, storage)
    (storage / "core.entity_registry").unlink()
    with pytest.raises(MissingInputError, match=r"core\.entity_registry.*is missing"):
        read_recorder(ha.db_path, storage)
    # no .storage next to a database copied elsewhere
    db = tmp_path / "copy" / "home-assistant_v2.db"
    db.parent.mkdir()
    shutil.copy(ha.db_path, db)
    with pytest.raises(MissingInputError, match=r"registry folder .*\.storage does not exist"):
        read_recorder(db)
    with pytest.warns(UserWarning, match="without the Home Assistant registries"):
        bare = read_recorder(db, allow_missing_registry=True)
    assert all(e.room is None and e.groups == () for e in bare.entities.values())
    burner = bare.entities["binary_sensor.kitchen_burner_a"]
    assert burner.name == ha.entities["binary_sensor.kitchen_burner_a"]["friendly_name"]
    assert bare.home["home_id"] == "home-assistant"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"version": 1, "minor_version": 1, "key": "core.device_registry", "data": {}}', "expected key"),
        ('{"version": 3, "minor_version": 1, "key": "core.entity_registry", "data": {}}', "storage version 3.1"),
        (
            '{"version": 1, "minor_version": 14, "key": "core.entity_registry", "data": {"entities": {}}}',
            "to be a list",
        ),
        (
            '{"version": 1, "minor_version": 14, "key": "core.entity_registry", "data": {"entities": [{"name": "x"}]}}',
            "entry 0 of 'data.entities' has no string 'entity_id'",
        ),
    ],
)
def test_malformed_registry(ha, tmp_path, content, message):
    storage = tmp_path / ".storage"
    shutil.copytree(ha.storage_dir, storage)
    (storage / "core.entity_registry").write_text(content)
    with pytest.raises(UnsupportedFormatError, match="core.entity_registry") as err:
        read_recorder(ha.db_path, storage)
    assert message in str(err.value)


def test_not_a_recorder_database(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(UnsupportedFormatError, match="expected a SQLite database"):
        read_recorder(text, allow_missing_registry=True)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE recipes (id INTEGER)")
    with pytest.raises(UnsupportedFormatError, match="not a Home Assistant recorder database"):
        read_recorder(other, allow_missing_registry=True)
    with pytest.raises(MissingInputError, match="does not exist"):
        read_recorder(tmp_path / "nowhere.db")


def test_device_type_for_entity():
    assert device_type_for_entity("switch", "outlet") == "plug"
    assert device_type_for_entity("switch", None, "Espresso / coffee") == "coffee_maker"
    assert device_type_for_entity("media_player", "tv") == "tv"
    assert device_type_for_entity("media_player", "speaker") == "speaker"
    assert device_type_for_entity("cover", "garage") == "door"
    assert device_type_for_entity("binary_sensor", "window") == "window"
    assert device_type_for_entity("climate") == "thermostat"
    assert device_type_for_entity("camera") == "other"
    for domain in ("light", "lock", "vacuum", "fan", "cover", "sensor", *NON_DEVICE_DOMAINS):
        assert device_type_for_entity(domain) in DEVICE_TYPES


def test_domains_option(ha):
    only_lights = read_recorder(ha.db_path, ha.storage_dir, domains=["light", "sun"])
    assert {e.domain for e in only_lights.entities.values()} == {"light", "sun"}
    assert len(only_lights.entities) == 11 + 1


def test_cli_ingest_home_assistant_json(ha, tmp_path):
    from homeloop.cli import app

    ws = ["--workspace", str(tmp_path / "ws")]
    args = [*ws, "ingest", "home-assistant", str(ha.db_path), "--registry", str(ha.storage_dir), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["dataset"] == "home-assistant"
    assert figures["schema_version"] == 51 and figures["home_id"] == ha.home_id
    assert figures["tables"]["device_events"]["written"] == ha.events
    assert figures["tables"]["devices"]["written"] == 74
    assert figures["skipped_rows"] == dict(ha.skipped)
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["totals"]["written"] == 0 and again["tables"]["device_events"]["duplicates"] == ha.events
    missing = CliRunner().invoke(app, [*ws, "ingest", "home-assistant", str(tmp_path / "none.db"), "--json"])
    assert missing.exit_code == 2 and "none.db" in missing.output  # the MissingInputError, as one line
