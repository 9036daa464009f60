"""The dataset readers, on the real vendored files (exact counts) and on broken copies."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

import homeloop.datasets as datasets
from homeloop.datasets import (
    DialogueTurn,
    is_dissatisfied,
    load_clinc150,
    load_cqr,
    load_ha_fixtures,
    load_ha_intent_tests,
    load_hwu64,
    load_slurp,
    load_snips,
    load_uss,
    majority_rating,
    slurp_wer_distribution,
    vendor_path,
)
from homeloop.datasets.ha_intents import locate_slots
from homeloop.errors import InvalidInputError, UnsupportedFormatError


def test_public_api_is_pinned():
    assert sorted(datasets.__all__) == [
        "CQRDialogue",
        "CQRReformulation",
        "CQRTurn",
        "Dialogue",
        "DialogueTurn",
        "LabeledUtterance",
        "bio_tags",
        "is_dissatisfied",
        "load_clinc150",
        "load_cqr",
        "load_ha_fixtures",
        "load_ha_intent_tests",
        "load_hwu64",
        "load_slurp",
        "load_snips",
        "load_uss",
        "majority_rating",
        "slurp_wer_distribution",
        "vendor_path",
    ]
    for name in datasets.__all__:
        assert getattr(datasets, name) is not None


def test_vendor_readme_lists_every_vendored_folder():
    """A dataset vendored without an attribution row fails here."""
    readme = vendor_path("README.md").read_text(encoding="utf-8")
    folders = sorted(p.name for p in vendor_path().iterdir() if p.is_dir())
    assert {"clinc150", "cqr", "home_assistant_intents", "hwu64", "slurp", "snips", "uss"} <= set(folders)
    for folder in folders:
        assert f"`{folder}/`" in readme


# ------------------------------------------------------------------ HWU64 (reader from the skeleton)


def test_hwu64_counts():
    assert len(load_hwu64("train")) == 9960
    assert len(load_hwu64("test")) == 1076


# ------------------------------------------------------------------ SNIPS


def test_snips_counts_and_intents():
    train = load_snips("train")
    assert len(train) == 13784
    assert Counter(u.intent for u in train) == {
        "AddToPlaylist": 1942,
        "BookRestaurant": 1973,
        "GetWeather": 2000,
        "PlayMusic": 2000,
        "RateBook": 1956,
        "SearchCreativeWork": 1954,
        "SearchScreeningEvent": 1959,
    }
    assert sum(len(u.slots) for u in train) == 35748
    validate = load_snips("validate")
    assert len(validate) == 700
    assert set(Counter(u.intent for u in validate).values()) == {100}
    assert sum(len(u.slots) for u in validate) == 1794


def test_snips_slots_are_the_entity_pieces():
    weather = next(u for u in load_snips("train") if u.intent == "GetWeather")
    assert weather.meta["original_text"] == (
        "What will the weather be this year in Horseshoe Lake State Fish and Wildlife Area?"
    )
    assert weather.text == "What will the weather be this year in Horseshoe Lake State Fish and Wildlife Area ?"
    assert weather.slot_values == [
        ("timeRange", "this year"),
        ("geographic_poi", "Horseshoe Lake State Fish and Wildlife Area"),
    ]
    assert weather.tags[:8] == ["O", "O", "O", "O", "O", "B-timeRange", "I-timeRange", "O"]
    path = vendor_path("snips", "GetWeather", "train_GetWeather_full.json")
    first = json.loads(path.read_text(encoding="utf-8"))["GetWeather"][0]["data"]
    assert [(p["entity"], p["text"]) for p in first if "entity" in p] == weather.slot_values


def test_snips_decodes_the_cesu8_emoji():
    [pizza] = [u for u in load_snips("train") if "Pop Punk Perfection" in u.text]
    assert "🍕" in pizza.tokens
    assert ("playlist", "Pop Punk Perfection 🍕") in pizza.slot_values
    assert all(u.text == " ".join(u.tokens) for u in load_snips("validate"))


def test_snips_malformed_file_names_file_and_line(tmp_path):
    root = tmp_path / "snips"
    shutil.copytree(vendor_path("snips"), root)
    bad = root / "RateBook" / "validate_RateBook.json"
    lines = bad.read_text(encoding="utf-8").splitlines()
    assert lines[8].strip() == '"text": "this",'
    lines[8] = lines[8].rstrip(",")  # drop a comma inside the first request
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"validate_RateBook\.json:10: not valid JSON"):
        load_snips("validate", root=root)
    bad.write_text(json.dumps({"RateBook": [{"data": [{"text": "rate it", "slot": "x"}]}]}), encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"validate_RateBook\.json: RateBook\[0\]\.data\[0\]"):
        load_snips("validate", root=root)
    with pytest.raises(InvalidInputError, match="SNIPS split 'test'"):
        load_snips("test")


# ------------------------------------------------------------------ CLINC150


@pytest.mark.parametrize(("split", "n", "n_oos"), [("train", 15000, 100), ("val", 3000, 100), ("test", 4500, 1000)])
def test_clinc150_counts(split, n, n_oos):
    in_scope = load_clinc150(split)
    assert len(in_scope) == n
    assert len({u.intent for u in in_scope}) == 150
    assert set(Counter(u.intent for u in in_scope).values()) == {n // 150}
    assert "oos" not in {u.intent for u in in_scope}
    with_oos = load_clinc150(split, include_oos=True)
    assert len(with_oos) == n + n_oos
    assert Counter(u.intent for u in with_oos)["oos"] == n_oos
    assert all(not u.slots and u.text == " ".join(u.tokens) for u in with_oos)


def test_clinc150_first_rows_and_errors(tmp_path):
    assert load_clinc150("test")[0].text == "how would you say fly in italian"
    assert load_clinc150("test")[0].intent == "translate"
    assert (
        load_clinc150("val", include_oos=True)[-100].text == "set a warning for when my bank account starts running low"
    )
    doc = json.loads(vendor_path("clinc150", "data_full.json").read_text(encoding="utf-8"))
    doc["val"][3] = ["only text"]
    (tmp_path / "data_full.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"data_full\.json: val\[3\]: expected \[text, intent\]"):
        load_clinc150("val", root=tmp_path)
    with pytest.raises(InvalidInputError):
        load_clinc150("validation")


# ------------------------------------------------------------------ Home Assistant intents


def test_ha_intent_tests_counts():
    tests = load_ha_intent_tests()
    assert len(tests) == 1110
    intents = Counter(u.intent for u in tests)
    assert len(intents) == 41
    assert intents["HassGetState"] == 128
    assert intents["HassTurnOn"] == 115
    assert intents["HassTurnOff"] == 114
    assert sum(1 for u in tests if u.slots) == 1016
    assert sum(1 for u in tests if u.meta["unlocated_slots"]) == 111


def test_ha_intent_tests_locate_slots_and_keep_fixture_names():
    by_file = {}
    for u in load_ha_intent_tests():
        by_file.setdefault(u.meta["file"], []).append(u)
    windows = by_file["HassTurnOn/area_device_class_cover.yaml"][0]
    assert windows.text == "open the windows in the kitchen"
    assert windows.slot_values == [("device_class", "windows"), ("area", "kitchen")]
    assert windows.meta["unlocated_slots"] == {"domain": "cover"}
    assert windows.meta["slots"] == {"area": "Kitchen", "domain": "cover", "device_class": "window"}
    assert windows.meta["response"] == "Opening the window"
    assert windows.meta["areas"] == ["Kitchen"]
    curtains = by_file["HassSetPosition/device_class.yaml"][0]
    assert curtains.text == "set the curtains to 50%"
    assert curtains.slot_values == [("device_class", "curtains"), ("position", "50%")]
    trader_joes = by_file["HassListAddItem/name_item.yaml"]
    assert [u.text for u in trader_joes] == ["add apples to my trader joes list", "put apples on the trader joes list"]
    for u in trader_joes:
        assert u.slot_values == [("item", "apples"), ("name", "trader joes")]
        assert u.meta["entities"] == ["Trader Joes"] and u.meta["areas"] == []


def test_locate_slots_handles_lists_dicts_and_overlaps():
    tokens = ("turn", "on", "the", "kitchen", "light", "and", "the", "bedroom", "lights")
    spans, unlocated = locate_slots(
        tokens,
        {"area": ["Kitchen", "Bedroom", "Attic"], "name": "kitchen light", "extra": {"a": 1}, "domain": "light"},
    )
    # the longer value "kitchen light" is placed first, so area "Kitchen" cannot take word 3
    assert spans == (("name", 3, 5), ("area", 7, 8), ("domain", 8, 9))
    assert unlocated == {"area": ["Kitchen", "Attic"], "extra": {"a": 1}}


def test_ha_fixtures():
    fixtures = load_ha_fixtures()
    assert {k: len(v) for k, v in fixtures.items()} == {"floors": 5, "areas": 8, "entities": 109}
    assert fixtures["areas"][0] == {"id": "guest_room_id", "name": "Guest Room", "floor": "upstairs_id"}
    lamp = fixtures["entities"][0]
    assert lamp == {
        "id": "light.bedroom_lamp",
        "name": "Bedroom Lamp",
        "domain": "light",
        "area": "bedroom_id",
        "state": "off",
        "attributes": {},
    }
    area_ids = {a["id"] for a in fixtures["areas"]}
    assert all(e["area"] in area_ids for e in fixtures["entities"] if e["area"] is not None)


def test_ha_malformed_yaml_names_file_and_line(tmp_path):
    (tmp_path / "HassTurnOn").mkdir()
    (tmp_path / "HassTurnOn" / "bad.yaml").write_text(
        'language: "en"\ntests:\n  - sentences: ["a", "b"\n', encoding="utf-8"
    )
    with pytest.raises(UnsupportedFormatError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_ha_intent_tests(root=tmp_path)
    (tmp_path / "HassTurnOn" / "bad.yaml").write_text("language: en\ntests:\n  - slots: {}\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"bad\.yaml: tests\[0\]: expected a mapping with a 'sentences'"):
        load_ha_intent_tests(root=tmp_path)


# ------------------------------------------------------------------ USS


def test_majority_rating():
    assert majority_rating((3, 3, 3)) == 3
    assert majority_rating((2, 3, 3)) == 3
    assert majority_rating((2, 3, 4)) == 3  # three-way tie: the median
    assert majority_rating((2, 2, 3, 3)) == 2  # tie, median 2.5 halfway: the lower
    assert majority_rating((4, 4, 3, 3)) == 3
    assert majority_rating((1, 1, 4, 4, 5)) == 4  # tie between 1 and 4, median 4
    with pytest.raises(InvalidInputError):
        majority_rating(())


def test_is_dissatisfied():
    assert is_dissatisfied(DialogueTurn("USER", "no, the other one", "INFORM", (2, 2, 3)))
    assert is_dissatisfied(DialogueTurn("USER", "no", "INFORM", (2, 3, 2, 3)))
    assert not is_dissatisfied(DialogueTurn("USER", "thanks", "THANK_YOU", (3, 2, 3)))
    assert not is_dissatisfied(DialogueTurn("SYSTEM", "Sure.", "REQUEST", ()))


@pytest.mark.parametrize(
    ("corpus", "n_user", "n_system", "n_dissatisfied", "n_bad_overall"),
    [("SGD", 12833, 12833, 713, 39), ("MWOZ", 11553, 10555, 670, 48)],
)
def test_uss_counts(corpus, n_user, n_system, n_dissatisfied, n_bad_overall):
    dialogues = load_uss(corpus)
    assert len(dialogues) == 1000
    assert len({d.dialogue_id for d in dialogues}) == 1000
    turns = [t for d in dialogues for t in d.turns]
    assert Counter(t.role for t in turns) == {"USER": n_user, "SYSTEM": n_system}
    assert all(t.text != "OVERALL" for t in turns)
    assert all(3 <= len(t.ratings) <= 7 for t in turns if t.role == "USER")
    assert sum(is_dissatisfied(t) for t in turns) == n_dissatisfied
    assert sum(d.overall <= 2 for d in dialogues) == n_bad_overall


def test_uss_first_dialogue():
    first = load_uss("SGD")[0]
    assert first.dialogue_id == "SGD-0000"
    assert first.turns[0] == DialogueTurn("USER", "What is the weather like on the March 4th?", "INFORM", (3, 3, 3))
    assert first.turns[1].role == "SYSTEM" and first.turns[1].ratings == () and first.turns[1].rating is None
    assert first.overall_ratings == (4, 3, 4) and first.overall == 4
    assert len(first.turns) == 18
    mwoz = load_uss("MWOZ")[0]
    assert mwoz.turns[0].action == "Restaurant-Inform"
    assert mwoz.overall_ratings == (3, 3, 2, 3)


def test_uss_malformed_names_file_and_line(tmp_path):
    lines = vendor_path("uss", "SGD.txt").read_text(encoding="utf-8").splitlines()[:21]  # the first dialogue
    assert lines[0] == "" and lines[19].startswith("USER\tOVERALL") and lines[20] == ""
    broken = list(lines)
    broken[5] = broken[5].replace("\t3,3,3", "\t3,three,3")
    (tmp_path / "SGD.txt").write_text("\n".join(broken) + "\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"SGD\.txt:6: expected comma-separated ratings"):
        load_uss("SGD", root=tmp_path)
    no_overall = [line for line in lines if "OVERALL" not in line]
    (tmp_path / "SGD.txt").write_text("\n".join(no_overall) + "\n", encoding="utf-8")
    with pytest.raises(
        UnsupportedFormatError, match=r"SGD\.txt:20: the dialogue that starts on line 2 has no 'USER\\tOVERALL' line"
    ):
        load_uss("SGD", root=tmp_path)
    with pytest.raises(InvalidInputError):
        load_uss("JDDC")


# ------------------------------------------------------------------ CQR


def test_cqr_counts_and_first_rewrite():
    dialogues = load_cqr()
    assert len(dialogues) == 271
    assert sum(len(d.turns) for d in dialogues) == 1485
    refs = [t.reformulation for d in dialogues for t in d.turns if t.reformulation is not None]
    assert len(refs) == 470
    assert sum(r.reformulated_utt is not None for r in refs) == 206
    assert sum(len(d.rewrites()) for d in dialogues) == 206
    assert Counter(d.intent for d in dialogues) == {"navigate": 99, "weather": 98, "schedule": 74}
    first = dialogues[0]
    assert first.uuid == "95c74b9f-b560-41ff-95da-6581d70514f9"
    ref = first.turns[3].reformulation
    assert ref.base_utt_idx == 0
    assert ref.flag == "zero"
    assert ref.gold_slots == ("Monday", "later this week", "3pm", "conference room 100", "meeting")
    assert len(ref.mturk_reformulations) == 10
    context, base, gold = first.rewrites()[0]
    assert base == "make an appointment to reserve conference room 100 later this week for a meeting"
    assert gold == "make an appointment to reserve conference room 100 later this week Monday at 3pm for a meeting"
    assert context[2] == "Monday at 3pm." and len(context) == 4


def test_cqr_malformed(tmp_path):
    doc = json.loads(vendor_path("cqr", "cqr_kvret_dev_public.json").read_text(encoding="utf-8"))
    doc[1]["dialogue"][0]["turn"] = "passenger"
    (tmp_path / "cqr_kvret_dev_public.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"cqr_kvret_dev_public\.json: \[1\]\.dialogue\[0\]"):
        load_cqr(root=tmp_path)


# ------------------------------------------------------------------ SLURP


def test_slurp_counts_and_first_row():
    rows = load_slurp()
    assert len(rows) == 2033
    assert len({u.intent for u in rows}) == 71
    assert len({u.scenario for u in rows}) == 18
    assert sum(len(u.meta["recordings"]) for u in rows) == 8690
    assert sum(len(u.slots) for u in rows) == 2022
    first = rows[0]
    assert first.intent == "qa_currency" and first.scenario == "qa"
    assert first.slot_values == [("currency_name", "american dollar"), ("currency_name", "japanese yen")]
    assert first.meta["recordings"][0] == {
        "file": "audio-1434542201-headset.flac",
        "wer": 0.0,
        "ent_wer": 0.0,
        "status": "correct",
    }
    assert sum(u.text != u.meta["sentence"] for u in rows) == 5


def test_slurp_wer_distribution():
    wer = slurp_wer_distribution()
    assert wer.dtype == np.float64 and wer.shape == (8690,)
    assert wer.mean() == pytest.approx(0.0815, abs=5e-4)
    assert (wer == 0).mean() == pytest.approx(0.7038, abs=5e-4)
    headset = slurp_wer_distribution(microphone="headset")
    far = slurp_wer_distribution(microphone="far_field")
    assert headset.shape == (4173,) and far.shape == (4517,)
    assert far.mean() > headset.mean()  # the far-field microphone is harder to recognise
    with pytest.raises(InvalidInputError):
        slurp_wer_distribution(microphone="lapel")


def test_slurp_malformed_names_file_and_line(tmp_path):
    lines = vendor_path("slurp", "devel.jsonl").read_text(encoding="utf-8").splitlines()[:10]
    row = json.loads(lines[6])
    row["recordings"][0]["wer"] = "high"
    lines[6] = json.dumps(row)
    (tmp_path / "devel.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"devel\.jsonl:7: recordings\[0\]: 'wer'"):
        load_slurp(root=tmp_path)
    lines[6] = lines[6][:-1]
    (tmp_path / "devel.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormatError, match=r"devel\.jsonl:7: not valid JSON"):
        load_slurp(root=tmp_path)
