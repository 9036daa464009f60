"""The van Kasteren / MIT houses adapter, on the vendored houses A and D and on crafted files."""

from __future__ import annotations

import collections
import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from homeloop.adapters.houses import OBJECT_TYPES, device_type_for, ingest_houses, load_house
from homeloop.data.schema import DEVICE_TYPES
from homeloop.errors import InvalidInputError, MissingInputError

UTC = dt.UTC


@pytest.fixture(scope="module")
def house_a():
    return load_house("A")


@pytest.fixture(scope="module")
def house_d():
    return load_house("D")


def test_house_a_devices_events_and_names(house_a):
    assert house_a.home == {
        "home_id": "houseA",
        "name": "van Kasteren house A",
        "timezone": "Europe/Amsterdam",
        "source": "houses",
    }
    assert len(house_a.devices) == 14  # the README's 14 sensors: those that fire
    # sensor 7 is named but never fires; sensor 4 fires but has no name
    assert house_a.silent_sensors == {"7": "Cups cupboard"}
    by_name = {d["name"]: d for d in house_a.devices}
    assert "sensor 4" in by_name and by_name["sensor 4"]["type"] == "other"
    assert all(d["room"] is None for d in house_a.devices)  # house A names carry no room
    assert by_name["Hall-Toilet door"]["type"] == "door"
    assert by_name["Microwave"]["type"] == "appliance"
    assert by_name["Toilet Flush"]["type"] == "sensor"
    # 1229 rows, 8 of which touch the previous firing of the same sensor and are merged
    assert (len(house_a.intervals), house_a.merged_intervals) == (1221, 8)
    events = list(house_a.device_events())
    assert len(events) == 2442
    assert len(house_a.activities) == 259
    assert house_a.rejected == []


def test_house_a_times_are_utc(house_a):
    first = house_a.intervals[0]
    # houseA.sensors line 1: 1203898814 163 24 (Hall-Bedroom door)
    assert first.start == dt.datetime(2008, 2, 25, 0, 20, 14, tzinfo=UTC)
    assert first.end - first.start == dt.timedelta(seconds=163)
    assert first.line == 1
    assert first.device_id == "houseA:24"
    assert next(d for d in house_a.devices if d["device_id"] == "houseA:24")["name"] == "Hall-Bedroom door"
    line, record = next(house_a.device_events())
    assert (line, record["state"], record["source"], record["time"]) == (1, "on", "unknown", first.start)


def test_house_d_rooms_are_ground_truth(house_d):
    assert house_d.home["timezone"] == "America/New_York"
    assert len(house_d.devices) == 72
    rooms = collections.Counter(d["room"] for d in house_d.devices)
    assert rooms.most_common(1) == [("Kitchen", 44)]
    assert rooms == {"Kitchen": 44, "Bathroom": 11, "Bedroom": 8, "Living room": 4, "Foyer": 3, "Office/study": 2}
    names = {(d["room"], d["name"]): d for d in house_d.devices}
    # "Bathroom,Toilet Flush " and "Living room,DVD " lose their trailing space
    assert names[("Bathroom", "Toilet Flush")]["type"] == "sensor"
    assert names[("Living room", "DVD")]["type"] == "tv"
    assert names[("Kitchen", "Light switch A")]["type"] == "light"
    assert names[("Kitchen", "Burner A")]["type"] == "appliance"
    assert names[("Kitchen", "Coffee machine")]["type"] == "coffee_maker"
    assert names[("Bathroom", "Exhaust Fan")]["type"] == "fan"
    assert names[("Kitchen", "Cabinet A")]["type"] == "sensor"
    # four named sensors never fire (the porch light, both windows, one cabinet)
    assert sorted(house_d.silent_sensors) == ["109", "136", "85", "89"]
    assert collections.Counter(d["type"] for d in house_d.devices) == {
        "sensor": 39, "appliance": 15, "light": 11, "door": 4, "tv": 1, "fan": 1, "coffee_maker": 1,
    }  # fmt: skip
    # 2772 rows; 152 overlap and 22 touch an earlier firing of the same sensor
    assert (len(house_d.intervals), house_d.merged_intervals) == (2598, 174)
    assert sum(1 for _ in house_d.device_events()) == 5196
    assert len(house_d.activities) == 295
    assert house_d.activities[0].activity in {a.activity for a in house_d.activities}


def test_intervals_are_disjoint_per_device(house_d):
    by_device = collections.defaultdict(list)
    for iv in house_d.intervals:
        assert iv.end > iv.start
        by_device[iv.device_id].append(iv)
    for ivs in by_device.values():
        ivs.sort(key=lambda iv: iv.start)
        assert all(b.start > a.end for a, b in zip(ivs, ivs[1:], strict=False))
    # so on/off events never share a (device, time) key
    keys = [(r["device_id"], r["time"]) for _, r in house_d.device_events()]
    assert len(keys) == len(set(keys))


