"""``homeloop demo``: the whole loop on the embedded default, with an HTML report."""

from __future__ import annotations

import typer

from homeloop.cli import _common


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        ctx: typer.Context,
        homes: int = typer.Option(None, "--homes", help="Number of homes (default: the demo's 40)."),
        days: int = typer.Option(None, "--days", help="Number of days (default: 14)."),
        seed: int = typer.Option(0, "--seed"),
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
        _common.console.print(
            f"[bold]homeloop demo[/]: {s['homes']} homes, {s['turns']} turns in {s['seconds']} s; "
            f"NLU intent accuracy {100 * (n['intent_accuracy'] or 0):.1f}% (HWU64 test); "
            f"{100 * d['defect_rate']:.1f}% of requests failed, {100 * d['goal_success_rate']:.1f}% of goals met.\n"
            f"report: {summary['report']}"
        )
