"""``homeloop ingest logs``: the command over the JSON Lines adapter."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from homeloop.cli import app
from homeloop.data.lake import Lake

FIXTURE = Path(__file__).parent / "data" / "logs" / "assistant.jsonl"


def _ingest(workspace, *args: str):
    return CliRunner().invoke(app, ["--workspace", str(workspace.root), "ingest", "logs", *args])


def test_ingest_logs_json_report_and_warning(workspace):
    result = _ingest(workspace, str(FIXTURE), "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["dataset"] == "logs"
    assert figures["source"] == str(FIXTURE)
    assert figures["totals"] == {"rows_in": 14, "written": 12, "duplicates": 0, "quarantined": 2}
    turns = figures["tables"]["turns"]
    assert (turns["rows_in"], turns["written"], turns["duplicates"], turns["quarantined"]) == (8, 6, 0, 2)
    quarantine = Path(turns["quarantine_path"])
    assert quarantine.is_file() and quarantine.is_relative_to(workspace.lake / "logs" / "_quarantine" / "turns")
    assert [json.loads(line)["line"] for line in quarantine.read_text().splitlines()] == [12, 13]
    assert figures["tables"]["devices"]["quarantine_path"] is None
    assert "warning: 2 of 14 rows were quarantined" in result.stderr
    assert Lake(workspace.lake).read("logs", "turns").num_rows == 6

    again = _ingest(workspace, str(FIXTURE), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["totals"] == {"rows_in": 14, "written": 0, "duplicates": 12, "quarantined": 2}


def test_ingest_logs_into_a_named_dataset_without_warning(workspace, tmp_path):
    clean = tmp_path / "clean.jsonl"
    clean.write_text(
        "\n".join(line for line in FIXTURE.read_text().splitlines() if '"t-0005"' not in line and "high" not in line)
    )
    result = _ingest(workspace, str(clean), "--dataset", "assistant-march", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["dataset"] == "assistant-march"
    assert figures["totals"]["quarantined"] == 0 and figures["totals"]["written"] == 12
    assert "warning" not in result.stderr
    assert Lake(workspace.lake).read("assistant-march", "turns").num_rows == 6


def test_ingest_logs_table_output_and_missing_file(workspace, tmp_path):
    result = _ingest(workspace, str(FIXTURE))
    assert result.exit_code == 0, result.output
    assert "totals.quarantined" in result.stdout and "tables.turns.written" in result.stdout
    missing = _ingest(workspace, str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2  # the MissingInputError, as one error line on stderr
    assert "error:" in missing.stderr and "nope.jsonl" in missing.stderr
