"""The lake: validation with quarantine, idempotent writes, atomic partitions."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from homeloop.data import lake as lake_module
from homeloop.data.schema import TABLES, table, validate_record
from homeloop.errors import InvalidInputError, SchemaError


def _event(i: int, day: int = 1, **extra):
    return {
        "device_id": f"d{i % 3}",
        "home_id": "h1",
        "time": f"2026-03-{day:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00",
        "state": "on" if i % 2 else "off",
        "source": "manual",
        **extra,
    }


def test_bad_rows_go_to_quarantine_with_line_and_reason(lake):
    records = [
        (1, _event(1)),
        (2, _event(2, time="yesterday")),
        (3, _event(3, colour="red")),
        (4, {"device_id": "d1"}),
        (5, _event(5, source="telepathy")),
        (6, _event(6)),
    ]
    result = lake.ingest("real", "device_events", records, source="events.jsonl")
    assert (result.rows_in, result.written, result.quarantined) == (6, 2, 4)
    lines = [json.loads(x) for x in result.quarantine_path.read_text().splitlines()]
    reasons = {x["line"]: x["reason"] for x in lines}
    assert "not a valid time" in reasons[2]
    assert "unknown field 'colour'" in reasons[3]
    assert "required field" in reasons[4]
    assert "expected one of" in reasons[5] and "telepathy" in reasons[5]
    assert all(x["source"] == "events.jsonl" for x in lines)


def test_ingesting_twice_adds_nothing(lake):
    records = [(i, _event(i, day=1 + i % 3)) for i in range(30)]
    first = lake.ingest("real", "device_events", records, source="a")
    second = lake.ingest("real", "device_events", records, source="a")
    assert first.written == 30 and second.written == 0 and second.duplicates == 30
    assert lake.read("real", "device_events").num_rows == 30
    # duplicates inside one batch are written once
    third = lake.ingest("other", "device_events", records + records, source="a")
    assert third.written == 30


def test_partitions_are_days_and_times_are_utc(lake):
    lake.ingest("real", "device_events", [(1, _event(1, time="2026-03-01T23:30:00-02:00"))], source="a")
    parts = sorted(p.parent.name for p in lake.path("real", "device_events").rglob("part-*.parquet"))
    assert parts == ["date=2026-03-02"]
    t = lake.read("real", "device_events")
    assert t["time"][0].as_py().isoformat() == "2026-03-02T01:30:00+00:00"


def test_crash_mid_write_leaves_no_partial_partition(lake, monkeypatch):
    records = [(i, _event(i, day=1 + i % 4)) for i in range(40)]
    real_write = pq.write_table
    calls = {"n": 0}

    def crashing_write(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            with open(where, "wb") as fh:  # half a file, then the process dies
                fh.write(b"PAR1 partial")
            raise KeyboardInterrupt("power cut")
        return real_write(table, where, **kw)

    monkeypatch.setattr(lake_module.pq, "write_table", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        lake.ingest("real", "device_events", records, source="a")
    visible = list(lake.path("real", "device_events").rglob("part-*.parquet"))
    assert len(visible) == 2  # two whole partitions, nothing of the third
    for p in visible:
        pq.read_table(p)  # every visible file is complete
    assert lake.read("real", "device_events").num_rows == 20
    monkeypatch.setattr(lake_module.pq, "write_table", real_write)
    again = lake.ingest("real", "device_events", records, source="a")
    assert again.written == 20  # the rest, and nothing twice
    assert lake.read("real", "device_events").num_rows == 40
    assert not list(lake.path("real", "device_events").rglob(".*.tmp"))


def test_read_of_missing_table_is_empty_with_schema(lake):
    t = lake.read("nothing", "turns")
    assert t.num_rows == 0 and t.schema == table("turns").arrow_schema


def test_bad_dataset_and_table_names(lake):
    with pytest.raises(InvalidInputError, match="dataset name"):
        lake.path("../etc")
    with pytest.raises(SchemaError, match="unknown table"):
        lake.read("x", "nope")


def test_duckdb_views(lake):
    lake.ingest("real", "device_events", [(i, _event(i)) for i in range(10)], source="a")
    con = lake.connect("real")
    assert con.execute("select count(*) from device_events where state = 'on'").fetchone()[0] == 5


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_round_trips_through_validation(name):
    tbl = table(name)
    assert tbl.key and all(k in tbl.field_names for k in tbl.key)
    with pytest.raises(SchemaError):
        validate_record(tbl, {})


def test_slots_accept_object_or_list_and_keep_repeats():
    tbl = table("turns")
    base = {
        "turn_id": "t",
        "session_id": "s",
        "user_id": "u",
        "home_id": "h",
        "device_id": "d",
        "time": 0,
        "asr_text": "email james and james",
    }
    a = validate_record(tbl, {**base, "slots": {"person": "james"}})
    b = validate_record(tbl, {**base, "slots": [{"name": "person", "value": "james"}] * 2})
    assert a["slots"] == [{"name": "person", "value": "james"}]
    assert len(b["slots"]) == 2
    with pytest.raises(SchemaError, match="'slots'"):
        validate_record(tbl, {**base, "slots": "person=james"})
    with pytest.raises(SchemaError, match="'asr_confidence'"):
        validate_record(tbl, {**base, "asr_confidence": "high"})
    with pytest.raises(SchemaError, match="finite"):
        validate_record(tbl, {**base, "asr_confidence": float("nan")})


def test_staging_replaces_a_dataset_only_when_complete(lake):
    lake.write("sim", "homes", [{"home_id": "old"}])
    with pytest.raises(RuntimeError), lake.staging("sim") as hidden:
        lake.write(hidden, "homes", [{"home_id": "new"}])
        assert "sim" in lake.datasets() and hidden not in lake.datasets()
        raise RuntimeError("crash")
    assert lake.read("sim", "homes")["home_id"].to_pylist() == ["old"]
    assert sorted(p.name for p in lake.root.iterdir()) == ["sim"]
    with lake.staging("sim") as hidden:
        lake.write(hidden, "homes", [{"home_id": "new"}])
    assert lake.read("sim", "homes")["home_id"].to_pylist() == ["new"]
    assert sorted(p.name for p in lake.root.iterdir()) == ["sim"]
