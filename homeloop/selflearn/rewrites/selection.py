"""Stages 2 and 3 of rewrite mining: build the absorbing Markov chain from the counts, solve it, and pick
one target per source (:func:`select_rewrites`), with the registered target scorers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from homeloop.errors import InvalidInputError, NoDataError
from homeloop.selflearn.markov import absorption_probabilities, chain_from_counts
from homeloop.selflearn.rewrites.counting import ChainCounts
from homeloop.selflearn.rewrites.table import Rewrite, RewriteTable

__all__ = ["POOLINGS", "TARGET_SCORERS", "TargetScorer", "select_rewrites"]

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
