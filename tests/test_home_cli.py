"""``homeloop home``: from a Home Assistant recorder database to hunches and automation suggestions."""

from __future__ import annotations

import json

import pytest
import yaml
from ha_fixture import build_installation
from typer.testing import CliRunner

from homeloop.home.ha_schema import validate_automations


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    return build_installation(tmp_path_factory.mktemp("home-cli") / "config")


def _run(app, args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_recorder_to_hunches_rooms_archetypes_and_automations(ha, tmp_path):
    from homeloop.cli import app

    ws = ["--workspace", str(tmp_path / "ws")]
    ingested = _run(app, [*ws, "home", "ingest", str(ha.db_path), "--registry", str(ha.storage_dir), "--json"])
    assert ingested["entities"] == len(ha.entities)
    trained = _run(app, [*ws, "home", "train", "--text-encoder", "hashing", "--epochs", "3",
                         "--samples-per-device", "300", "--ensemble", "2", "--json"])  # fmt: skip
    assert trained["devices"] == len(ha.entities)
    assert trained["ensemble"] == 2 and trained["refit"] is True  # the saved two-model average serves the rest
    held = trained["held_out"]
    assert held["model"]["auc"] > 0.5 and held["best_baseline"] in held
    out = tmp_path / "automations.yaml"
    hunches = _run(app, [*ws, "home", "hunches", "--threshold", "0.2", "--days", "5", "--min-days", "1",
                         "--output", str(out), "--json"])  # fmt: skip
    assert out.exists()
    suggestions = yaml.safe_load(out.read_text()) or []
    assert validate_automations(suggestions) == []
    assert len(suggestions) == len(hunches["suggested_automations"])
    assert all(h["score"] >= 0.2 for h in hunches["hunches"])
    rooms = _run(app, [*ws, "home", "rooms", "--json"])
    assert rooms["leave_one_out"]["devices"] > 30
    assert rooms["leave_one_out"]["accuracy"] > rooms["leave_one_out"]["most_common_room_accuracy"]
    archetypes = _run(app, [*ws, "home", "archetypes", "--k", "5", "--json"])
    assert len(archetypes["archetypes"]) == 5
    # every entity with an on/off history is in an archetype (two numeric-only sensors have none)
    assert sum(a["devices"] for a in archetypes["archetypes"]) == archetypes["devices"] == len(ha.entities) - 2


def test_training_on_a_missing_dataset_says_what_is_missing(tmp_path):
    from homeloop.cli import app

    result = CliRunner().invoke(app, ["--workspace", str(tmp_path / "ws"), "home", "train", "--dataset", "none"])
    assert result.exit_code == 2
    assert "dataset 'none'" in result.output and "ingest device history first" in result.output
