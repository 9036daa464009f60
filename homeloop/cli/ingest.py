"""``homeloop ingest ...``: bring real data into the workspace's lake.

One command per kind of source. Each calls an adapter in :mod:`homeloop.adapters`
and reports, per lake table, the rows read, written, already there
(duplicates) and quarantined, with the quarantine file. Quarantined rows are
not an error: the command exits 0 and prints a warning line on stderr.

To add a source, define a function decorated with ``@app.command("name")``
that calls its adapter and ends with ``_report(results, ...)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from homeloop.cli import _common
from homeloop.data.lake import IngestResult, Lake

app = _common.commands(
    "ingest", help="Bring real data (interaction logs, smart-home histories) into the workspace's lake."
)


def _log_ingestion(
    ctx: typer.Context, results: Mapping[str, IngestResult], *, source: str, dataset: str, started_at: dt.datetime
) -> None:
    """Record each table's ingestion in the operational database (source file's SHA-256 when it is a file)."""
    from homeloop.db import open_database, record_ingestion

    path = Path(source)
    digest = None
    if path.is_file():
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
    db = open_database(_common.workspace(ctx).database_url)
    try:
        for result in results.values():
            record_ingestion(db, result, dataset=dataset, source=source, sha256=digest, started_at=started_at)
    finally:
        db.dispose()


def _report(
    results: Mapping[str, IngestResult],
    *,
    source: str,
    dataset: str,
    as_json: bool,
    title: str,
    extra: Mapping[str, Any] | None = None,
    ctx: typer.Context | None = None,
    started_at: dt.datetime | None = None,
) -> None:
    """Log the ingestion in the database, then print per-table and total counts (``--json``: one object on
    stdout); warn on stderr about quarantined rows."""
    if ctx is not None:
        _log_ingestion(ctx, results, source=source, dataset=dataset, started_at=started_at or dt.datetime.now(dt.UTC))
    tables = {name: r.as_dict() for name, r in results.items()}
    for row in tables.values():
        row.pop("table", None)
    totals = {key: sum(r[key] for r in tables.values()) for key in ("rows_in", "written", "duplicates", "quarantined")}
    figures: dict[str, Any] = {"source": source, "dataset": dataset, **(extra or {}), "totals": totals}
    figures["tables"] = tables
    _common.emit(figures, as_json=as_json, title=title)
    if totals["quarantined"]:
        where = sorted({r["quarantine_path"] for r in tables.values() if r["quarantine_path"]})
        _common.console.print(
            f"[bold yellow]warning:[/] {totals['quarantined']} of {totals['rows_in']} rows were quarantined "
            f"(not written); see {', '.join(where)}"
        )


_LOG_PATH = typer.Argument(..., help="A JSON Lines interaction log (.jsonl, or gzip-compressed .jsonl.gz).")


@app.command("logs")
def logs(
    ctx: typer.Context,
    path: Path = _LOG_PATH,
    dataset: str = typer.Option("logs", "--dataset", help="Lake dataset to write into."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Ingest an assistant's interaction log: turns, and optionally homes, devices and device events.

    The format is in docs/log-format.md. Bad lines are quarantined with their line number and reason;
    ingesting the same file again adds nothing.
    """
    from homeloop.adapters.jsonl_logs import ingest_logs

    started = dt.datetime.now(dt.UTC)
    lake = Lake(_common.workspace(ctx).lake)
    size = path.stat().st_size if path.is_file() else None
    with _common.progress(quiet=as_json) as bar:
        task = bar.add_task(f"ingesting {path.name}", total=size)
        results = ingest_logs(lake, path, dataset=dataset, progress=lambda n: bar.advance(task, n))
    _report(
        results,
        source=str(path),
        dataset=dataset,
        as_json=as_json,
        title=f"ingest logs {path}",
        ctx=ctx,
        started_at=started,
    )


_HA_DB_PATH = typer.Argument(..., help="The recorder database, usually <config>/home-assistant_v2.db.")
_HA_REGISTRY = typer.Option(
    None, "--registry", help="Home Assistant's <config>/.storage folder (default: .storage next to DB_PATH)."
)
_HA_NO_REGISTRY = typer.Option(
    False, "--no-registry", help="Ingest without registries: no rooms or groups, names from friendly_name."
)
_HA_HOME_ID = typer.Option(None, "--home-id", help="The home's id (default: ha- and the installation's uuid).")


@app.command("home-assistant")
def home_assistant(
    ctx: typer.Context,
    db_path: Path = _HA_DB_PATH,
    registry: Path | None = _HA_REGISTRY,
    no_registry: bool = _HA_NO_REGISTRY,
    home_id: str | None = _HA_HOME_ID,
    dataset: str = typer.Option("home-assistant", "--dataset", help="Lake dataset to write into."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Ingest a Home Assistant recorder database (schema 38+) with its area, device and entity registries.

    States are streamed in chunks; 'unavailable'/'unknown' rows, attribute-only updates and
    bookkeeping domains (sun, person, automation, ...) are skipped and counted. Ingesting the
    same database again adds nothing.
    """
    from homeloop.adapters.home_assistant import ingest_installation, read_recorder

    started = dt.datetime.now(dt.UTC)
    lake = Lake(_common.workspace(ctx).lake)
    installation = read_recorder(db_path, registry, allow_missing_registry=no_registry, home_id=home_id)
    low, high = installation.state_id_range()
    with _common.progress(quiet=as_json) as bar:
        task = bar.add_task(f"reading {db_path.name}", total=max(high - low + 1, 0))
        results = ingest_installation(lake, installation, dataset=dataset, progress=lambda n: bar.advance(task, n))
    extra = {
        "home_id": installation.home_id,
        "schema_version": installation.schema_version,
        "entities": len(installation.entities),
        "excluded_entities": len(installation.excluded_entities),
        "skipped_rows": dict(installation.skipped),
    }
    title = f"ingest home-assistant {db_path}"
    _report(
        results,
        source=str(db_path),
        dataset=dataset,
        as_json=as_json,
        title=title,
        extra=extra,
        ctx=ctx,
        started_at=started,
    )


_HOUSES = typer.Option(
    None, "--house", help="A vendored house, A (van Kasteren) or D (MIT); repeat for several (default: A and D)."
)


@app.command("houses")
def houses(
    ctx: typer.Context,
    house: list[str] | None = _HOUSES,
    dataset: str = typer.Option("houses", "--dataset", help="Lake dataset to write into."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Ingest the real sensor timelines of the van Kasteren and MIT houses: homes, devices, on/off events.

    House D's rooms are ground truth. Rows with a negative duration are quarantined; ingesting
    the same houses again adds nothing.
    """
    from homeloop.adapters.houses import ingest_houses

    names = house or ["A", "D"]
    started = dt.datetime.now(dt.UTC)
    lake = Lake(_common.workspace(ctx).lake)
    with _common.progress(quiet=as_json) as bar:
        task = bar.add_task("ingesting houses", total=len(names))
        results = ingest_houses(lake, names, dataset=dataset, progress=lambda n: bar.advance(task, n))
    extra = {"houses": [str(n).upper() for n in names]}
    _report(
        results,
        source="van_kasteren_mit",
        dataset=dataset,
        as_json=as_json,
        title="ingest houses",
        extra=extra,
        ctx=ctx,
        started_at=started,
    )
