"""Sessions and defect signals: grouping, bad input, and what each signal reads."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from homeloop.data.schema import table
from homeloop.errors import NoDataError, SchemaError
from homeloop.selflearn import defect_signals, is_negation, rule_defects, sessionize, text_similarity
from homeloop.selflearn.sessions import SIGNAL_FEATURES

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def _turn(turn_id, seconds, text, *, user="u1", device="d1", **extra):
    row = {
        "turn_id": turn_id,
        "user_id": user,
        "device_id": device,
        "home_id": "h1",
        "time": T0 + dt.timedelta(seconds=seconds),
        "asr_text": text,
        "response_type": "action",
        "barge_in": False,
        "feedback": None,
        "asr_confidence": 0.9,
        "nlu_confidence": 0.9,
    }
    row.update(extra)
    return row


def _frame(rows):
    return pd.DataFrame(rows)


def test_sessions_split_on_gap_user_and_device():
    rows = [
        _turn("a", 0, "turn on the light"),
        _turn("b", 30, "turn on the kitchen light"),
        _turn("c", 30 + 61, "what time is it"),  # more than 60 s later: new session
        _turn("d", 5, "play music", user="u2"),  # another user
        _turn("e", 10, "play jazz", device="d2"),  # another device
    ]
    s = sessionize(_frame(rows))
    by_id = s.set_index("turn_id")
    assert by_id.loc["a", "session"] == by_id.loc["b", "session"] == "s-a"
    assert by_id.loc["c", "session"] == "s-c"
    assert by_id.loc["d", "session"] == "s-d" and by_id.loc["e", "session"] == "s-e"
    assert by_id.loc["b", "position"] == 1 and by_id.loc["c", "position"] == 0
    assert s["session"].nunique() == 4
    # a custom gap joins them
    assert sessionize(_frame(rows), gap_seconds=120).set_index("turn_id").loc["c", "session"] == "s-a"


def test_unsorted_input_gives_the_same_sessions():
    rows = [_turn(f"t{i}", i * 20, f"text {i}") for i in range(6)]
    a = sessionize(_frame(rows))
    b = sessionize(_frame(rows[::-1]))
    pd.testing.assert_frame_equal(a[["turn_id", "session", "position"]], b[["turn_id", "session", "position"]])


def test_duplicate_turns_dropped_and_counted():
    rows = [_turn("a", 0, "x"), _turn("a", 0, "x"), _turn("b", 5, "y"), _turn("b", 5, "y"), _turn("b", 5, "y")]
    s = sessionize(_frame(rows))
    assert list(s["turn_id"]) == ["a", "b"]
    assert s.attrs["duplicates_dropped"] == 3


def test_missing_timestamps_rejected_naming_the_turns():
    rows = [_turn("a", 0, "x"), _turn("b", 5, "y")]
    rows[1]["time"] = None
    with pytest.raises(SchemaError, match=r"1 turn\(s\) have no time.*'b'"):
        sessionize(_frame(rows))


def test_missing_columns_and_empty_input_rejected():
    with pytest.raises(SchemaError, match="required column.*'device_id'"):
        sessionize(_frame([_turn("a", 0, "x")]).drop(columns=["device_id"]))
    with pytest.raises(NoDataError):
        sessionize(_frame([_turn("a", 0, "x")]).iloc[:0])
    with pytest.raises(SchemaError, match="'user_id' is empty"):
        sessionize(_frame([_turn("a", 0, "x", user="")]))
    with pytest.raises(SchemaError, match="expected a pyarrow Table or a pandas DataFrame"):
        sessionize([{"turn_id": "a"}])
    with pytest.raises(SchemaError, match="gap_seconds"):
        sessionize(_frame([_turn("a", 0, "x")]), gap_seconds=0)


def test_empty_text_is_an_empty_utterance():
    rows = [_turn("a", 0, None), _turn("b", 3, ""), _turn("c", 6, "turn on the light")]
    s = sessionize(_frame(rows))
    assert list(s["asr_text"]) == ["", "", "turn on the light"]
    sig = defect_signals(s).set_index("turn_id")
    assert sig.loc["a", "empty_text"] == 1 and sig.loc["c", "empty_text"] == 0
    assert sig.loc["a", "next_similarity"] == 0.0


def test_lake_turns_table_with_minimal_columns():
    schema = table("turns").arrow_schema
    rows = [
        {
            "turn_id": "a",
            "session_id": "",
            "user_id": "u",
            "home_id": "h",
            "device_id": "d",
            "time": T0,
            "asr_text": "x",
        }
    ]
    s = sessionize(pa.Table.from_pylist(rows, schema=schema))
    assert s.loc[0, "session"] == "s-a" and not s.loc[0, "barge_in"]
    sig = defect_signals(s)
    assert list(sig.columns[4:]) == list(SIGNAL_FEATURES)
    assert not rule_defects(sig).any()


def test_signals_read_barge_in_no_rephrase_abandonment_and_errors():
    rows = [
        # a failed request, a "no", then a rephrase 12 s later that works
        _turn("q1", 0, "turn on the garage light", barge_in=True),
        _turn("n1", 3, "no that's wrong", response_type="none"),
        _turn("r1", 12, "switch on the garage light"),
        # a lone request that works (new session)
        _turn("ok", 500, "what is the weather"),
        # an error the user gives up on (new session, last turn)
        _turn("err", 1000, "blorp the flumbus", response_type="error"),
        # a request repeated 50 s later: same session (gap <= 60 s) but outside the 45 s window
        _turn("late1", 2000, "set an alarm for seven"),
        _turn("late2", 2050, "set an alarm for seven"),
    ]
    sig = defect_signals(sessionize(_frame(rows))).set_index("turn_id")
    assert sig.loc["q1", "barge_in"] == 1
    assert sig.loc["q1", "next_is_negation"] == 1
    assert sig.loc["q1", "rephrase_follows"] == 1  # the rephrase after the "no" counts
    assert sig.loc["q1", "gap_to_next"] == pytest.approx(3.0)
    assert sig.loc["r1", "prev_similarity"] < 0.1  # its previous turn is the "no"
    assert sig.loc["n1", "is_negation"] == 1
    assert sig.loc["ok", "has_next"] == 0 and sig.loc["ok", "abandoned"] == 0
    assert sig.loc["err", "response_error"] == 1 and sig.loc["err", "abandoned"] == 1
    assert sig.loc["late1", "next_similarity"] == 1.0
    assert sig.loc["late1", "rephrase_follows"] == 0  # outside the window
    assert sig.loc["late1", "gap_to_next"] == pytest.approx(50.0)
    flags = dict(zip(sig.index, rule_defects(sig.reset_index()), strict=True))
    assert flags["q1"] and flags["err"] and not flags["ok"] and not flags["r1"]
    # a wider window catches the late repeat
    wide = defect_signals(sessionize(_frame(rows)), rephrase_window_seconds=60).set_index("turn_id")
    assert wide.loc["late1", "rephrase_follows"] == 1


def test_rule_subsets_and_unknown_rules():
    sig = defect_signals(sessionize(_frame([_turn("a", 0, "x", barge_in=True), _turn("b", 2, "y")])))
    assert rule_defects(sig, rules=["barge_in"]).tolist() == [True, False]
    assert rule_defects(sig, rules=["response_error"]).tolist() == [False, False]
    with pytest.raises(SchemaError, match="rules"):
        rule_defects(sig, rules=["nonsense"])


def test_negation_and_similarity():
    assert is_negation("no") and is_negation("No, that's not what I asked") and is_negation("stop")
    assert not is_negation("turn on the light") and not is_negation("") and not is_negation(None)
    assert not is_negation("i know the north window is not open but please tell me everything about it")
    assert text_similarity("turn on the light", "turn on the light") == 1.0
    assert text_similarity("turn on the light", "") == 0.0
    a = text_similarity("turn on the garage light", "switch on the garage light")
    b = text_similarity("turn on the garage light", "what is the weather tomorrow")
    assert 0.4 < a < 1.0 and b < 0.2
    assert np.isclose(text_similarity("a b c", "c b a"), text_similarity("c b a", "a b c"))


def test_manual_revert_after_an_action():
    entities = [{"mention": "lamp", "entity_id": "light.lamp"}]
    rows = [
        _turn("wrong", 0, "turn on the lamp", resolved_entities=entities),
        _turn("right", 600, "turn on the lamp", resolved_entities=entities),
        _turn("answer", 1200, "what time is it", response_type="answer", resolved_entities=entities),
    ]
    events = pd.DataFrame(
        {
            "device_id": ["light.lamp", "light.lamp", "light.lamp", "light.other"],
            "time": [T0 + dt.timedelta(seconds=s) for s in (0, 45, 600 + 300, 610)],
            "source": ["voice", "manual", "manual", "manual"],
        }
    )
    sig = defect_signals(sessionize(_frame(rows)), device_events=events).set_index("turn_id")
    assert sig.loc["wrong", "reverted_manually"] == 1  # switched back by hand 45 s later
    assert sig.loc["right", "reverted_manually"] == 0  # the next manual change is 300 s later
    assert sig.loc["answer", "reverted_manually"] == 0  # not an action
    assert defect_signals(sessionize(_frame(rows)))["reverted_manually"].sum() == 0  # no events given
