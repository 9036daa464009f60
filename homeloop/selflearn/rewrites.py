"""Query rewrites mined from rephrase chains with an absorbing Markov chain.

The mining job (:class:`RewriteMiner`, or :func:`mine_rewrites`) reads a lake
dataset's ``turns`` and runs in three stages:

1. **Count** (:func:`count_chains`, DuckDB SQL over the Parquet files): turns
   become *states*, the utterance as the assistant heard it, normalised
   (:func:`normalise_utterance`); a rewritten turn counts as the text it was
   heard as (``rewritten_from``). Sessions are one user's turns on one speaking
   device, split where more than ``session_gap_seconds`` pass (window functions
   over user and device ordered by time). Reactions ("no", "stop") are signals,
   not states. A turn that was not defective is absorbed into *success*; a
   defective one moves to the user's next utterance of the session, or, when
   there is none, is absorbed into *failure*. Defect labels come from the
   lake table ``defect_labels`` when the dataset has one, otherwise from rules
   (an error response, a barge-in, negative feedback, a reaction or another
   request within ``rephrase_window_seconds``).
   Turns where a rewrite fired are left out as sources of counts: what followed
   them answered the rewrite, not the utterance, so the chain never learns from
   its own rewrites.
2. **Solve** (:mod:`homeloop.selflearn.markov`): transition probabilities
   pooled over all users, smoothed with ``prior_strength`` pseudo-turns, give
   ``B = (I - Q)^-1 R`` by sparse LU.
3. **Select**: for each source, among the utterances that followed it in the
   same chain of defective turns (at least ``min_support`` times, by at least
   ``min_users`` users), the target with the highest probability of being
   absorbed into success ``B[t, success]``, kept when its own success rate
   beats the source's by ``min_improvement`` (the registered *target scorer*
   ``"absorption"``; ``"eventual"`` judges by ``B`` as well, which also credits
   a target for the rephrases that follow it when it fails; ``"frequency"``,
   the baseline, takes the most frequent follow-up and no chain). Optionally
   (``pool_by="interpretation"``) the chain's states are the NLU interpretations
   of the utterances, which pools evidence across wordings read the same way.

The result is a :class:`RewriteTable`: callable as the simulator's rewriter,
stored in the operational database as a new version in one transaction
(:func:`publish_rewrite_table`), exportable as Parquet or JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from homeloop.errors import InvalidInputError, NoDataError, NotFittedError
from homeloop.selflearn.markov import absorption_probabilities, chain_from_counts

__all__ = [
    "POOLINGS",
    "REACTION_INTENTS",
    "TARGET_SCORERS",
    "ChainCounts",
    "Rewrite",
    "RewriteMiner",
    "RewriteTable",
    "count_chains",
    "has_defect_labels",
    "learn_rewrites",
    "load_rewrite_table",
    "mine_rewrites",
    "normalise_utterance",
    "publish_rewrite_table",
    "rewrite_table_versions",
    "select_rewrites",
]

# NLU intents of turns that react to the previous response rather than ask for something
REACTION_INTENTS = ("general_negate", "general_commandstop")

_PUNCT = '[.,!?;:"()\\[\\]{}]+'
_PUNCT_RE = re.compile(_PUNCT)
_SPACE_RE = re.compile(r"\s+")


def normalise_utterance(text: str | None) -> str:
    """The state an utterance maps to: lower case, punctuation dropped, single spaces.

    The same rule runs inside DuckDB for the mining job (``_normalise_sql``), so a table's sources match
    what the rewriter looks up at run time.
    """
    if not text:
        return ""
    return _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text.lower())).strip()


def _normalise_sql(col: str) -> str:
    return f"trim(regexp_replace(regexp_replace(lower({col}), '{_PUNCT}', ' ', 'g'), '\\s+', ' ', 'g'))"


# ---------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Rewrite:
    """One rewrite: ``source`` as heard is sent to NLU as ``target``."""

    source: str
    target: str
    support: int
    source_success_prob: float
    target_success_prob: float


_TABLE_SCHEMA = pa.schema(
    [
        ("source_text", pa.string()),
        ("target_text", pa.string()),
        ("support", pa.int64()),
        ("source_success_prob", pa.float64()),
        ("target_success_prob", pa.float64()),
    ]
)


class RewriteTable:
    """Learned rewrites, looked up by normalised source text; callable as the simulator's rewriter.

    ``table(texts)`` returns, for each recognised text, its rewrite target or None.
    """

    def __init__(
        self, rewrites: Iterable[Rewrite] = (), *, version: int | None = None, info: Mapping[str, Any] | None = None
    ) -> None:
        self.rewrites: list[Rewrite] = sorted(rewrites, key=lambda r: (-r.support, r.source))
        self._by_source = {r.source: r for r in self.rewrites}
        if len(self._by_source) != len(self.rewrites):
            raise InvalidInputError("rewrites: expected one rewrite per source text, got a source twice")
        self.version = version
        self.info: dict[str, Any] = dict(info or {})

    def __len__(self) -> int:
        return len(self.rewrites)

    def __iter__(self):
        return iter(self.rewrites)

    def __contains__(self, text: str) -> bool:
        return normalise_utterance(text) in self._by_source

    def __repr__(self) -> str:
        return f"RewriteTable({len(self)} rewrites, version={self.version})"

    def get(self, text: str) -> str | None:
        """The target for ``text`` as heard, or None."""
        hit = self._by_source.get(normalise_utterance(text))
        return hit.target if hit is not None else None

    def __call__(self, texts: Sequence[str]) -> list[str | None]:
        return [self.get(t) for t in texts]

    # ------------------------------------------------------------------ export

    def to_arrow(self) -> pa.Table:
        return pa.table(
            {
                "source_text": [r.source for r in self.rewrites],
                "target_text": [r.target for r in self.rewrites],
                "support": [r.support for r in self.rewrites],
                "source_success_prob": [r.source_success_prob for r in self.rewrites],
                "target_success_prob": [r.target_success_prob for r in self.rewrites],
            },
            schema=_TABLE_SCHEMA,
        )

    @classmethod
    def from_arrow(cls, data: pa.Table, **kwargs: Any) -> RewriteTable:
        missing = [n for n in _TABLE_SCHEMA.names if n not in data.column_names]
        if missing:
            raise InvalidInputError(f"rewrite table: expected columns {_TABLE_SCHEMA.names}, missing {missing}")
        cols = [data[n].to_pylist() for n in _TABLE_SCHEMA.names]
        return cls((Rewrite(s, t, int(n), float(p), float(q)) for s, t, n, p, q in zip(*cols, strict=True)), **kwargs)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as Parquet, atomically (a temporary file renamed into place)."""
        meta = {b"homeloop": json.dumps({"version": self.version, "info": self.info}, default=str).encode()}
        data = self.to_arrow().replace_schema_metadata(meta)
        return _atomic(Path(path), lambda tmp: pq.write_table(data, tmp))

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON (``{"version", "info", "rewrites": [...]}``), atomically."""
        body = {
            "version": self.version,
            "info": self.info,
            "rewrites": [
                {
                    "source_text": r.source,
                    "target_text": r.target,
                    "support": r.support,
                    "source_success_prob": r.source_success_prob,
                    "target_success_prob": r.target_success_prob,
                }
                for r in self.rewrites
            ],
        }
        text = json.dumps(body, indent=1, default=str)
        return _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RewriteTable:
        """Read a table written by :meth:`to_parquet` or :meth:`to_json` (by the file's suffix)."""
        p = Path(path)
        if not p.exists():
            from homeloop.errors import MissingInputError

            raise MissingInputError(f"rewrite table {p}: expected a .parquet or .json file, found nothing")
        if p.suffix == ".json":
            body = json.loads(p.read_text(encoding="utf-8"))
            return cls.from_arrow(
                pa.Table.from_pylist(body["rewrites"], schema=_TABLE_SCHEMA),
                version=body.get("version"),
                info=body.get("info"),
            )
        if p.suffix == ".parquet":
            data = pq.read_table(p)
            meta = json.loads((data.schema.metadata or {}).get(b"homeloop", b"{}"))
            return cls.from_arrow(data, version=meta.get("version"), info=meta.get("info"))
        from homeloop.errors import UnsupportedFormatError

        raise UnsupportedFormatError(f"rewrite table {p}: expected a .parquet or .json file, got {p.suffix!r}")


def _atomic(path: Path, write: Callable[[str], Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---------------------------------------------------------------------------------------------- counting


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


# ---------------------------------------------------------------------------------------------- selecting

TargetScorer = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
"""Given the chain's arrays (per text: ``b_success``, ``direct_success`` (its own), ``target_direct_success``
(of its chain state); per candidate pair: ``pair_src``, ``pair_dst``, ``pair_support``), returns
``(rank_score, target_success_prob)`` per candidate pair; the latter is compared with the source's own
success rate."""


def _absorption_scorer(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # rank the reachable utterances by their probability of absorption into success (the chain), but judge
    # the improvement on the target's own success: a rewrite changes the first attempt only, and B also
    # credits a target for the user's later rephrases when it fails
    return a["b_success"][a["pair_dst"]], a["target_direct_success"][a["pair_dst"]]


def _eventual_scorer(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # rank and judge by the absorption probability alone
    p = a["b_success"][a["pair_dst"]]
    return p, p


def _frequency_scorer(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    # the baseline: the most frequent follow-up, judged by its own success rate, no chain
    return a["pair_support"].astype(np.float64), a["target_direct_success"][a["pair_dst"]]


TARGET_SCORERS: dict[str, TargetScorer] = {
    "absorption": _absorption_scorer,
    "eventual": _eventual_scorer,
    "frequency": _frequency_scorer,
}


POOLINGS = ("text", "interpretation")


def _state_groups(pool_by: str, counts: ChainCounts, s_id: np.ndarray, n_states: int) -> np.ndarray:
    """The chain state of each text: itself, or its NLU interpretation (texts never seen unrewritten stay alone)."""
    if pool_by == "text" or "interpretation" not in counts.states.column_names:
        return np.arange(n_states)
    values = counts.states["interpretation"].to_numpy(zero_copy_only=False)
    _, codes = np.unique(values, return_inverse=True)
    group = np.full(n_states, -1, dtype=np.int64)
    group[s_id] = codes
    alone = group < 0
    group[alone] = (codes.max() + 1 if len(codes) else 0) + np.arange(int(alone.sum()))
    return group


def select_rewrites(
    counts: ChainCounts,
    *,
    min_support: int = 3,
    min_users: int = 2,
    min_improvement: float = 0.3,
    prior_strength: float = 2.0,
    target_scorer: str | TargetScorer = "absorption",
    pool_by: str = "text",
) -> tuple[RewriteTable, dict[str, Any]]:
    """Stages 2 and 3: build the chain, solve it, and pick one target per source.

    ``pool_by="interpretation"`` makes the chain's states the NLU interpretations (intent and slots) of the
    utterances rather than the utterances: a target's success probability then pools every utterance the
    NLU read the same way (more data per state). Sources and targets stay texts.
    """
    if pool_by not in POOLINGS:
        raise InvalidInputError(f"pool_by {pool_by!r}: expected one of {', '.join(POOLINGS)}")
    t0 = time.perf_counter()
    scorer = TARGET_SCORERS[target_scorer] if isinstance(target_scorer, str) else target_scorer
    texts = pc.unique(
        pa.chunked_array(
            [
                counts.states["text"].combine_chunks(),
                counts.transitions["dst"].combine_chunks(),
                counts.pairs["dst"].combine_chunks(),
                counts.pairs["src"].combine_chunks(),
            ],
            type=pa.string(),
        )
    )
    texts = texts.take(pc.sort_indices(texts))  # ids in text order: ties between targets go to the first text
    n_states = len(texts)
    if n_states == 0:
        raise NoDataError("turns: expected requests with text, found none")

    def ids(col) -> np.ndarray:
        return pc.index_in(col, value_set=texts).to_numpy(zero_copy_only=False).astype(np.int64)

    s_id = ids(counts.states["text"])
    n = np.zeros(n_states)
    succ = np.zeros(n_states)
    fail = np.zeros(n_states)
    np.add.at(n, s_id, counts.states["n"].to_numpy())
    np.add.at(succ, s_id, counts.states["success"].to_numpy())
    np.add.at(fail, s_id, counts.states["failure"].to_numpy())
    total = n.sum()
    if succ.sum() == 0 or succ.sum() == total:
        raise NoDataError(
            "defect labels: expected both successful and defective turns, got "
            + ("no successful turn" if succ.sum() == 0 else "no defective turn (no feedback signals at all?)")
        )
    p0 = float(succ.sum() / max(succ.sum() + fail.sum(), 1.0))
    # a source's own chance: how often the utterance itself succeeded (smoothed)
    direct = np.where(n + prior_strength > 0, (succ + prior_strength * p0) / np.maximum(n + prior_strength, 1e-12), p0)
    group = _state_groups(pool_by, counts, s_id, n_states)
    n_groups = int(group.max()) + 1
    absorbed = np.zeros((n_groups, 2))
    np.add.at(absorbed, group, np.column_stack([succ, fail]))
    q, r = chain_from_counts(
        n_groups,
        group[ids(counts.transitions["src"])],
        group[ids(counts.transitions["dst"])],
        counts.transitions["n"].to_numpy().astype(np.float64),
        absorbed,
        prior_strength=prior_strength,
        prior=np.array([p0, 1.0 - p0]),
    )
    t_build = time.perf_counter() - t0
    b = absorption_probabilities(q, r)[group]
    target_direct = r[group, 0]  # a target's own success rate, of its chain state (pooled or not)
    t_solve = time.perf_counter() - t0 - t_build

    src = ids(counts.pairs["src"])
    dst = ids(counts.pairs["dst"])
    support = counts.pairs["support"].to_numpy().astype(np.int64)
    users = counts.pairs["users"].to_numpy().astype(np.int64)
    keep = (support >= min_support) & (users >= min_users) & (n[src] >= min_support)
    src, dst, support = src[keep], dst[keep], support[keep]
    arrays = {
        "b_success": b[:, 0],
        "direct_success": direct,
        "target_direct_success": target_direct,
        "pair_src": src,
        "pair_dst": dst,
        "pair_support": support,
    }
    rank, target_p = scorer(arrays)
    source_p = direct[src]
    ok = target_p - source_p >= min_improvement
    src, dst, support, rank, target_p, source_p = (x[ok] for x in (src, dst, support, rank, target_p, source_p))
    # by source, best score first (to 9 decimals, so that float noise does not break ties), then support, then text
    order = np.lexsort((dst, -support, -np.round(rank, 9), src))
    src, dst, support, target_p, source_p = (x[order] for x in (src, dst, support, target_p, source_p))
    first = np.unique(src, return_index=True)[1] if len(src) else np.array([], dtype=np.int64)
    text_list = texts.to_pylist()
    rewrites = [
        Rewrite(
            text_list[src[i]],
            text_list[dst[i]],
            int(support[i]),
            round(float(source_p[i]), 6),
            round(float(target_p[i]), 6),
        )
        for i in first
    ]
    params = {
        "min_support": min_support,
        "min_users": min_users,
        "min_improvement": min_improvement,
        "prior_strength": prior_strength,
        "target_scorer": target_scorer if isinstance(target_scorer, str) else getattr(target_scorer, "__name__", "?"),
        "pool_by": pool_by,
    }
    figures = {
        "states": n_states,
        "chain_states": n_groups,
        "transient_states_with_successors": int(np.count_nonzero(np.diff(q.indptr))),
        "transitions": int(q.nnz),
        "candidate_pairs": int(len(counts.pairs)),
        "candidate_pairs_with_support": int(keep.sum()),
        "rewrites": len(rewrites),
        "success_rate": round(p0, 4),
        "seconds_build_chain": round(t_build, 3),
        "seconds_solve": round(t_solve, 3),
    }
    return RewriteTable(rewrites, info={"params": params}), figures


# ---------------------------------------------------------------------------------------------- the estimator


class RewriteMiner:
    """Mines a :class:`RewriteTable` from a lake dataset's turns (sklearn-like: ``fit`` returns self).

    After ``fit``: ``table_`` (the rewrites), ``figures_`` (counts, timings, where labels came from).
    ``pool_by="interpretation"`` pools the chain's states by NLU interpretation (see :func:`select_rewrites`).
    ``backend`` is ``"local"`` (DuckDB in this process) or ``"ray"`` (see
    :mod:`homeloop.selflearn.distributed`; ``ray_address`` names the cluster).
    """

    def __init__(
        self,
        *,
        min_support: int = 3,
        min_users: int = 2,
        min_improvement: float = 0.3,
        prior_strength: float = 2.0,
        target_scorer: str = "absorption",
        pool_by: str = "text",
        labels: str = "auto",
        session_gap_seconds: float = 60.0,
        rephrase_window_seconds: float = 30.0,
        backend: str = "local",
        ray_address: str | None = None,
        shards: int | None = None,
    ) -> None:
        self.min_support = min_support
        self.min_users = min_users
        self.min_improvement = min_improvement
        self.prior_strength = prior_strength
        self.target_scorer = target_scorer
        self.pool_by = pool_by
        self.labels = labels
        self.session_gap_seconds = session_gap_seconds
        self.rephrase_window_seconds = rephrase_window_seconds
        self.backend = backend
        self.ray_address = ray_address
        self.shards = shards

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def fit(self, lake, dataset: str) -> RewriteMiner:
        if self.target_scorer not in TARGET_SCORERS:
            raise InvalidInputError(
                f"target_scorer {self.target_scorer!r}: expected one of {', '.join(sorted(TARGET_SCORERS))}"
            )
        if self.min_support < 1 or self.min_users < 1:
            raise InvalidInputError(
                f"min_support, min_users: expected at least 1, got {self.min_support}, {self.min_users}"
            )
        t0 = time.perf_counter()
        count_options = {
            "labels": self.labels,
            "session_gap_seconds": self.session_gap_seconds,
            "rephrase_window_seconds": self.rephrase_window_seconds,
        }
        if self.backend == "local":
            counts = count_chains(lake, dataset, **count_options)
        elif self.backend == "ray":
            from homeloop.selflearn.distributed import count_chains_ray

            counts = count_chains_ray(lake, dataset, address=self.ray_address, shards=self.shards, **count_options)
        else:
            raise InvalidInputError(f"backend {self.backend!r}: expected 'local' or 'ray'")
        t_count = time.perf_counter() - t0
        if self.labels == "auto" and counts.figures.get("labels") == "rules":
            warnings.warn(
                f"lake dataset {dataset!r} has no defect_labels table (run `homeloop learn defects`): "
                "mining with rule labels (error response, barge-in, negative feedback, a quick follow-up)",
                UserWarning,
                stacklevel=2,
            )
        table, figures = select_rewrites(
            counts,
            min_support=self.min_support,
            min_users=self.min_users,
            min_improvement=self.min_improvement,
            prior_strength=self.prior_strength,
            target_scorer=self.target_scorer,
            pool_by=self.pool_by,
        )
        table.info.update(
            {
                "dataset": dataset,
                "labels": counts.figures.get("labels"),
                "mined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "params": self.get_params(),
            }
        )
        self.table_ = table
        self.figures_ = {
            **counts.figures,
            **figures,
            "seconds_count": round(t_count, 3),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        return self

    def check_fitted(self) -> None:
        if not hasattr(self, "table_"):
            raise NotFittedError("RewriteMiner: call fit(lake, dataset) before using the table")


def mine_rewrites(lake, dataset: str, **options: Any) -> RewriteTable:
    """Mine a rewrite table from ``dataset``'s turns (options as for :class:`RewriteMiner`)."""
    miner = RewriteMiner(**options).fit(lake, dataset)
    miner.table_.info["figures"] = miner.figures_
    return miner.table_


# ---------------------------------------------------------------------------------------------- the database


def publish_rewrite_table(db, table: RewriteTable, *, dataset: str = "", batch_size: int = 5000) -> int:
    """Store ``table`` as the next version of the rewrite table and return its number.

    The version row and all its rewrites go in one transaction: readers (:func:`load_rewrite_table`)
    see the whole new table once it commits, and the previous one until then; a failure part-way
    leaves nothing of the new version behind. ``table.version`` is set on success.
    """
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from homeloop.db._json import json_object
    from homeloop.db.models import Rewrite as RewriteRow
    from homeloop.db.rewrite_tables import RewriteTableVersion
    from homeloop.errors import DatabaseError

    info = json_object("info", {k: v for k, v in table.info.items() if k != "figures"} | _figures_info(table))
    for attempt in range(5):
        try:
            with db.session(immediate=True) as session:
                if db.dialect == "postgresql":
                    session.execute(sa.select(sa.func.pg_advisory_xact_lock(0x7265777269746573)))  # "rewrites"
                latest = session.scalar(sa.select(sa.func.max(RewriteTableVersion.version)))
                version = (latest or 0) + 1
                now = dt.datetime.now(dt.UTC)
                session.add(RewriteTableVersion(version=version, dataset=dataset, rewrites=len(table), info=info))
                session.flush()
                rows = [
                    {
                        "source_text": r.source,
                        "target_text": r.target,
                        "support": r.support,
                        "source_success_prob": r.source_success_prob,
                        "target_success_prob": r.target_success_prob,
                        "created_at": now,
                        "table_version": version,
                    }
                    for r in table.rewrites
                ]
                for start in range(0, len(rows), batch_size):
                    session.execute(sa.insert(RewriteRow), rows[start : start + batch_size])
            table.version = version
            return version
        except IntegrityError as exc:
            if "rewrite_tables" not in str(exc.orig) and "pk_rewrite_tables" not in str(exc.orig):
                raise InvalidInputError(f"rewrite table: a row was refused by the database ({exc.orig})") from None
            if attempt == 4:
                raise DatabaseError(
                    f"cannot publish a rewrite table: version taken 5 times in a row ({exc.orig})"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _figures_info(table: RewriteTable) -> dict[str, Any]:
    figures = table.info.get("figures")
    return {"figures": figures} if isinstance(figures, dict) else {}


def rewrite_table_versions(db) -> list[dict[str, Any]]:
    """Published versions, newest first: version, dataset, rewrites, created_at, info."""
    import sqlalchemy as sa

    from homeloop.db.rewrite_tables import RewriteTableVersion

    with db.session() as session:
        rows = session.scalars(sa.select(RewriteTableVersion).order_by(RewriteTableVersion.version.desc())).all()
        return [
            {
                "version": r.version,
                "dataset": r.dataset,
                "rewrites": r.rewrites,
                "created_at": r.created_at.isoformat(),
                "info": r.info,
            }
            for r in rows
        ]


def load_rewrite_table(db, version: int | None = None) -> RewriteTable | None:
    """The rewrite table in service (the newest published version), or version ``version``.

    Returns None when no table was ever published; raises when ``version`` does not exist.
    """
    import sqlalchemy as sa

    from homeloop.db.models import Rewrite as RewriteRow
    from homeloop.db.rewrite_tables import RewriteTableVersion

    with db.session() as session:
        if version is None:
            head = session.scalar(sa.select(RewriteTableVersion).order_by(RewriteTableVersion.version.desc()).limit(1))
            if head is None:
                return None
        else:
            head = session.get(RewriteTableVersion, version)
            if head is None:
                known = session.scalars(sa.select(RewriteTableVersion.version).order_by(RewriteTableVersion.version))
                raise InvalidInputError(
                    f"rewrite table version {version}: expected one of {list(known) or 'none (nothing published)'}"
                )
        rows = session.execute(
            sa.select(
                RewriteRow.source_text,
                RewriteRow.target_text,
                RewriteRow.support,
                RewriteRow.source_success_prob,
                RewriteRow.target_success_prob,
            ).where(RewriteRow.table_version == head.version)
        ).all()
        if len(rows) != head.rewrites:
            from homeloop.errors import DatabaseError

            raise DatabaseError(
                f"rewrite table version {head.version}: expected {head.rewrites} rewrites, found {len(rows)}"
            )
        return RewriteTable(
            (Rewrite(s, t, int(n), float(p), float(q)) for s, t, n, p, q in rows),
            version=head.version,
            info=dict(head.info or {}) | {"dataset": head.dataset, "published_at": head.created_at.isoformat()},
        )


def learn_rewrites(
    lake,
    db,
    dataset: str,
    *,
    export: str | os.PathLike[str] | None = None,
    **options: Any,
) -> tuple[RewriteTable, dict[str, Any]]:
    """Mine ``dataset``, publish the table as the next version in ``db``, optionally export it
    (``.parquet`` or ``.json``); returns the table and the mining figures. What ``homeloop learn rewrites`` runs."""
    miner = RewriteMiner(**options).fit(lake, dataset)
    table = miner.table_
    table.info["figures"] = miner.figures_
    version = publish_rewrite_table(db, table, dataset=dataset)
    figures = {**miner.figures_, "version": version}
    if export is not None:
        path = Path(export)
        if path.suffix == ".json":
            table.to_json(path)
        elif path.suffix == ".parquet":
            table.to_parquet(path)
        else:
            from homeloop.errors import UnsupportedFormatError

            raise UnsupportedFormatError(f"export path {path}: expected a .parquet or .json file name")
        figures["exported_to"] = str(path)
    return table, figures
