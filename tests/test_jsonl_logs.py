"""The JSON Lines interaction-log adapter, on the fixture log in tests/data/logs and on broken lines."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from pathlib import Path

import pytest

from homeloop.adapters import ingest_logs
from homeloop.errors import InvalidInputError, MissingInputError, NoDataError, UnsupportedFormatError

LOGS = Path(__file__).parent / "data" / "logs"
FIXTURE = LOGS / "assistant.jsonl"
DOCS = Path(__file__).parent.parent / "docs" / "log-format.md"
UTC = dt.UTC
GOOD_TURNS = ["t-0001", "t-0002", "t-0003", "t-0004", "t-0007", "t-0008"]

_TURN_PAIRS = {
    "slots": ("name", "value"),
    "resolved_entities": ("mention", "entity_id"),
    "device_states": ("entity_id", "state"),
}
_TURN_FIELDS = [
    "turn_id",
    "session_id",
    "user_id",
    "home_id",
    "device_id",
    "time",
    "asr_text",
    "asr_confidence",
    "intent",
    "slots",
    "nlu_confidence",
    "resolved_entities",
    "response",
    "response_type",
    "barge_in",
    "feedback",
    "device_states",
    "has_screen",
    "local_time",
    "rewritten_from",
]


def _quarantine(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _expected_turn(line: dict) -> dict:
    """What the lake should hold for one input turn, worked out independently of the schema code."""
    out = {}
    for name in _TURN_FIELDS:
        value = line.get(name)
        if name == "time":
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        elif name == "local_time" and value is not None:
            value = dt.datetime.fromisoformat(value)
        elif name in _TURN_PAIRS and isinstance(value, dict):
            a, b = _TURN_PAIRS[name]
            value = [{a: k, b: v} for k, v in value.items()]
        out[name] = value
    return out


def _normalise_times(row: dict) -> dict:
    return {k: v.astimezone(UTC) if isinstance(v, dt.datetime) and v.tzinfo else v for k, v in row.items()}


def test_fixture_lands_and_bad_lines_are_quarantined(lake):
    results = ingest_logs(lake, FIXTURE)
    assert list(results) == ["homes", "devices", "device_events", "turns"]
    counts = {name: (r.rows_in, r.written, r.duplicates, r.quarantined) for name, r in results.items()}
    assert counts == {
        "homes": (1, 1, 0, 0),
        "devices": (3, 3, 0, 0),
        "device_events": (2, 2, 0, 0),
        "turns": (8, 6, 0, 2),
    }
    assert results["homes"].quarantine_path is None

    bad = _quarantine(results["turns"].quarantine_path)
    assert [b["line"] for b in bad] == [12, 13]
    assert bad[0]["reason"].startswith("line is not valid JSON (Expecting ',' delimiter at column 66)")
    assert '"turn_id": "t-0005"' in bad[0]["reason"]
    assert bad[0]["record"] is None
    assert bad[1]["reason"] == "field 'asr_confidence': expected a number, got str 'high'"
    assert bad[1]["record"]["turn_id"] == "t-0006"
    assert bad[1]["source"] == str(FIXTURE.resolve())
    assert results["turns"].quarantine_path.parent == lake.path("logs") / "_quarantine" / "turns"

    turns = lake.read("logs", "turns")
    assert sorted(turns["turn_id"].to_pylist()) == GOOD_TURNS
    assert lake.read("logs", "devices")["name"].to_pylist() == ["Kitchen speaker", "Porch light", "Hall thermostat"]
    assert lake.read("logs", "homes").to_pylist() == [
        {"home_id": "home-7f3a", "name": "Flat on Keizersgracht", "timezone": "Europe/Amsterdam", "source": "logs"}
    ]


def test_data_read_back_equals_what_went_in(lake):
    ingest_logs(lake, FIXTURE)
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    inputs = {}
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "record" not in record and record["turn_id"] in GOOD_TURNS:
            inputs[record["turn_id"]] = _expected_turn(record)
    rows = {r["turn_id"]: _normalise_times(r) for r in lake.read("logs", "turns").to_pylist()}
    assert rows == inputs
    # +01:00 became UTC; the wall-clock local_time stayed as written
    assert rows["t-0001"]["time"] == dt.datetime(2026, 3, 1, 6, 14, 58, tzinfo=UTC)
    assert rows["t-0001"]["local_time"] == dt.datetime(2026, 3, 1, 7, 14, 58)
    events = sorted((_normalise_times(r) for r in lake.read("logs", "device_events").to_pylist()), key=str)
    assert events == [
        {
            "device_id": "light-porch",
            "home_id": "home-7f3a",
            "time": dt.datetime(2026, 3, 1, 6, 15, tzinfo=UTC),
            "state": "on",
            "value": None,
            "source": "voice",
        },
        {
            "device_id": "thermo-hall",
            "home_id": "home-7f3a",
            "time": dt.datetime(2026, 3, 1, 17, 2, 51, tzinfo=UTC),
            "state": None,
            "value": 21.0,
            "source": "voice",
        },
    ]


def test_ingesting_twice_adds_nothing(lake):
    ingest_logs(lake, FIXTURE)
    files_before = sorted(lake.path("logs").rglob("*.parquet"))
    again = ingest_logs(lake, FIXTURE)
    assert {name: r.written for name, r in again.items()} == dict.fromkeys(again, 0)
    assert again["turns"].duplicates == 6 and again["devices"].duplicates == 3
    assert again["turns"].quarantined == 2  # reported again, same quarantine file
    assert sorted(lake.path("logs").rglob("*.parquet")) == files_before
    assert lake.read("logs", "turns").num_rows == 6
    assert len(list((lake.path("logs") / "_quarantine" / "turns").glob("*.jsonl"))) == 1


@pytest.mark.parametrize("name", ["assistant.jsonl.gz", "assistant.log"])
def test_gzip_is_read_whatever_the_name(lake, tmp_path, name):
    packed = tmp_path / name
    packed.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    progress = []
    results = ingest_logs(lake, packed, dataset="packed", progress=progress.append)
    assert results["turns"].written == 6 and results["turns"].quarantined == 2
    assert [b["line"] for b in _quarantine(results["turns"].quarantine_path)] == [12, 13]
    assert sum(progress) == packed.stat().st_size


def test_small_chunks_give_the_same_lake(lake, tmp_path):
    whole = ingest_logs(lake, FIXTURE, dataset="whole")
    chunked = ingest_logs(lake, FIXTURE, dataset="chunked", chunk_lines=2)
    assert {n: r.as_dict() | {"quarantine_path": None} for n, r in whole.items()} == {
        n: r.as_dict() | {"quarantine_path": None} for n, r in chunked.items()
    }
    for table in ("turns", "devices", "device_events", "homes"):
        a = lake.read("whole", table).sort_by([(lake.read("whole", table).column_names[0], "ascending")])
        b = lake.read("chunked", table).sort_by([(lake.read("chunked", table).column_names[0], "ascending")])
        assert a.equals(b)
    # more bad lines than chunk_lines: split over quarantine files in one folder, none lost
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(f'{{"turn_id": "x{i}"}}\n' for i in range(5)), encoding="utf-8")
    result = ingest_logs(lake, bad, dataset="bad", chunk_lines=2)["turns"]
    assert (result.rows_in, result.written, result.quarantined) == (5, 0, 5)
    files = sorted(result.quarantine_path.parent.glob("bad.jsonl-*.jsonl"))
    assert sorted(b["line"] for f in files for b in _quarantine(f)) == [1, 2, 3, 4, 5]


def _line(**fields) -> str:
    base = {
        "turn_id": "t-1",
        "session_id": "s-1",
        "user_id": "u-1",
        "home_id": "h-1",
        "device_id": "spk-1",
        "time": "2026-03-01T07:00:00+01:00",
        "asr_text": "turn on the light",
    }
    return json.dumps({k: v for k, v in (base | fields).items() if v is not ...})


def test_every_kind_of_bad_line_is_quarantined_with_its_reason(lake, tmp_path):
    path = tmp_path / "mixed.jsonl"
    raw = [
        b"\xef\xbb\xbf" + _line(turn_id="t-bom").encode(),  # 1: a UTF-8 byte order mark is fine
        _line(turn_id="t-latin", asr_text="CAFE").encode().replace(b"CAFE", b"caf\xe9"),  # 2: not UTF-8
        b"[1, 2, 3]",  # 3: not an object
        _line(turn_id="t-kind", record="resident").encode(),  # 4: unknown record kind
        b'{"turn_id": "t-dup", "turn_id": "t-dup2"}',  # 5: a field twice
        _line(turn_id="t-naive", time="2026-03-01T07:00:00").encode(),  # 6: no UTC offset
        _line(turn_id="t-epoch", time=1772345700).encode(),  # 7: epoch seconds are fine
        _line(turn_id="t-far", time=1e20).encode(),  # 8: out of range
        _line(turn_id="t-extra", mood="grumpy").encode(),  # 9: unknown field
        _line(turn_id="t-missing", asr_text=...).encode(),  # 10: required field missing
        _line(turn_id="t-choice", response_type="shrug").encode(),  # 11: outside the choices
        b"",  # 12: blank, skipped
        b'{"record": "device", "device_id": "d-1", "home_id": "h-1", "name": "Lamp", "type": "Light"}',  # 13
        b'{"record": "device", "device_id": "d-2", "home_id": "h-1", "name": "TV box", "type": "media_player"}',
        b'{"record": "device_event", "device_id": "d-1", "home_id": "h-1", "time": 1772345700, "source": "voice"}',
        _line(turn_id="t-crlf").encode() + b"\r",  # 16: CRLF line ending is fine
    ]
    path.write_bytes(b"\n".join(raw) + b"\n")
    results = ingest_logs(lake, path)
    assert sorted(lake.read("logs", "turns")["turn_id"].to_pylist()) == ["t-bom", "t-crlf", "t-epoch"]
    epoch = lake.read("logs", "turns").to_pylist()[1]
    assert _normalise_times(epoch)["time"] == dt.datetime(2026, 3, 1, 6, 15, tzinfo=UTC)
    assert dict(zip(*lake.read("logs", "devices").select(["device_id", "type"]).to_pydict().values(), strict=True)) == {
        "d-1": "light",
        "d-2": "other",
    }
    reasons = {b["line"]: b["reason"] for b in _quarantine(results["turns"].quarantine_path)}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8, 9, 10, 11]
    expected = {
        2: r"line is not UTF-8 text \(invalid continuation byte",
        3: r"expected a JSON object, got list",
        4: r"field 'record': expected one of \['turn', 'home', 'device', 'device_event'\], got 'resident'",
        5: r"field 'turn_id' appears twice",
        6: r"field 'time': .* has no UTC offset",
        8: r"field 'time': 1e\+20 is not a valid time",
        9: r"unknown field 'mood'",
        10: r"required field 'asr_text' is missing",
        11: r"field 'response_type': expected one of \[.*\], got 'shrug'",
    }
    for line, pattern in expected.items():
        assert re.search(pattern, reasons[line]), (line, reasons[line])
    [event_bad] = _quarantine(results["device_events"].quarantine_path)
    assert event_bad["line"] == 15 and "needs a 'state' or a 'value'" in event_bad["reason"]
    assert results["turns"].rows_in == 12 and results["turns"].quarantined == 9  # lines 1-11 and 16


def test_missing_empty_and_all_bad_files(lake, tmp_path):
    with pytest.raises(MissingInputError, match="nope.jsonl does not exist"):
        ingest_logs(lake, tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError):  # MissingInputError is also the built-in
        ingest_logs(lake, tmp_path / "nope.jsonl")
    with pytest.raises(MissingInputError, match="is not a file"):
        ingest_logs(lake, tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(NoDataError, match="holds no records"):
        ingest_logs(lake, empty)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\nstill not json\n", encoding="utf-8")
    result = ingest_logs(lake, garbage)["turns"]
    assert (result.rows_in, result.written, result.quarantined) == (2, 0, 2)
    assert lake.read("logs", "turns").num_rows == 0
    with pytest.raises(InvalidInputError, match="dataset name"):
        ingest_logs(lake, FIXTURE, dataset="../elsewhere")


def test_corrupt_gzip_keeps_what_came_before(lake, tmp_path):
    body = "".join(_line(turn_id=f"t-{i:05d}", asr_text=f"request number {i}") + "\n" for i in range(3000))
    packed = gzip.compress(body.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    with pytest.raises(
        UnsupportedFormatError, match=r"cut\.jsonl\.gz: the gzip stream is corrupt or truncated after line \d+"
    ):
        ingest_logs(lake, path, chunk_lines=500)
    assert lake.read("logs", "turns").num_rows >= 500  # the chunks before the damage are in


def test_the_documented_example_is_valid(lake, tmp_path):
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```jsonl\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "example.jsonl"
    path.write_text(block, encoding="utf-8")
    results = ingest_logs(lake, path)
    assert sum(r.rows_in for r in results.values()) == 5
    assert all(r.quarantined == 0 for r in results.values()), {n: r.quarantine_path for n, r in results.items()}
    # every field the turns table knows is documented
    from homeloop.data.schema import TABLES

    for table in ("turns", "homes", "devices", "device_events"):
        for field in TABLES[table].field_names:
            assert f"| `{field}` |" in text, (table, field)
