"""The demo report's section on rewrites, and the loop it shows: mine rewrites, replay held-out residents.

:func:`rewrite_loop` mines a rewrite table from rephrase chains (publishing it to the database),
then replays a held-out world without and with it (:func:`homeloop.selflearn.replay_rewrites`);
:func:`rewrites_report_section` shows the learned rewrites and what they changed;
:func:`rewrites_section` is what the demo runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from homeloop.data.lake import Lake
from homeloop.db import open_database
from homeloop.report import Section
from homeloop.selflearn import ReplayResult, RewriteMiner, publish_rewrite_table, replay_rewrites
from homeloop.workspace import Workspace
from homeloop.world import WorldConfig

__all__ = ["rewrite_loop", "rewrites_report_section", "rewrites_section"]


def rewrite_loop(
    lake, dataset: str, held_out, *, nlu, db=None, progress=None, **options: Any
) -> tuple[Any, ReplayResult, dict[str, Any]]:
    """The whole loop the demo shows: mine ``dataset`` (publishing the table when ``db`` is given), then
    replay the held-out world ``held_out`` without and with it.

    Returns ``(table, replay, mining_figures)``; pass them to :func:`rewrites_report_section`.
    """
    miner = RewriteMiner(**options).fit(lake, dataset)
    table = miner.table_
    figures = dict(miner.figures_)
    if db is not None:
        table.info["figures"] = figures
        figures["version"] = publish_rewrite_table(db, table, dataset=dataset)
    return table, replay_rewrites(table, held_out, nlu=nlu, progress=progress), figures


def rewrites_report_section(
    table,
    replay: ReplayResult,
    *,
    mining_figures: dict[str, Any] | None = None,
    examples: int = 12,
) -> Section:
    """A report section: the learned rewrites (examples with replay wins and losses) and what they changed."""
    f = replay.figures

    def pct(x) -> str:
        return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{100 * x:.1f}%"

    wl = f.get("win_loss_ratio")
    wl_text = "n/a" if wl is None else ("no losses" if wl == float("inf") else f"{wl:.1f}:1")
    paragraphs = [
        f"Rewrites mined from rephrase chains pooled over all residents with an absorbing Markov chain: "
        f"{len(table)} rewrites"
        + (
            f" from {mining_figures.get('turns', '?')} turns ({mining_figures.get('labels', '?')} defect labels)"
            if mining_figures
            else ""
        )
        + ".",
        f"Replayed on held-out residents and days, once without and once with the table in front of NLU: "
        f"a rewrite fired on {f['triggered_requests']} of {f['requests_with']} requests "
        f"(coverage {pct(f['coverage_requests'])}); win/loss {wl_text} ({f['wins']} wins, {f['losses']} losses). "
        f"Defect rate on triggered requests {pct(f['defect_rate_triggered_without'])} → "
        f"{pct(f['defect_rate_triggered_with'])} (relative reduction "
        f"{pct(f['relative_defect_reduction_triggered'])}); overall {pct(f['defect_rate_without'])} → "
        f"{pct(f['defect_rate_with'])}; goals reached {pct(f['goal_success_without'])} → "
        f"{pct(f['goal_success_with'])}.",
    ]
    rows = [
        [r["source"], r["target"], r["support"], r["source_success_prob"], r["target_success_prob"], r["fired"],
         r["wins"], r["losses"]]
        for r in sorted(replay.per_rewrite, key=lambda r: (-r["fired"], -r["support"]))[:examples]
    ]  # fmt: skip
    summary = [
        ["defect rate, all requests", pct(f["defect_rate_without"]), pct(f["defect_rate_with"])],
        ["defect rate, triggered requests", pct(f["defect_rate_triggered_without"]), pct(f["defect_rate_triggered_with"])],
        ["intent precision, triggered", pct(f["intent_precision_triggered_without"]),
         pct(f["intent_precision_triggered_with"])],
        ["goals reached", pct(f["goal_success_without"]), pct(f["goal_success_with"])],
    ]  # fmt: skip
    return Section(
        "Self-learning: rewrites from rephrase chains",
        paragraphs,
        tables=[
            ("Before and after, on held-out replay", ["", "without rewrites", "with rewrites"], summary),
            (
                "Examples of learned rewrites (as heard → sent to NLU)",
                ["source", "target", "support", "P(success) source", "P(success) target", "fired", "wins", "losses"],
                rows,
            ),
        ],
    )


def rewrites_section(
    ws: Workspace, dataset: str, held_out: WorldConfig, *, nlu, progress=None
) -> tuple[Section, dict[str, Any]]:
    """Rewrites mined from ``dataset``'s rephrase chains (published to the workspace's database), replayed on the
    held-out world; returns the section and the summary figures the demo prints."""
    with open_database(ws.database_url) as db:
        table, replay, mining = rewrite_loop(Lake(ws.lake), dataset, held_out, nlu=nlu, db=db, progress=progress)
    section = rewrites_report_section(table, replay, mining_figures=mining)
    f = replay.figures
    return section, {
        "in_table": len(table),
        "table_version": mining.get("version"),
        "wins": f.get("wins"),
        "losses": f.get("losses"),
        "defect_rate_triggered": [f.get("defect_rate_triggered_without"), f.get("defect_rate_triggered_with")],
        "defect_rate_all": [f.get("defect_rate_without"), f.get("defect_rate_with")],
    }
