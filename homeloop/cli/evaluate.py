"""``homeloop evaluate``: measure what learned components change (``rewrites``: replay on held-out residents)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from homeloop.cli import _common

evaluate_app = typer.Typer(help="Measure what learned components change, on held-out data.", no_args_is_help=True)


def rewrites_command(
    ctx: typer.Context,
    table_path: Path = typer.Option(None, "--table", help="A .parquet or .json rewrite table (default: in service)."),
    version: int = typer.Option(None, "--version", help="A published version (default: the one in service)."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Estimate on logged turns of this lake dataset instead of a replay (for real logs, no ground truth).",
    ),
    homes: int = typer.Option(40, "--homes", min=1, help="Held-out homes to replay."),
    days: int = typer.Option(14, "--days", min=1, help="Days to replay."),
    seed: int = typer.Option(0, "--seed", help="World seed: the seed the table's training world used."),
    first_home: int = typer.Option(1000, "--first-home", help="First held-out home (keep clear of training homes)."),
    start: str = typer.Option(
        "2026-04-06", "--start", help="First replayed day (later than the training days gives new days)."
    ),
    examples: int = typer.Option(10, "--examples", min=0, help="Rewrites to show with their wins and losses."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Replay held-out simulated residents without and with the rewrite table: win/loss, defect rates,
    coverage, precision against the true intent. With --dataset: coverage and logged defect rates only."""
    from homeloop.db import open_database
    from homeloop.selflearn.rewrites import RewriteTable, load_rewrite_table

    ws = _common.workspace(ctx)
    if table_path is not None:
        table = RewriteTable.read(table_path)
    else:
        db = open_database(ws.database_url)
        try:
            table = load_rewrite_table(db, version)
        finally:
            db.dispose()
        if table is None:
            raise _common.fail("no rewrite table published yet: run `homeloop learn rewrites` first")
    if dataset is not None:
        from homeloop.data.lake import Lake
        from homeloop.selflearn.replay import offline_rewrite_figures

        figures = offline_rewrite_figures(Lake(ws.lake), dataset, table)
        figures["table_version"] = table.version
        _common.emit(figures, as_json=as_json, title=f"rewrite table v{table.version} on logged {dataset!r}")
        return

    from homeloop.selflearn.replay import replay_rewrites
    from homeloop.serving import assistant_nlu
    from homeloop.world import WorldConfig

    try:
        start_date = dt.date.fromisoformat(start)
    except ValueError:
        raise _common.fail(f"--start {start!r}: expected a date like 2026-04-06") from None
    config = WorldConfig(homes=homes, days=days, seed=seed, first_home=first_home, start=start_date)
    nlu, _, _ = assistant_nlu(ws)
    with _common.progress(quiet=as_json) as bar:
        result = replay_rewrites(table, config, nlu=nlu, progress=_common.stage_progress(bar))
    figures = {"table_version": table.version, **result.figures}
    shown = sorted(result.per_rewrite, key=lambda r: (-r["fired"], -r["support"]))[:examples]
    figures["examples"] = (
        shown
        if as_json
        else {
            f"{r['source']} -> {r['target']}": f"fired {r['fired']}, {r['wins']} wins, {r['losses']} losses"
            for r in shown
        }
    )
    _common.emit(figures, as_json=as_json, title=f"rewrite table v{table.version}, replayed on held-out residents")


evaluate_app.command("rewrites")(rewrites_command)


def register(app: typer.Typer) -> None:
    app.add_typer(evaluate_app, name="evaluate")
