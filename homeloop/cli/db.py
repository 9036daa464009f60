"""``homeloop db``: migrate the operational database and show where it stands."""

from __future__ import annotations

import typer

from homeloop.cli import _common

app = _common.commands(
    "db", help="The operational database (model registry, ingestion log, rewrites): migrations and status."
)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: str = typer.Argument("head", help="Migration to reach (default: the newest)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Migrate the database to the newest schema (or to REVISION)."""
    from homeloop.db import open_database

    ws = _common.workspace(ctx)
    with open_database(ws.database_url, upgrade=False) as db:
        before = db.current_revision()
        db.upgrade(revision)
        figures = {"url": db.url, "from_revision": before, "to_revision": db.current_revision()}
    _common.emit(figures, as_json=as_json, title="database upgraded")


@app.command("status")
def status(ctx: typer.Context, as_json: bool = _common.JSON_OPTION) -> None:
    """Show the database URL (password hidden), its migration against the newest, and rows per table."""
    from homeloop.db import open_database

    ws = _common.workspace(ctx)
    with open_database(ws.database_url, upgrade=False) as db:
        current, head = db.current_revision(), db.head_revision()
        figures = {
            "url": db.url,
            "dialect": db.dialect,
            "current_revision": current,
            "head_revision": head,
            "up_to_date": current == head,
            "rows": db.row_counts(),
        }
    _common.emit(figures, as_json=as_json, title="operational database")
