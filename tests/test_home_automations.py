"""Suggested automations as Home Assistant YAML, checked against homeloop's re-implementation of HA's schema."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml

from homeloop.home.automations import automation_config, automations_yaml, entity_id_for, suggest_automations
from homeloop.home.ha_schema import validate_automations


def _hunches():
    rows = []
    for day in range(1, 5):
        rows.append(
            {
                "device_id": "ha-1:light.living_room_lamp",
                "name": "Living Room Lamp",
                "type": "light",
                "local_time": dt.datetime(2026, 3, day, 23, 40 + day),
                "p_asleep": 0.9,
                "p_away": 0.0,
                "score": 0.8,
            }
        )
        rows.append(
            {
                "device_id": "sim-3-d07",
                "name": "Front Door",
                "type": "lock",
                "local_time": dt.datetime(2026, 3, day, 8, 30),
                "p_asleep": 0.0,
                "p_away": 0.9,
                "score": 0.7,
            }
        )
    rows.append(
        {
            "device_id": "sim-3-d09",
            "name": "Plug 1",
            "type": "plug",
            "local_time": dt.datetime(2026, 3, 1, 1, 0),
            "p_asleep": 0.9,
            "p_away": 0.0,
            "score": 0.9,
        }
    )
    return pd.DataFrame(rows)


def test_suggestions_become_valid_home_assistant_automations():
    suggestions = suggest_automations(_hunches(), min_days=2)
    assert [s.entity_id for s in suggestions] == ["light.living_room_lamp", "lock.front_door"]  # Plug 1: one day
    lamp, door = suggestions
    assert lamp.reason == "asleep" and lamp.days == 4 and lamp.time == "23:42"
    assert door.reason == "away" and door.title == "Lock Front Door when everyone has left"
    text = automations_yaml(suggestions)
    parsed = yaml.safe_load(text)
    assert validate_automations(parsed) == []
    assert parsed[0]["actions"] == [{"action": "light.turn_off", "target": {"entity_id": "light.living_room_lamp"}}]
    assert parsed[0]["triggers"][0] == {"trigger": "time", "at": "23:42:00"}
    assert parsed[1]["actions"][0]["action"] == "lock.lock"
    assert parsed[1]["conditions"][0]["state"] == "unlocked"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("triggers"), "triggers"),
        (lambda a: a.pop("actions"), "actions"),
        (lambda a: a.update(trigger=[{"trigger": "time", "at": "07:00"}]), "not both"),
        (lambda a: a["triggers"][0].update(at="25:00:00"), "triggers/0"),
        (lambda a: a["triggers"].append({"trigger": "state"}), "entity_id"),
        (lambda a: a["triggers"].append({"trigger": "state", "platform": "state", "entity_id": "light.x"}), ""),
        (lambda a: a["triggers"].append({"trigger": "numeric_state", "entity_id": "zone.home"}), ""),
        (lambda a: a["conditions"][0].update(entity_id="Living Room Lamp"), "conditions/0"),
        (lambda a: a["conditions"].append({"condition": "time"}), "conditions/2"),
        (lambda a: a["actions"][0].update(action="turn off"), "actions/0"),
        (lambda a: a.update(mode="sometimes"), "mode"),
        (lambda a: a.update(colour="blue"), "colour"),
        (lambda a: a["triggers"][0].update(trigger_at="07:00"), "triggers/0"),
    ],
)
def test_the_schema_rejects_broken_automations(change, message):
    s = suggest_automations(_hunches(), min_days=2)[0]
    config = automation_config(s)
    assert validate_automations([config]) == []
    change(config)
    errors = validate_automations([config])
    assert errors and any(message in e for e in errors), errors


def test_legacy_syntax_is_accepted_and_ids_must_be_unique():
    legacy = {
        "id": "a1",
        "alias": "Old style",
        "trigger": [{"platform": "state", "entity_id": ["light.a", "light.b"], "to": "on", "for": "00:05:00"}],
        "condition": [
            {
                "condition": "or",
                "conditions": [
                    {"condition": "time", "after": "22:00:00"},
                    {"condition": "numeric_state", "entity_id": "sensor.t", "below": 10},
                ],
            }
        ],
        "action": [{"service": "light.turn_off", "target": {"entity_id": "light.a"}}, {"delay": {"minutes": 1}}],
    }
    assert validate_automations([legacy]) == []
    assert any("more than once" in e for e in validate_automations([legacy, dict(legacy)]))
    assert validate_automations({"not": "a list"}) == ["expected a list of automations, got dict"]


def test_entity_ids_keep_home_assistant_ids_and_slug_other_names():
    assert entity_id_for("ha-abc:switch.kettle_plug", "Kettle", "plug") == "switch.kettle_plug"
    assert entity_id_for("h0-00001-d03", "Bedroom Fan #2", "fan") == "fan.bedroom_fan_2"
    assert entity_id_for("houseD:57", "Light switch", "light") == "light.light_switch"
    assert entity_id_for("x", "???", "teleporter") == "switch.device"


def test_validation_without_jsonschema_says_what_is_missing(monkeypatch):
    import sys

    from homeloop.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match="jsonschema"):
        validate_automations([])


def test_jsonschema_is_a_runtime_dependency():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(d.startswith("jsonschema==") for d in project["dependencies"])
