"""``homeloop demo``: the whole loop on the embedded default, with an HTML report."""

from __future__ import annotations

import typer

from homeloop.cli import _common

app = _common.commands()


@app.command("demo")
def demo(
    ctx: typer.Context,
    homes: int = typer.Option(None, "--homes", help="Number of homes (default: the demo's 40)."),
    days: int = typer.Option(None, "--days", help="Number of days (default: 14)."),
    seed: int = _common.seed_option("World seed: the same seed gives the same world."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Train the assistant's NLU, simulate a neighbourhood, and write a report into the workspace."""
    import dataclasses

    from homeloop.demo import DEMO_CONFIG, run_demo

    changes = {k: v for k, v in {"homes": homes, "days": days, "seed": seed}.items() if v is not None}
    config = dataclasses.replace(DEMO_CONFIG, **changes)
    ws = _common.workspace(ctx)
    with _common.progress(quiet=as_json) as bar:
        step = _common.stage_progress(bar)
        summary = run_demo(ws, config=config, progress=step, nlu_callbacks=(_common.TrainingProgress(bar),))
    if as_json:
        _common.emit(summary, as_json=True)
        return
    d, s, n = summary["defects"], summary["simulation"], summary["nlu"]
    lines = [
        f"[bold]homeloop demo[/]: {s['homes']} homes, {s['turns']} turns in {s['seconds']} s; "
        f"NLU intent accuracy {100 * (n['intent_accuracy'] or 0):.1f}% (HWU64 test); "
        f"{100 * d['defect_rate']:.1f}% of requests failed, {100 * d['goal_success_rate']:.1f}% of goals met."
    ]
    dm = summary.get("defect_model", {})
    if "model" in dm and "rules" in dm:
        lines.append(
            f"defects from implicit feedback (held-out homes): AUC {dm['model']['auc']:.3f} "
            f"against {dm['rules']['auc']:.3f} for the rules"
        )
    rw = summary.get("rewrites")
    if rw:
        before, after = rw["defect_rate_triggered"]
        cut = f"; defect rate where one fired {100 * before:.1f}% -> {100 * after:.1f}%" if before else ""
        lines.append(
            f"rewrites: {rw['in_table']} learned; on held-out residents {rw['wins']} wins, {rw['losses']} losses{cut}"
        )
    gate = summary.get("update_gate")
    if gate:
        verdict = "passed, promoted" if gate["promoted"] else f"refused ({', '.join(gate['failed_checks'])})"
        lines.append(f"NLU update through the gate: {verdict}")
    lines.append(f"report: {summary['report']}")
    _common.console.print("\n".join(lines))
