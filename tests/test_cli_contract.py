"""The command line's contract, checked over every command ``homeloop`` registers.

The commands are found by walking the app's click command tree, so a new command is checked without anyone
remembering to add it: every command and group answers ``--help``; every command with ``--json`` is run in a
small workspace (a tiny NLU trained on 300 utterances, a simulated world of two homes for a day, the Home
Assistant fixture, a device model on hashed names) and its stdout must be one JSON object, its progress bars
staying on stderr.
A new command with ``--json`` fails :func:`test_every_json_command_runs_and_prints_json` until it has a line
in :func:`_runs` (or, with the reason, in :data:`RUN_ELSEWHERE`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from homeloop.cli import app

#: commands with --json that this test runs on their error path only (exit code 2, nothing on stdout), and why
RUN_ELSEWHERE = {
    # the whole loop (NLU, simulation, defects, rewrites replayed, device models on the simulated homes and the
    # real houses, an NLU update through the gate, the report) takes minutes even on a tiny world; its --json is
    # parsed by tests/test_cli_demo.py::test_demo_writes_a_report_with_figures
    "demo": ["--homes", "0"],
    # trains on all of HWU64 train and scores on its test split (minutes on 2 cores even for one epoch); its
    # --json is parsed by tests/test_nlu.py::test_cli_train_evaluate_predict
    "nlu train": ["--encoder", "nope"],
    # fine-tunes MiniLM on the simulated truth, then reads every candidate pair with it; its --json is parsed by
    # tests/test_rephrase.py::test_span_model_save_load_and_cli (here: no saved model, no truth to train one)
    "learn rephrases": ["--dataset", "logs"],
}


def _walk(command, path: tuple[str, ...] = ()):
    """(path, command) for ``command`` and every command below it, through click's group interface."""
    yield path, command
    if hasattr(command, "list_commands"):  # a group
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            yield from _walk(command.get_command(ctx, name), (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))
JSON_COMMANDS = {
    " ".join(path) for path, command in COMMANDS if any("--json" in p.opts for p in command.params if p.opts)
}


def test_the_tree_has_every_group():
    names = {path[0] for path, _ in COMMANDS if path}
    assert {"demo", "simulate", "ingest", "nlu", "db", "learn", "evaluate", "models", "home", "audit"} <= names
    assert {"learn rewrites", "home hunches", "audit privacy", "models propose"} <= JSON_COMMANDS


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=lambda path: " ".join(path) or "homeloop")
def test_help(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def tiny_nlu():
    """The fast NLU, small, trained for one epoch on 300 HWU64 utterances (seconds)."""
    import random

    import torch

    from homeloop.datasets import load_hwu64
    from homeloop.nlu import IntentSlotModel

    torch.set_num_threads(2)
    data = random.Random(0).sample(load_hwu64("train"), 300)
    params = {"ngram_buckets": 500, "embedding_dim": 16, "hidden_size": 16}
    return IntentSlotModel(encoder="fast", epochs=1, seed=0, encoder_params=params).fit(data)


def _runs(ws, tmp) -> list[tuple[str, list[str]]]:
    """Every command with --json and its arguments, in an order where each finds what it needs."""
    from ha_fixture import build_installation

    from homeloop.nlu import save_model

    ha = build_installation(tmp / "ha" / "config")
    logs = Path(__file__).parent / "data" / "logs" / "assistant.jsonl"
    v1 = save_model(tiny_nlu(), ws / "models")
    v2, v3 = v1.parent / "v2", v1.parent / "v3"
    return [
        ("db upgrade", []),
        ("db status", []),
        ("ingest logs", [str(logs)]),
        ("ingest houses", ["--house", "A"]),
        ("ingest home-assistant", [str(ha.db_path), "--registry", str(ha.storage_dir), "--dataset", "ha"]),
        ("home ingest", [str(ha.db_path), "--registry", str(ha.storage_dir)]),
        ("home train", ["--text-encoder", "hashing", "--epochs", "1", "--samples-per-device", "30", "--no-evaluate"]),
        ("home hunches", ["--days", "5", "--threshold", "0.2", "--min-days", "1", "--output", str(tmp / "a.yaml")]),
        ("home rooms", []),
        ("home archetypes", ["--k", "3"]),
        ("nlu evaluate", []),
        ("nlu predict", ["turn on the kitchen lights"]),
        ("models interpolate", [str(v1), str(v1), "--old-weight", "0.5"]),
        ("models propose", [str(v2)]),
        ("models promote", []),
        ("models interpolate", [str(v2), str(v1), "--old-weight", "1.0"]),
        ("models propose", [str(v3)]),
        ("models promote", []),
        ("models rollback", []),
        ("models list", []),
        ("simulate", ["--homes", "2", "--days", "1", "--seed", "1"]),
        # the tiny NLU fails nearly every simulated turn: defects and rewrites are learned from the logs fixture
        ("learn defects", ["--dataset", "logs"]),
        (
            "learn rewrites",
            ["--dataset", "logs", "--min-support", "1", "--min-users", "1", "--output", str(tmp / "r.json")],
        ),
        ("evaluate rewrites", ["--homes", "1", "--days", "1", "--show", "3"]),
        (
            "audit privacy",
            ["--epsilon", "inf", "--members", "10", "--shadows", "1", "--canaries", "1"]
            + ["--repeats", "1", "--epochs", "1"],
        ),  # fmt: skip
    ]


def test_every_json_command_runs_and_prints_json(tmp_path, monkeypatch):
    monkeypatch.delenv("HOMELOOP_DATABASE_URL", raising=False)
    ws = tmp_path / "ws"
    runner = CliRunner()
    ran, seconds = set(), {}
    for name, args in _runs(ws, tmp_path):
        started = time.perf_counter()
        result = runner.invoke(app, ["--workspace", str(ws), *name.split(), *args, "--json"])
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        assert result.exit_code == 0, f"homeloop {name}: {result.output}"
        figures = json.loads(result.stdout)
        assert isinstance(figures, dict) and figures, name
        ran.add(name)
    for name, args in RUN_ELSEWHERE.items():
        result = runner.invoke(app, ["--workspace", str(ws), *name.split(), *args, "--json"])
        assert result.exit_code == 2 and "error:" in result.stderr and not result.stdout.strip(), name
        ran.add(name)
    print(" ".join(f"{k}:{v:.1f}s" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])))
    assert ran == JSON_COMMANDS, f"not run: {sorted(JSON_COMMANDS - ran)}"


def test_errors_are_one_line_on_stderr_with_exit_code_2(tmp_path, monkeypatch):
    monkeypatch.delenv("HOMELOOP_DATABASE_URL", raising=False)
    ws = ["--workspace", str(tmp_path / "ws")]
    for args in (
        ["nlu", "evaluate", "--json"],  # no model in service: a HomeloopError from the library
        ["nlu", "train", "--encoder", "nope", "--json"],  # a bad option value: fail()
        ["evaluate", "rewrites", "--json"],  # nothing published yet: fail()
    ):
        result = CliRunner().invoke(app, [*ws, *args])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and not result.stdout.strip()
