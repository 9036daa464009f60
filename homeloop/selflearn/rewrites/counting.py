"""Stage 1 of rewrite mining: count states, transitions and rephrase pairs in DuckDB over a lake
dataset's ``turns`` (:func:`count_chains`), and add up the counts of shards (:class:`ChainCounts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from homeloop.errors import InvalidInputError, NoDataError
from homeloop.selflearn.rewrites.table import _normalise_sql

__all__ = ["REACTION_INTENTS", "ChainCounts", "count_chains", "has_defect_labels"]

# NLU intents of turns that react to the previous response rather than ask for something
REACTION_INTENTS = ("general_negate", "general_commandstop")


@dataclass
class ChainCounts:
    """What the counting stage returns, keyed by normalised text (so shards add up by text).

    ``states``: text, n (turns counted as sources), success, failure, interpretation (a hash of the NLU
    intent and slots it got most often); ``transitions``: src, dst, n;
    ``pairs``: src, dst, support (chain occurrences where ``dst`` followed ``src``), users.
    """

    states: pa.Table
    transitions: pa.Table
    pairs: pa.Table
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def combine(cls, parts: Sequence[ChainCounts]) -> ChainCounts:
        """Add up counts from shards that split the users between them (sessions never span shards).

        ``users`` of a pair is summed, which is exact because each user is in one shard.
        """
        import duckdb

        con = duckdb.connect()
        states = pa.concat_tables([p.states for p in parts])
        transitions = pa.concat_tables([p.transitions for p in parts])
        pairs = pa.concat_tables([p.pairs for p in parts])
        con.register("s", states)
        con.register("t", transitions)
        con.register("p", pairs)
        figures: dict[str, Any] = {}
        for p in parts:
            for k, v in p.figures.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    figures[k] = figures.get(k, 0) + v
                else:
                    figures.setdefault(k, v)
        return cls(
            con.sql(
                "SELECT text, sum(n)::BIGINT n, sum(success)::BIGINT success, sum(failure)::BIGINT failure, "
                "any_value(interpretation) interpretation FROM s GROUP BY text"
            ).to_arrow_table(),
            con.sql("SELECT src, dst, sum(n)::BIGINT n FROM t GROUP BY src, dst").to_arrow_table(),
            con.sql(
                "SELECT src, dst, sum(support)::BIGINT support, sum(users)::BIGINT users FROM p GROUP BY src, dst"
            ).to_arrow_table(),
            figures,
        )


def _table_files(lake_root: Path, dataset: str, name: str) -> list[str]:
    base = Path(lake_root) / dataset / name
    if not base.exists():
        return []
    return sorted(str(p) for p in base.rglob("part-*.parquet"))


def has_defect_labels(lake, dataset: str) -> bool:
    """Whether ``dataset`` has a ``defect_labels`` table (written by :mod:`homeloop.selflearn.defects`)."""
    return bool(_table_files(lake.root, dataset, "defect_labels"))


_OPTIONAL_TURN_COLUMNS = {
    "rewritten_from": "VARCHAR",
    "intent": "VARCHAR",
    "slots": "STRUCT(name VARCHAR, value VARCHAR)[]",
    "response_type": "VARCHAR",
    "barge_in": "BOOLEAN",
    "feedback": "VARCHAR",
}


def count_chains(
    lake,
    dataset: str,
    *,
    labels: str = "auto",
    session_gap_seconds: float = 60.0,
    rephrase_window_seconds: float = 30.0,
    shard: tuple[int, int] | None = None,
    threads: int | None = None,
) -> ChainCounts:
    """Stage 1: count states, transitions and rephrase pairs in DuckDB (see the module docstring).

    ``labels``: ``"auto"`` (the ``defect_labels`` table when present, else rules), ``"defect_labels"``
    or ``"rules"``. ``shard=(i, k)`` counts only the users whose hash falls in shard ``i`` of ``k``.
    """
    import duckdb

    if labels not in ("auto", "defect_labels", "rules"):
        raise InvalidInputError(f"labels {labels!r}: expected 'auto', 'defect_labels' or 'rules'")
    turn_files = _table_files(lake.root, dataset, "turns")
    if not turn_files:
        raise NoDataError(f"lake dataset {dataset!r} at {lake.root}: expected a turns table, found none")
    label_files = _table_files(lake.root, dataset, "defect_labels")
    if labels == "defect_labels" and not label_files:
        raise NoDataError(
            f"lake dataset {dataset!r}: expected a defect_labels table (run `homeloop learn defects`), found none"
        )
    use_labels = bool(label_files) and labels != "rules"
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    present = {
        row[0] for row in con.sql(f"DESCRIBE SELECT * FROM read_parquet({turn_files!r}, union_by_name=true)").fetchall()
    }
    missing = [c for c in ("turn_id", "user_id", "device_id", "time", "asr_text") if c not in present]
    if missing:
        raise InvalidInputError(f"lake dataset {dataset!r} turns: expected the columns {missing}, found none of them")
    # optional fields that a log may not have are read as empty
    cols = ", ".join(
        ["turn_id", "user_id", "device_id", "time", "asr_text"]
        + [c if c in present else f"NULL::{kind} AS {c}" for c, kind in _OPTIONAL_TURN_COLUMNS.items()]
    )
    where = ""
    if shard is not None:
        i, k = shard
        where = f"WHERE hash(user_id) % {int(k)} = {int(i)}"
    con.execute(
        f"CREATE TEMP VIEW turns_src AS SELECT {cols} FROM read_parquet({turn_files!r}, union_by_name=true) {where}"
    )
    n_rows = con.sql("SELECT count(*), count(*) FILTER (WHERE time IS NULL) FROM turns_src").fetchall()[0]
    if n_rows[0] == 0:
        raise NoDataError(f"lake dataset {dataset!r}: expected turns, found an empty table")
    if use_labels:
        con.execute(
            f"CREATE TEMP VIEW labels_src AS SELECT turn_id, any_value(defect) AS defect "
            f"FROM read_parquet({label_files!r}, union_by_name=true) GROUP BY turn_id"
        )
    # normalise each distinct heard text once, not once per turn; from here on texts are integer ids
    con.execute(
        f"""CREATE TEMP TABLE heard AS
        SELECT rh, text, dense_rank() OVER (ORDER BY text) AS tid
        FROM (SELECT rh, {_normalise_sql("raw")} AS text
              FROM (SELECT hash(coalesce(rewritten_from, asr_text)) AS rh, any_value(coalesce(rewritten_from, asr_text)) AS raw
                    FROM turns_src WHERE asr_text IS NOT NULL GROUP BY rh))"""
    )
    reactions = ", ".join(f"'{i}'" for i in REACTION_INTENTS)
    gap, window = float(session_gap_seconds), float(rephrase_window_seconds)
    rule = f"(signal OR (next_time IS NOT NULL AND epoch(next_time) - epoch(time) <= {window}))"
    defect = f"coalesce(label, {rule})" if use_labels else rule
    label_col = ", l.defect AS label" if use_labels else ""
    join_labels = "LEFT JOIN labels_src l ON l.turn_id = t.turn_id" if use_labels else ""
    # user and device, turn ids and texts become 64-bit hashes: sorting and joining integers is what makes this fast
    con.execute(
        f"""CREATE TEMP TABLE base AS
        SELECT hash(t.user_id, t.device_id) AS ud, hash(t.user_id) AS uh, hash(t.turn_id) AS th, t.time, h.tid,
               hash(coalesce(t.intent, ''), t.slots) AS ik,
               NOT (h.text = '' OR coalesce(t.intent, '') IN ({reactions})) AS chain,
               t.rewritten_from IS NOT NULL AS rewritten,
               (coalesce(t.response_type, '') = 'error' OR coalesce(t.barge_in, false)
                OR coalesce(t.feedback, '') = 'negative') AS signal {label_col}
        FROM turns_src t JOIN heard h ON h.rh = hash(coalesce(t.rewritten_from, t.asr_text)) {join_labels}
        WHERE t.time IS NOT NULL"""
    )
    # Two passes over each user's turns on one device, in time order. A turn logged twice counts once (its
    # copy is skipped, also when looking at the next turn). Sessions split where more than `gap` seconds pass.
    # Reactions are signals (by the rules they make the turn before defective), not states of the chain:
    # `chain` rows only. `seg` numbers the runs of defective turns that end in a non-defective one.
    con.execute(
        f"""CREATE TEMP TABLE chain AS
        WITH ordered AS (
            SELECT *,
                   th IS NOT DISTINCT FROM lag(th) OVER w AS dup,
                   CASE WHEN lag(time) OVER w IS NULL OR epoch(time) - epoch(lag(time) OVER w) > {gap}
                        THEN 1 ELSE 0 END AS new,
                   CASE WHEN lead(th) OVER w = th THEN lead(time, 2) OVER w ELSE lead(time) OVER w END AS next_time
            FROM base WINDOW w AS (PARTITION BY ud ORDER BY time, th)
        ),
        labelled AS (
            SELECT * EXCLUDE (next_time), {defect} AS defect FROM ordered WHERE NOT dup
        ),
        walked AS (
            SELECT *,
                   sum(new) OVER w AS sess,
                   sum(CASE WHEN chain AND NOT defect THEN 1 ELSE 0 END) OVER w
                       - CASE WHEN chain AND NOT defect THEN 1 ELSE 0 END AS seg,
                   row_number() OVER w AS pos,
                   lead(CASE WHEN chain THEN tid END IGNORE NULLS) OVER w AS next_chain_tid,
                   lead(CASE WHEN chain THEN pos_time END IGNORE NULLS) OVER w AS next_chain_time,
                   lead(CASE WHEN new = 1 THEN pos_time END IGNORE NULLS) OVER w AS next_break_time
            FROM (SELECT *, epoch(time) + 0.0 AS pos_time FROM labelled)
            WINDOW w AS (PARTITION BY ud ORDER BY time, th ROWS UNBOUNDED PRECEDING)
        )
        SELECT ud, uh, sess, tid, ik, rewritten, defect, seg, pos, new,
               CASE WHEN next_chain_tid IS NOT NULL
                         AND (next_break_time IS NULL OR next_break_time > next_chain_time)
                    THEN next_chain_tid END AS next_tid
        FROM walked WHERE chain"""
    )
    con.execute("CREATE TEMP TABLE vocab AS SELECT DISTINCT tid, text FROM heard")
    states = con.sql(
        """SELECT v.text, c.n, c.success, c.failure, c.interpretation FROM (
               SELECT tid, count(*)::BIGINT n, count(*) FILTER (WHERE NOT defect)::BIGINT success,
                      count(*) FILTER (WHERE defect AND next_tid IS NULL)::BIGINT failure,
                      mode(ik) AS interpretation
               FROM chain WHERE NOT rewritten GROUP BY tid) c JOIN vocab v USING (tid)"""
    ).to_arrow_table()
    transitions = con.sql(
        """SELECT s.text AS src, d.text AS dst, c.n FROM (
               SELECT tid, next_tid, count(*)::BIGINT n FROM chain
               WHERE NOT rewritten AND defect AND next_tid IS NOT NULL GROUP BY 1, 2) c
           JOIN vocab s ON s.tid = c.tid JOIN vocab d ON d.tid = c.next_tid"""
    ).to_arrow_table()
    pairs = con.sql(
        """SELECT s.text AS src, d.text AS dst, c.support, c.users FROM (
               SELECT a.tid AS src, b.tid AS dst, count(*)::BIGINT support, count(DISTINCT a.uh)::BIGINT users
               FROM chain a JOIN chain b ON a.ud = b.ud AND a.sess = b.sess AND a.seg = b.seg AND b.pos > a.pos
               WHERE a.defect AND NOT a.rewritten AND a.tid <> b.tid
               GROUP BY 1, 2) c
           JOIN vocab s ON s.tid = c.src JOIN vocab d ON d.tid = c.dst"""
    ).to_arrow_table()
    summary = con.sql(
        """SELECT count(*), count(*) FILTER (WHERE rewritten), count(*) FILTER (WHERE defect),
                  count(DISTINCT hash(ud, sess)) FROM chain"""
    ).fetchall()[0]
    figures = {
        "turns": int(n_rows[0]),
        "turns_without_time": int(n_rows[1]),
        "request_turns": int(summary[0]),
        "rewritten_turns_left_out": int(summary[1]),
        "defective_turns": int(summary[2]),
        "sessions": int(summary[3]),
        "labels": "defect_labels" if use_labels else "rules",
    }
    con.close()
    return ChainCounts(states, transitions, pairs, figures)
