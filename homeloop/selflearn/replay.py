"""Measure what a rewrite table changes, by replaying simulated residents with and without it.

:func:`replay_rewrites` simulates the same world twice, once with no rewriter
and once with the table in front of NLU. Every random choice of the simulator is
keyed by goal and attempt, so a turn with the same ``turn_id`` in both runs was
heard the same way; the only difference is the rewrite. Such *paired* turns are
compared on the simulator's ground truth (``truth_turns``):

- **win**: a triggered request (the rewrite fired) that failed without the table
  and succeeded with it; **loss**: the reverse. ``win_loss_ratio = wins / losses``.
- **defect rate** of requests (``request`` and ``rephrase`` turns) overall, in both
  runs, and on the triggered requests; ``relative_defect_reduction_triggered``.
- **coverage**: the share of requests where a rewrite fired, and the share of the
  defective requests (without the table) that a rewrite touched.
- **precision**: on triggered requests, how often NLU's intent matches the true
  intent, with the rewrite and without it.
- **goal success** (the last attempt of each goal succeeded), both runs.

:func:`compare_outcomes` does the arithmetic on the two runs' tables, so it also
works on replays run elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["ReplayResult", "compare_outcomes", "offline_rewrite_figures", "replay_rewrites"]

_REQUEST_KINDS = ("request", "rephrase")


@dataclass
class ReplayResult:
    """Figures of one replay, and per-rewrite wins and losses."""

    figures: dict[str, Any]
    per_rewrite: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.figures, "per_rewrite": self.per_rewrite}


def _frame(tables: dict[str, pa.Table]):
    turns = tables["turns"].select(["turn_id", "asr_text", "intent", "rewritten_from"]).to_pandas()
    truth = (
        tables["truth_turns"].select(["turn_id", "goal_id", "kind", "attempt", "success", "true_intent"]).to_pandas()
    )
    return turns.merge(truth, on="turn_id", how="inner", validate="one_to_one")


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def compare_outcomes(without: dict[str, pa.Table], with_table: dict[str, pa.Table], table=None) -> ReplayResult:
    """Paired comparison of two replays of the same world (see the module docstring).

    ``table`` (a :class:`~homeloop.selflearn.rewrites.RewriteTable`) attributes wins and losses to rewrites.
    """
    a = _frame(without)
    b = _frame(with_table)
    a_req = a[a["kind"].isin(_REQUEST_KINDS)]
    b_req = b[b["kind"].isin(_REQUEST_KINDS)]
    paired = b_req.merge(a_req, on="turn_id", suffixes=("", "_without"), how="inner")
    triggered = paired[paired["rewritten_from"].notna()]
    fired_total = int(b_req["rewritten_from"].notna().sum())
    wins = int((~triggered["success_without"] & triggered["success"]).sum())
    losses = int((triggered["success_without"] & ~triggered["success"]).sum())
    n_trig = len(triggered)
    defect_before_trig = float((~triggered["success_without"]).mean()) if n_trig else None
    defect_after_trig = float((~triggered["success"]).mean()) if n_trig else None
    reduction = (
        (defect_before_trig - defect_after_trig) / defect_before_trig
        if n_trig and defect_before_trig and defect_before_trig > 0
        else None
    )

    def goal_success(df) -> float:
        last = df.sort_values("attempt").groupby("goal_id")["success"].last()
        return float(last.mean()) if len(last) else float("nan")

    defective_without = int((~a_req["success"]).sum())
    defective_touched = int((~triggered["success_without"]).sum())
    figures = {
        "requests_without": len(a_req),
        "requests_with": len(b_req),
        "paired_requests": len(paired),
        "triggered_requests": fired_total,
        "triggered_paired": n_trig,
        "wins": wins,
        "losses": losses,
        "win_loss_ratio": _ratio(wins, losses) if losses else (float("inf") if wins else None),
        "defect_rate_without": float((~a_req["success"]).mean()) if len(a_req) else None,
        "defect_rate_with": float((~b_req["success"]).mean()) if len(b_req) else None,
        "defect_rate_triggered_without": defect_before_trig,
        "defect_rate_triggered_with": defect_after_trig,
        "relative_defect_reduction_triggered": reduction,
        "first_attempt_defect_rate_without": float((~a_req[a_req["attempt"] == 0]["success"]).mean()),
        "first_attempt_defect_rate_with": float((~b_req[b_req["attempt"] == 0]["success"]).mean()),
        "coverage_requests": _ratio(fired_total, len(b_req)),
        "coverage_defects": _ratio(defective_touched, defective_without),
        "intent_precision_triggered_with": float((triggered["intent"] == triggered["true_intent"]).mean())
        if n_trig
        else None,
        "intent_precision_triggered_without": float((triggered["intent_without"] == triggered["true_intent"]).mean())
        if n_trig
        else None,
        "goal_success_without": goal_success(a_req),
        "goal_success_with": goal_success(b_req),
    }
    per_rewrite: list[dict[str, Any]] = []
    if table is not None and n_trig:
        from homeloop.selflearn.rewrites import normalise_utterance

        trig = triggered.assign(source=[normalise_utterance(t) for t in triggered["rewritten_from"]])
        trig = trig.assign(
            win=~trig["success_without"] & trig["success"],
            loss=trig["success_without"] & ~trig["success"],
            defect_without=~trig["success_without"],
            defect_with=~trig["success"],
            intent_right=trig["intent"] == trig["true_intent"],
        )
        agg = trig.groupby("source").agg(
            fired=("turn_id", "size"),
            wins=("win", "sum"),
            losses=("loss", "sum"),
            defects_without=("defect_without", "sum"),
            defects_with=("defect_with", "sum"),
            intent_right=("intent_right", "sum"),
            true_intent=("true_intent", lambda x: x.mode().iat[0] if len(x) else None),
        )
        for rw in table.rewrites:
            row = agg.loc[rw.source] if rw.source in agg.index else None
            per_rewrite.append(
                {
                    "source": rw.source,
                    "target": rw.target,
                    "support": rw.support,
                    "source_success_prob": rw.source_success_prob,
                    "target_success_prob": rw.target_success_prob,
                    "fired": int(row["fired"]) if row is not None else 0,
                    "wins": int(row["wins"]) if row is not None else 0,
                    "losses": int(row["losses"]) if row is not None else 0,
                    "defects_without": int(row["defects_without"]) if row is not None else 0,
                    "defects_with": int(row["defects_with"]) if row is not None else 0,
                    "intent_right_with": int(row["intent_right"]) if row is not None else 0,
                    "true_intent": row["true_intent"] if row is not None else None,
                }
            )
    return ReplayResult(figures, per_rewrite)


def replay_rewrites(
    table,
    config,
    *,
    nlu,
    progress: Callable[[str, int, int], None] | None = None,
) -> ReplayResult:
    """Simulate ``config`` without and with ``table`` in front of NLU and compare (see the module docstring).

    ``config`` should be held out from the data the table was mined on: other homes (``first_home``) or
    later days (``start``) of the same world.
    """
    from homeloop.world import simulate

    t0 = time.perf_counter()
    without = simulate(config, nlu=nlu, progress=progress)
    with_table = simulate(config, nlu=nlu, rewriter=table, progress=progress)
    result = compare_outcomes(without.tables, with_table.tables, table)
    result.figures.update(
        {
            "rewrites_in_table": len(table),
            "world": {
                "seed": config.seed,
                "first_home": config.first_home,
                "homes": config.homes,
                "start": str(config.start),
                "days": config.days,
            },
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    return result


def offline_rewrite_figures(lake, dataset: str, table, *, labels: str = "auto") -> dict[str, Any]:
    """What a table would touch in logged turns that cannot be replayed (real logs): an estimate.

    Coverage (share of requests whose heard text is a source; rewritten turns count as their source),
    the defect rate of those requests as logged, and the success rate that the targets had when people
    said them in the same logs. Defects come from ``defect_labels`` or the mining rules, as in mining.
    """
    from homeloop.selflearn.rewrites import count_chains

    counts = count_chains(lake, dataset, labels=labels)
    states = counts.states.to_pandas().set_index("text")
    sources = [r.source for r in table.rewrites]
    targets = [r.target for r in table.rewrites]
    src = states.reindex(sources).fillna(0)
    tgt = states.reindex(targets).fillna(0)
    requests = int(states["n"].sum())
    touched = int(src["n"].sum())
    touched_fail = int((src["n"] - src["success"]).sum())
    tgt_n = int(tgt["n"].sum())
    return {
        "dataset": dataset,
        "labels": counts.figures["labels"],
        "requests": requests,
        "rewrites_in_table": len(table),
        "sources_seen": int((src["n"] > 0).sum()),
        "requests_a_rewrite_would_touch": touched,
        "coverage_requests": _ratio(touched, requests),
        "defect_rate_sources_logged": _ratio(touched_fail, touched),
        "success_rate_targets_logged": _ratio(float(tgt["success"].sum()), tgt_n),
        "defect_rate_all_logged": _ratio(requests - float(states["success"].sum()), requests),
    }
