"""The world simulator's invariants, with the real NLU in the loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.compute as pc
import pytest

from homeloop.errors import InvalidInputError
from homeloop.world import WorldConfig, simulate, simulate_to_lake
from homeloop.world.assistant import ON_INTENTS
from homeloop.world.catalog import SYSTEMATIC_CONFUSIONS
from homeloop.world.language import phrasebook

CONFIG = WorldConfig(homes=20, days=6, seed=7)


@pytest.fixture(scope="module")
def world(fast_nlu):
    return simulate(CONFIG, nlu=fast_nlu)


def _joined(result):
    turns = result.tables["turns"].to_pandas()
    truth = result.tables["truth_turns"].to_pandas()
    return turns.merge(truth, on=["turn_id", "time"], validate="one_to_one")


def test_turn_marked_correct_succeeded(world):
    rows = _joined(world)
    ok = rows[rows.success & rows.kind.isin(["request", "rephrase"])]
    assert len(ok) > 100
    device_ok = ok[ok.target_device_id.notna()]
    assert len(device_ok) > 20
    for _, r in device_ok.iterrows():
        assert [e["entity_id"] for e in r.resolved_entities] == [r.target_device_id]
        assert (r.intent in ON_INTENTS) == (r.true_intent in ON_INTENTS)
    info_ok = ok[ok.target_device_id.isna()]
    assert (info_ok.intent == info_ok.true_intent).all()
    # and the other way round: a failed turn has a failure point, a successful one has none
    requests = rows[rows.kind.isin(["request", "rephrase"])]
    assert ((requests.failure_point == "none") == requests.success).all()


def test_every_failure_point_occurs(world):
    points = set(world.tables["truth_turns"]["failure_point"].to_pylist())
    assert {"none", "wake_word", "asr", "nlu", "entity_resolution", "result"} <= points


def test_systematic_confusion_recurs_across_residents(world):
    rows = _joined(world)
    systematic = dict(SYSTEMATIC_CONFUSIONS)
    recurring = 0
    for heard_as_word, misheard in systematic.items():
        hit = rows[
            rows.true_text.str.contains(rf"\b{heard_as_word}\b") & rows.asr_text.str.contains(rf"\b{misheard}\b")
        ]
        if hit.user_id.nunique() >= 2:
            recurring += 1
    assert recurring >= 1


def test_residents_react_and_rephrase(world):
    rows = _joined(world)
    failed = rows[(~rows.success) & rows.kind.isin(["request", "rephrase"])]
    assert failed.barge_in.mean() > rows[rows.success].barge_in.mean()
    rephrases = rows[rows.kind == "rephrase"]
    assert len(rephrases) > 20
    # a rephrase follows a failed attempt of the same goal within seconds
    firsts = rows[rows.kind == "request"].set_index("goal_id")
    sample = rephrases[rephrases.attempt == 1]
    gaps = (sample.time.values - firsts.loc[sample.goal_id, "time"].values).astype("timedelta64[s]").astype(int)
    assert (gaps > 0).all() and (gaps < 60).all()
    assert set(rows.feedback.dropna()) <= {"positive", "negative"}


def test_same_seed_same_world(world, fast_nlu):
    again = simulate(CONFIG, nlu=fast_nlu)
    for name, table in world.tables.items():
        assert again.tables[name].equals(table), name
    other = simulate(dataclasses.replace(CONFIG, seed=8), nlu=fast_nlu)
    assert not other.tables["turns"].equals(world.tables["turns"])


def test_replay_without_changes_reproduces_outcomes(world, fast_nlu):
    replay = simulate(CONFIG, nlu=fast_nlu, rewriter=lambda texts: [None] * len(texts))
    assert replay.goal_outcomes() == world.goal_outcomes()
    assert replay.tables["turns"].equals(world.tables["turns"])


def test_replay_with_a_rewriter_changes_only_what_it_touches(world, fast_nlu):
    # a rewriter that fixes one systematic mishearing everywhere
    truth = world.tables["truth_turns"].to_pandas()
    turns = world.tables["turns"].to_pandas().merge(truth, on="turn_id")
    sys_turns = turns[(turns.asr_error == "systematic") & ~turns.success]
    assert len(sys_turns) > 0
    fixes = dict(zip(sys_turns.asr_text, sys_turns.true_text, strict=False))
    replay = simulate(CONFIG, nlu=fast_nlu, rewriter=lambda texts: [fixes.get(t) for t in texts])
    before, after = world.goal_outcomes(), replay.goal_outcomes()
    assert before.keys() == after.keys()
    changed = [g for g in before if before[g] != after[g]]
    wins = sum(after[g] and not before[g] for g in changed)
    assert wins > 0
    fired = pc.sum(pc.is_valid(replay.tables["turns"]["rewritten_from"])).as_py()
    assert fired > 0
    # goals whose turns the rewriter never touched keep their outcome
    touched = set(
        replay.tables["truth_turns"]
        .to_pandas()
        .merge(replay.tables["turns"].to_pandas()[lambda d: d.rewritten_from.notna()], on="turn_id")
        .goal_id
    )
    assert all(before[g] == after[g] for g in before if g not in touched)


def test_presence_forgotten_and_devices(world):
    presence = world.tables["truth_presence"].to_pandas()
    assert set(presence.state) == {"home", "away", "asleep"}
    assert (presence.end > presence.start).all()
    devices = world.tables["devices"].to_pandas()
    names = set(devices.name)
    assert names & {"Plug 1", "Plug 2", "Lamp", "First Light", "Light 1", "Smart Plug", "Outlet"}
    sizes = devices[devices.type != "speaker"].groupby("home_id").size()
    assert sizes.min() <= 2 and sizes.max() >= 10
    events = world.tables["device_events"].to_pandas()
    assert set(events.source) == {"voice", "manual", "automation"}
    truth_dev = world.tables["truth_devices"].to_pandas()
    assert truth_dev.archetype.nunique() >= 8


def test_world_writes_the_lake_idempotently(world, lake):
    first = world.write(lake, "sim")
    assert first["turns"]["written"] == world.tables["turns"].num_rows
    second = world.write(lake, "sim")
    assert all(r["written"] == 0 for r in second.values())
    assert lake.read("sim", "turns").num_rows == world.tables["turns"].num_rows


def test_bad_config_is_refused():
    with pytest.raises(InvalidInputError, match="homes"):
        WorldConfig(homes=0)
    with pytest.raises(InvalidInputError, match="forget_probability"):
        WorldConfig(forget_probability=1.5)


def _sorted(table, name):
    from homeloop.data.schema import table as schema_table

    return table.sort_by([(k, "ascending") for k in schema_table(name).key])


@pytest.mark.parametrize("workers", [1, 2])
def test_streaming_in_chunks_gives_the_same_world(world, fast_nlu, lake, workers):
    figures = simulate_to_lake(CONFIG, lake, "sim", nlu=fast_nlu, chunk_homes=7, workers=workers)
    assert figures["turns"] == world.tables["turns"].num_rows
    for name in ("homes", "devices", "device_events", "truth_turns", "truth_devices"):
        assert _sorted(lake.read("sim", name), name).equals(_sorted(world.tables[name], name)), name
    # the NLU's float arithmetic depends on which texts share a batch, in the 7th digit
    streamed, whole = _sorted(lake.read("sim", "turns"), "turns"), _sorted(world.tables["turns"], "turns")
    assert streamed.drop_columns(["nlu_confidence"]).equals(whole.drop_columns(["nlu_confidence"]))
    assert np.allclose(
        streamed["nlu_confidence"].to_numpy(), whole["nlu_confidence"].to_numpy(), atol=1e-5, equal_nan=True
    )
    assert lake.datasets() == ["sim"]


def test_a_crash_while_streaming_leaves_the_older_dataset(world, fast_nlu, lake):
    world.write(lake, "sim")

    def crash(stage, done, total):
        if stage == "homes" and done >= 14:  # the first chunk is already written by now
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        simulate_to_lake(dataclasses.replace(CONFIG, seed=9), lake, "sim", nlu=fast_nlu, chunk_homes=7, progress=crash)
    assert _sorted(lake.read("sim", "turns"), "turns").equals(_sorted(world.tables["turns"], "turns"))
    assert sorted(p.name for p in lake.root.iterdir()) == ["sim"]


def test_device_events_always_change_state(world):
    events = world.tables["device_events"].to_pandas().sort_values(["device_id", "time"], kind="stable")
    repeats = events.groupby("device_id")["state"].agg(lambda s: int((s.values[1:] == s.values[:-1]).sum()))
    assert repeats.sum() == 0
    # nothing stays on for a whole day: a wrong action is undone to the state before it, not flipped
    events["next_time"] = events.groupby("device_id")["time"].shift(-1)
    on = events[events.state.isin(["on", "unlocked"]) & events.next_time.notna()]
    assert (on.next_time - on.time).max().total_seconds() < 24 * 3600


def test_context_decides_the_oven_question(fast_nlu):
    config = WorldConfig(homes=16, days=5, seed=3, oven_question_probability=1.0)
    result = simulate(config, nlu=fast_nlu)
    plain = _joined(result)
    devices = result.tables["truth_devices"].to_pandas()
    ovens = set(devices[devices.archetype == "oven"].device_id)
    asked = plain[plain.kind.eq("request") & plain.true_text.isin(phrasebook().temperature_questions)]
    oven_on = asked.device_states.apply(lambda st: any(e["entity_id"] in ovens and e["state"] == "on" for e in st))
    read_right = asked[oven_on & (asked.intent == "weather_query")]
    assert len(read_right) >= 3
    # the weather is the wrong answer with the oven on: a result error
    assert (~read_right.success).all() and (read_right.failure_point == "result").all()
    aware = _joined(simulate(dataclasses.replace(config, assistant_uses_device_context=True), nlu=fast_nlu))
    assert aware.set_index("turn_id").loc[read_right.turn_id, "success"].all()
