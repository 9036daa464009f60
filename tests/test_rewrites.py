"""Rewrite mining on hand-made logs: what the chain learns, what it must not learn, storage and export."""

from __future__ import annotations

import datetime as dt
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from homeloop.data.schema import table as schema_table
from homeloop.db import open_database
from homeloop.errors import InvalidInputError, NoDataError
from homeloop.selflearn.rewrites import (
    RewriteMiner,
    RewriteTable,
    count_chains,
    learn_rewrites,
    load_rewrite_table,
    mine_rewrites,
    normalise_utterance,
    publish_rewrite_table,
    rewrite_table_versions,
)

pytestmark = pytest.mark.filterwarnings("ignore:lake dataset .* rule labels:UserWarning")

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
MISHEARD = "turn on the chicken light"
FIX = "turn on the kitchen light"


class Log:
    """Builds turns: each ``say`` is one turn of a user on their speaker, seconds after the previous one."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.clock: dict[str, dt.datetime] = {}

    def say(
        self, user, text, *, ok, after=5.0, intent="iot_hue_lighton", rewritten_from=None, barge_in=False, slots=None
    ):
        t = self.clock.get(user, T0 + dt.timedelta(hours=len(self.clock))) + dt.timedelta(seconds=after)
        self.clock[user] = t
        self.rows.append(
            {
                "turn_id": f"{user}-{len(self.rows)}",
                "session_id": "",
                "user_id": user,
                "home_id": f"h-{user}",
                "device_id": f"speaker-{user}",
                "time": t,
                "asr_text": text,
                "intent": intent,
                "slots": [{"name": "device", "value": v} for v in ([slots] if slots else [])],
                "response_type": "action" if ok else "error",
                "barge_in": barge_in,
                "rewritten_from": rewritten_from,
            }
        )
        return self

    def pause(self, user, hours=2.0):
        self.clock[user] = self.clock.get(user, T0) + dt.timedelta(hours=hours)
        return self

    def write(self, lake, dataset="logs"):
        lake.write(dataset, "turns", self.rows)
        return dataset


def misheard_then_fixed(log: Log, users, *, reaction=False) -> Log:
    for u in users:
        log.say(u, MISHEARD, ok=False)
        if reaction:
            log.say(u, "no that's wrong", ok=True, intent="general_negate", after=2)
        log.say(u, FIX.title() + ".", ok=True)  # case and punctuation do not make another state
        log.pause(u)
    return log


def successes(log: Log, users, n=3) -> Log:
    for u in users:
        for i in range(n):
            log.say(u, f"what time is it {i}", ok=True, intent="datetime_query").pause(u)
    return log


def test_a_misheard_request_is_rewritten_to_what_people_said_next(lake):
    log = successes(misheard_then_fixed(Log(), [f"u{i}" for i in range(5)], reaction=True), ["u0", "u1"])
    miner = RewriteMiner(min_support=3, min_users=2).fit(lake, log.write(lake))
    table = miner.table_
    assert [(r.source, r.target, r.support) for r in table] == [(MISHEARD, FIX, 5)]
    rw = table.rewrites[0]
    assert rw.target_success_prob - rw.source_success_prob >= 0.3
    assert miner.figures_["labels"] == "rules"
    # callable as the simulator's rewriter, looking texts up normalised
    assert table(["Turn on the CHICKEN light!", "what time is it 0"]) == [FIX, None]
    assert MISHEARD in table and len(table) == 1


def test_thresholds_keep_rewrites_precise(lake):
    ds = misheard_then_fixed(Log(), ["u0", "u1"]).write(lake)
    assert len(RewriteMiner(min_support=3).fit(lake, ds).table_) == 0  # only 2 chains
    assert len(RewriteMiner(min_support=2, min_users=3).fit(lake, ds).table_) == 0  # only 2 users
    assert len(RewriteMiner(min_support=2, min_users=2).fit(lake, ds).table_) == 1
    # the source succeeds as often as the target: no rewrite
    log = misheard_then_fixed(Log(), [f"u{i}" for i in range(4)])
    for u in ("a", "b", "c", "d", "e", "f", "g", "h"):
        log.say(u, MISHEARD, ok=True).pause(u)
    assert len(RewriteMiner(min_improvement=0.3).fit(lake, log.write(lake, "mixed")).table_) == 0


def test_the_chain_does_not_learn_from_its_own_rewrites(lake):
    log = misheard_then_fixed(Log(), ["u0", "u1", "u2"])
    # a rewrite "play jazz -> play chess" already fired for these users; they rephrased after it failed.
    # Counting those turns would teach "play jazz -> play some jazz music" from reactions to the rewrite.
    for u in ("u3", "u4", "u5", "u6"):
        log.say(u, "play chess", ok=False, intent="play_game", rewritten_from="play jazz")
        log.say(u, "play some jazz music", ok=True, intent="play_music").pause(u)
    miner = RewriteMiner(min_support=3).fit(lake, log.write(lake))
    assert [r.source for r in miner.table_] == [MISHEARD]
    assert miner.figures_["rewritten_turns_left_out"] == 4


def test_defect_labels_from_the_lake_are_used_when_present(lake):
    log = misheard_then_fixed(Log(), [f"u{i}" for i in range(4)])
    ds = log.write(lake)
    assert count_chains(lake, ds).figures["labels"] == "rules"
    # the labeller says the misheard turns were fine after all (and everything else too)
    labels = [{"turn_id": r["turn_id"], "time": r["time"], "p_defect": 0.1, "defect": False} for r in log.rows]
    lake.write(ds, "defect_labels", labels)
    assert count_chains(lake, ds).figures["labels"] == "defect_labels"
    with pytest.raises(NoDataError, match="no defective turn"):
        RewriteMiner(labels="defect_labels").fit(lake, ds)
    assert len(RewriteMiner(labels="rules").fit(lake, ds).table_) == 1
    with pytest.raises(NoDataError, match="defect_labels"):
        count_chains(lake, "elsewhere", labels="defect_labels")


def test_a_lake_with_no_feedback_signals_is_refused(lake):
    log = successes(Log(), ["u0", "u1", "u2"])
    with pytest.warns(UserWarning, match="rule labels"), pytest.raises(NoDataError, match="feedback signals"):
        RewriteMiner().fit(lake, log.write(lake))
    with pytest.raises(NoDataError, match="turns"):
        RewriteMiner().fit(lake, "nothing-here")


def test_unsorted_and_duplicated_turns_give_the_same_table(lake, tmp_path):
    log = successes(misheard_then_fixed(Log(), [f"u{i}" for i in range(4)], reaction=True), ["u0"])
    expected = [(r.source, r.target, r.support) for r in mine_rewrites(lake, log.write(lake), min_support=3)]
    assert expected
    # the same turns, shuffled and each logged twice, written straight into a lake folder (no de-duplication)
    # plus a turn without a time (cannot be placed in a session) and one with empty text (no state)
    odd = [
        {**log.rows[0], "turn_id": "no-time", "time": None},
        {**log.rows[0], "turn_id": "empty", "asr_text": " ?! ", "time": T0 + dt.timedelta(days=30)},
    ]
    rows = log.rows * 2 + odd
    random.Random(0).shuffle(rows)
    raw = tmp_path / "raw"
    (raw / "messy" / "turns").mkdir(parents=True)
    schema = pa.schema([f.with_nullable(True) for f in schema_table("turns").arrow_schema])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), raw / "messy/turns/part-0.parquet")
    from homeloop.data.lake import Lake

    miner = RewriteMiner(min_support=3).fit(Lake(raw), "messy")
    assert [(r.source, r.target, r.support) for r in miner.table_] == expected
    assert miner.figures_["turns"] == 2 * len(log.rows) + 2
    assert miner.figures_["turns_without_time"] == 1
    assert miner.figures_["request_turns"] == mine_rewrites(lake, "logs").info["figures"]["request_turns"]


def test_empty_text_and_reactions_are_not_states():
    assert normalise_utterance("  Turn ON, the  light! ") == "turn on the light"
    assert normalise_utterance("") == normalise_utterance(None) == ""


def test_export_round_trips_and_is_atomic(tmp_path):
    from homeloop.selflearn.rewrites import Rewrite

    table = RewriteTable(
        [Rewrite(MISHEARD, FIX, 5, 0.1, 0.9), Rewrite("play jas", "play jazz", 3, 0.2, 0.8)], version=3
    )
    for name in ("t.parquet", "t.json"):
        path = table.to_parquet(tmp_path / name) if name.endswith("parquet") else table.to_json(tmp_path / name)
        back = RewriteTable.read(path)
        assert back.rewrites == table.rewrites and back.version == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.parquet"]  # no temporary files left
    assert json.loads((tmp_path / "t.json").read_text())["rewrites"][0]["source_text"] == MISHEARD
    with pytest.raises(InvalidInputError, match="one rewrite per source"):
        RewriteTable([Rewrite("a", "b", 1, 0, 1), Rewrite("a", "c", 1, 0, 1)])


def test_publishing_is_atomic_and_versioned(database_url, lake, tmp_path):
    from homeloop.selflearn.rewrites import Rewrite

    db = open_database(database_url)
    try:
        assert load_rewrite_table(db) is None
        ds = misheard_then_fixed(Log(), [f"u{i}" for i in range(4)]).write(lake)
        table, figures = learn_rewrites(lake, db, ds, export=tmp_path / "v.json")
        assert figures["version"] == 1 and (tmp_path / "v.json").exists()
        assert [(r.source, r.target) for r in load_rewrite_table(db)] == [(MISHEARD, FIX)]
        second = RewriteTable([Rewrite("play jas", "play jazz", 3, 0.2, 0.8)])
        assert publish_rewrite_table(db, second, dataset="other") == 2
        assert [r.source for r in load_rewrite_table(db)] == ["play jas"]
        # a table the database refuses part-way (a negative support) leaves no trace: version 2 stays in service
        broken = RewriteTable([Rewrite(f"s{i}", "t", 1, 0.0, 1.0) for i in range(50)] + [Rewrite("bad", "t", -1, 0, 1)])
        with pytest.raises(InvalidInputError, match="refused"):
            publish_rewrite_table(db, broken, batch_size=10)
        assert load_rewrite_table(db).version == 2
        assert [v["version"] for v in rewrite_table_versions(db)] == [2, 1]
        with db.session() as session:
            assert session.scalar(sa.text("SELECT count(*) FROM rewrites WHERE table_version = 3")) == 0
        assert [r.source for r in load_rewrite_table(db, 1)] == [MISHEARD]
        with pytest.raises(InvalidInputError, match="version 7"):
            load_rewrite_table(db, 7)
    finally:
        db.dispose()


def test_pooling_by_interpretation_judges_a_target_by_every_wording_read_the_same_way(lake):
    log = Log()
    for u in ("u0", "u1", "u2"):
        log.say(u, MISHEARD, ok=False, slots="chicken light")
        log.say(u, FIX, ok=True, slots="kitchen light").pause(u)
    # another wording that the NLU reads exactly like FIX keeps failing (say, the kitchen light is unreachable)
    for u in ("a", "b", "c", "d", "e", "f"):
        log.say(u, "switch on the kitchen light", ok=False, slots="kitchen light").pause(u)
    ds = log.write(lake)
    by_text = RewriteMiner(min_support=3, min_users=2).fit(lake, ds)
    assert [(r.source, r.target) for r in by_text.table_] == [(MISHEARD, FIX)]
    pooled = RewriteMiner(min_support=3, min_users=2, pool_by="interpretation").fit(lake, ds)
    assert len(pooled.table_) == 0
    assert pooled.figures_["chain_states"] < by_text.figures_["chain_states"]
    with pytest.raises(InvalidInputError, match="pool_by"):
        RewriteMiner(pool_by="intent").fit(lake, ds)
