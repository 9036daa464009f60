"""`homeloop simulate` and `homeloop demo` end to end, on a tiny world, with the real NLU."""

from __future__ import annotations

import json
from html import unescape

import pytest
from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.data.lake import Lake
from homeloop.nlu.artifacts import save_model


@pytest.fixture
def ws_with_nlu(workspace, fast_nlu):
    save_model(fast_nlu, workspace.models)
    return workspace


def test_simulate_writes_the_lake_and_reports_json(ws_with_nlu):
    runner = CliRunner()
    args = ["--workspace", str(ws_with_nlu.root), "simulate", "--homes", "3", "--days", "2", "--seed", "4", "--json"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout)
    assert figures["turns"] > 10 and figures["homes"] == 3
    lake = Lake(ws_with_nlu.lake)
    assert lake.read("sim", "turns").num_rows == figures["turns"]
    assert lake.read("sim", "truth_turns").num_rows == figures["turns"]
    # simulating again replaces the dataset instead of piling up
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert lake.read("sim", "turns").num_rows == figures["turns"]


def test_demo_writes_a_report_with_figures(ws_with_nlu):
    out = CliRunner().invoke(
        app, ["--workspace", str(ws_with_nlu.root), "demo", "--homes", "4", "--days", "3", "--json"]
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    index = ws_with_nlu.reports / "demo" / "index.html"
    assert summary["report"] == str(index)
    html = unescape(index.read_text())
    for section in (
        "Defects by failure point",
        "One home's devices",
        "The assistant's NLU",
        "Defects found from implicit feedback",
        "Self-learning: rewrites from rephrase chains",
        "Graceful model updates",
        "Smart home: device embeddings, archetypes, rooms and hunches",
    ):
        assert section in html
    for png in ("defects.png", "timeline.png", "nlu.png"):
        assert (index.parent / png).stat().st_size > 5000
    assert 0 < summary["defects"]["defect_rate"] < 1
    assert summary["rewrites"]["table_version"] == 1 and summary["rewrites"]["losses"] >= 0
    gate = summary["update_gate"]
    assert gate["promoted"] == gate["passed"] and (gate["passed"] or gate["failed_checks"])
    assert not list(ws_with_nlu.reports.glob(".staging-*"))


def test_simulate_refuses_a_bad_config(ws_with_nlu):
    out = CliRunner().invoke(app, ["--workspace", str(ws_with_nlu.root), "simulate", "--homes", "0"])
    assert out.exit_code != 0
    assert "homes" in str(out.exception) or "homes" in out.output
