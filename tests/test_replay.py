"""Replay: paired comparison arithmetic, and the mine -> replay loop on small simulated worlds."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from homeloop.data.lake import Lake
from homeloop.demo.rewrites import rewrites_report_section
from homeloop.selflearn.replay import compare_outcomes, replay_rewrites
from homeloop.selflearn.rewrites import Rewrite, RewriteMiner, RewriteTable
from homeloop.world import WorldConfig, simulate

pytestmark = pytest.mark.filterwarnings("ignore:lake dataset .* rule labels:UserWarning")


def _run(rows):
    """rows: (turn_id, goal, kind, attempt, success, rewritten_from, intent, true_intent)."""
    turns = pa.table(
        {
            "turn_id": [r[0] for r in rows],
            "asr_text": ["x"] * len(rows),
            "intent": [r[6] for r in rows],
            "rewritten_from": [r[5] for r in rows],
        }
    )
    truth = pa.table(
        {
            "turn_id": [r[0] for r in rows],
            "goal_id": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "attempt": [r[3] for r in rows],
            "success": [r[4] for r in rows],
            "true_intent": [r[7] for r in rows],
        }
    )
    return {"turns": turns, "truth_turns": truth}


def test_wins_losses_and_defect_rates_on_paired_turns():
    without = _run(
        [
            ("g1-q0", "g1", "request", 0, False, None, "a", "b"),
            ("g1-r1", "g1", "rephrase", 1, True, None, "b", "b"),
            ("g2-q0", "g2", "request", 0, True, None, "c", "c"),
            ("g3-q0", "g3", "request", 0, False, None, "a", "d"),
            ("g4-q0", "g4", "request", 0, True, None, "e", "e"),
            ("g4-x0", "g4", "reaction", 0, True, None, "general_negate", "general_negate"),
        ]
    )
    with_table = _run(
        [
            ("g1-q0", "g1", "request", 0, True, "b0", "b", "b"),  # win; its rephrase no longer happens
            ("g2-q0", "g2", "request", 0, False, "c0", "a", "c"),  # loss
            ("g3-q0", "g3", "request", 0, False, "d0", "a", "d"),  # fired, still failing
            ("g4-q0", "g4", "request", 0, True, None, "e", "e"),  # not triggered
        ]
    )
    table = RewriteTable([Rewrite("b0", "b", 3, 0.1, 0.9), Rewrite("c0", "a", 3, 0.1, 0.9)])
    result = compare_outcomes(without, with_table, table)
    f = result.figures
    assert (f["wins"], f["losses"], f["win_loss_ratio"]) == (1, 1, 1.0)
    assert f["triggered_requests"] == f["triggered_paired"] == 3
    assert f["defect_rate_triggered_without"] == pytest.approx(2 / 3)
    assert f["defect_rate_triggered_with"] == pytest.approx(2 / 3)
    assert f["relative_defect_reduction_triggered"] == pytest.approx(0.0)
    assert f["defect_rate_without"] == pytest.approx(2 / 5) and f["defect_rate_with"] == pytest.approx(2 / 4)
    assert f["coverage_requests"] == pytest.approx(3 / 4)
    assert f["coverage_defects"] == pytest.approx(2 / 2)
    assert f["intent_precision_triggered_with"] == pytest.approx(1 / 3)
    assert f["goal_success_without"] == pytest.approx(3 / 4) and f["goal_success_with"] == pytest.approx(2 / 4)
    per = {r["source"]: (r["fired"], r["wins"], r["losses"]) for r in result.per_rewrite}
    assert per == {"b0": (1, 1, 0), "c0": (1, 0, 1)}
    section = rewrites_report_section(table, result)
    assert "win/loss 1.0:1" in section.paragraphs[1]


@pytest.fixture(scope="module")
def mined(fast_nlu, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("lake"))
    simulate(WorldConfig(homes=40, days=7, seed=3), nlu=fast_nlu).write(lake, "train")
    miner = RewriteMiner(min_support=2).fit(lake, "train")
    return lake, miner


def test_rewrites_mined_on_training_homes_fix_held_out_ones(mined, fast_nlu):
    _, miner = mined
    table = miner.table_
    assert len(table) >= 5
    held_out = WorldConfig(homes=15, days=5, seed=3, first_home=1000, start=dt.date(2026, 4, 6))
    result = replay_rewrites(table, held_out, nlu=fast_nlu)
    f = result.figures
    assert f["triggered_paired"] >= 5
    assert f["wins"] > 3 * f["losses"]
    assert f["defect_rate_triggered_with"] < f["defect_rate_triggered_without"]
    assert f["intent_precision_triggered_with"] > f["intent_precision_triggered_without"]
    assert sum(r["fired"] for r in result.per_rewrite) == f["triggered_requests"]


def test_replay_changes_only_the_triggered_turns(mined, fast_nlu):
    _, miner = mined
    config = WorldConfig(homes=6, days=4, seed=3, first_home=2000)
    without = simulate(config, nlu=fast_nlu)
    with_table = simulate(config, nlu=fast_nlu, rewriter=miner.table_)

    def column(result, table, name):
        return dict(
            zip(result.tables[table]["turn_id"].to_pylist(), result.tables[table][name].to_pylist(), strict=True)
        )

    before = column(without, "truth_turns", "success")
    after = column(with_table, "truth_turns", "success")
    fired = column(with_table, "turns", "rewritten_from")
    untouched = [(t, ok) for t, ok in after.items() if t in before and fired[t] is None]
    assert untouched and all(before[t] == ok for t, ok in untouched)


def test_learn_and_evaluate_rewrites_from_the_command_line(workspace, fast_nlu):
    from homeloop.cli import app
    from homeloop.nlu.artifacts import save_model

    save_model(fast_nlu, workspace.models)
    runner = CliRunner()
    base = ["--workspace", str(workspace.root)]
    out = runner.invoke(app, [*base, "simulate", "--homes", "40", "--days", "7", "--seed", "3", "--json"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, [*base, "evaluate", "rewrites", "--json"])
    assert out.exit_code == 2 and "learn rewrites" in out.output
    export = workspace.root / "table.parquet"
    out = runner.invoke(app, [*base, "learn", "rewrites", "--min-support", "2", "--export", str(export), "--json"])
    assert out.exit_code == 0, out.output
    learned = json.loads(out.stdout)
    assert learned["version"] == 1 and learned["rewrites"] > 0 and learned["labels"] == "rules"
    assert export.exists() and len(learned["examples"]) > 0
    args = ["evaluate", "rewrites", "--homes", "4", "--days", "3", "--seed", "3", "--json"]
    out = runner.invoke(app, [*base, *args])
    assert out.exit_code == 0, out.output
    replayed = json.loads(out.stdout)
    assert replayed["table_version"] == 1 and replayed["world"]["first_home"] == 1000
    assert {"win_loss_ratio", "coverage_requests", "defect_rate_triggered_with"} <= replayed.keys()
    out = runner.invoke(app, [*base, "evaluate", "rewrites", "--dataset", "sim", "--table", str(export), "--json"])
    assert out.exit_code == 0, out.output
    offline = json.loads(out.stdout)
    assert offline["requests_a_rewrite_would_touch"] > 0 and offline["coverage_requests"] > 0


def test_rewrite_loop_publishes_and_gives_a_report_section(mined, fast_nlu, database_url, tmp_path):
    from homeloop.db import open_database
    from homeloop.demo.rewrites import rewrite_loop
    from homeloop.report import new_report_dir, write_report
    from homeloop.selflearn.rewrites import load_rewrite_table

    lake, _ = mined
    db = open_database(database_url)
    try:
        held_out = WorldConfig(homes=5, days=3, seed=3, first_home=3000)
        table, replay, figures = rewrite_loop(lake, "train", held_out, nlu=fast_nlu, db=db, min_support=2)
        assert figures["version"] == 1 and load_rewrite_table(db).rewrites == table.rewrites
    finally:
        db.dispose()
    section = rewrites_report_section(table, replay, mining_figures=figures)
    assert [caption for caption, _, _ in section.tables][1].startswith("Examples of learned rewrites")
    assert len(section.tables[1][2]) == min(12, len(table))
    index = write_report(new_report_dir(tmp_path), [section], name="r", title="t")
    assert "Self-learning: rewrites" in index.read_text()