def test_object_type_table():
    assert all(t in DEVICE_TYPES for _, t in OBJECT_TYPES)
    assert device_type_for("Light switch B") == "light"
    assert device_type_for("Garbage disposal") == "appliance"
    assert device_type_for("Sink faucet - hot") == "sensor"
    assert device_type_for("Aquarium") == "other"


# ---------------------------------------------------------------- crafted files


@pytest.fixture
def crafted(tmp_path):
    (tmp_path / "houseX.sensors").write_text(
        "100\t10\t1\n"  # [100, 110]
        "105\t10\t1\n"  # overlaps -> [100, 115]
        "115\t5\t1\n"  # touches -> [100, 120]
        "200\t0\t1\n"  # shorter than a second -> [200, 201]
        "50\t5\t2\n"  # out of order
        "300\t-5\t2\n"  # negative duration: line 6
        "abc\t1\t2\n"  # not integers: line 7
    )
    (tmp_path / "houseX.sensor_names").write_text("1\tKitchen ,Light switch A \n2\tFront door\n")
    return tmp_path


def test_negative_duration_raises_naming_file_and_line(crafted):
    with pytest.raises(InvalidInputError, match=r"houseX\.sensors line 6: duration -5 is negative"):
        load_house("X", root=crafted)


def test_crafted_file_merges_and_collects(crafted):
    house = load_house("X", root=crafted, errors="collect")
    assert [(r.line, "negative" in r.reason) for r in house.rejected] == [(6, True), (7, False)]
    assert house.home["timezone"] is None and house.activities == []
    spans = [(iv.device_id, int(iv.start.timestamp()), int(iv.end.timestamp())) for iv in house.intervals]
    assert spans == [("houseX:2", 50, 55), ("houseX:1", 100, 120), ("houseX:1", 200, 201)]
    assert house.merged_intervals == 2
    devices = {d["device_id"]: d for d in house.devices}
    assert devices["houseX:1"] | {"groups": None} == {
        "device_id": "houseX:1", "home_id": "houseX", "name": "Light switch A", "type": "light",
        "room": "Kitchen", "groups": None,
    }  # fmt: skip
    assert (devices["houseX:2"]["name"], devices["houseX:2"]["room"], devices["houseX:2"]["type"]) == (
        "Front door",
        None,
        "door",
    )


def test_ingest_quarantines_rejected_rows(crafted, lake):
    results = ingest_houses(lake, ["X"], dataset="crafted", root=crafted)
    events = results["device_events"]
    assert (events.written, events.quarantined) == (6, 2)
    quarantined = [json.loads(line) for line in events.quarantine_path.read_text().splitlines()]
    assert sorted(q["line"] for q in quarantined) == [6, 7]
    assert all("houseX.sensors" in q["reason"] for q in quarantined)
    table = lake.read("crafted", "device_events").sort_by([("device_id", "ascending"), ("time", "ascending")])
    assert table["state"].to_pylist() == ["on", "off", "on", "off", "on", "off"]


def test_missing_sensors_file(tmp_path):
    with pytest.raises(MissingInputError, match=r"houseQ\.sensors"):
        load_house("Q", root=tmp_path)
    with pytest.raises(InvalidInputError, match="one letter"):
        load_house("AB")


# ---------------------------------------------------------------- lake and CLI


def test_ingest_houses_is_idempotent(lake):
    first = ingest_houses(lake)
    assert {t: (r.written, r.quarantined) for t, r in first.items()} == {
        "homes": (2, 0),
        "devices": (86, 0),
        "device_events": (2442 + 5196, 0),
    }
    again = ingest_houses(lake)
    assert {t: (r.written, r.duplicates) for t, r in again.items()} == {
        "homes": (0, 2),
        "devices": (0, 86),
        "device_events": (0, 7638),
    }
    con = lake.connect("houses")
    rooms = con.execute(
        "SELECT room, count(*) FROM devices WHERE home_id = 'houseD' GROUP BY room ORDER BY 2 DESC LIMIT 1"
    ).fetchall()
    assert rooms == [("Kitchen", 44)]
    per_state = dict(con.execute("SELECT state, count(*) FROM device_events GROUP BY state").fetchall())
    assert per_state == {"on": 3819, "off": 3819}


def test_cli_ingest_houses_json(tmp_path):
    from homeloop.cli import app

    ws = ["--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(app, [*ws, "ingest", "houses", "--house", "A", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["dataset"] == "houses"
    assert figures["tables"]["devices"]["written"] == 14
    assert figures["tables"]["device_events"]["written"] == 2442
    assert figures["totals"]["quarantined"] == 0
    result = CliRunner().invoke(app, [*ws, "ingest", "houses", "--house", "A", "--json"])
    assert json.loads(result.stdout)["totals"]["written"] == 0
