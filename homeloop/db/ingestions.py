"""The ingestion log: one row per run of data into the lake."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from homeloop.db.database import Database
from homeloop.db.models import Ingestion, utcnow
from homeloop.errors import InvalidInputError

__all__ = ["IngestionRecord", "list_ingestions", "record_ingestion"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COUNTS = ("rows_in", "written", "duplicates", "quarantined")


@dataclass(frozen=True)
class IngestionRecord:
    """One logged ingestion, detached from the database."""

    id: int
    dataset: str
    table: str
    source: str
    source_sha256: str | None
    rows_in: int
    written: int
    duplicates: int
    quarantined: int
    quarantine_path: str | None
    started_at: datetime
    finished_at: datetime

    @classmethod
    def _from_row(cls, row: Ingestion) -> IngestionRecord:
        return cls(
            id=row.id,
            dataset=row.dataset,
            table=row.table_name,
            source=row.source,
            source_sha256=row.source_sha256,
            rows_in=row.rows_in,
            written=row.written,
            duplicates=row.duplicates,
            quarantined=row.quarantined,
            quarantine_path=row.quarantine_path,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["started_at"] = self.started_at.isoformat()
        d["finished_at"] = self.finished_at.isoformat()
        return d


def _aware(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name}: expected a timezone-aware datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name} {value.isoformat()}: expected a timezone-aware datetime (e.g. datetime.now(UTC)), got a naive one"
        )
    return value


def record_ingestion(
    db: Database,
    result: Any,
    *,
    dataset: str,
    source: str | os.PathLike[str],
    sha256: str | None,
    started_at: datetime,
    finished_at: datetime | None = None,
) -> IngestionRecord:
    """Log one ingestion: ``result`` is the :class:`homeloop.data.lake.IngestResult` (or its ``as_dict()``).

    ``sha256`` is the hex digest of the source file (None when the rows did
    not come from a file); ``finished_at`` defaults to now.
    """
    fields = dict(result) if isinstance(result, Mapping) else {k: getattr(result, k, None) for k in ("table", *_COUNTS)}
    if isinstance(result, Mapping):
        fields.setdefault("quarantine_path", None)
    else:
        fields["quarantine_path"] = getattr(result, "quarantine_path", None)
    table = fields.get("table")
    if not isinstance(table, str) or not table:
        raise InvalidInputError(f"ingestion result {result!r}: expected a table name in 'table', got {table!r}")
    for key in _COUNTS:
        value = fields.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"ingestion result {result!r}: expected a count >= 0 in {key!r}, got {value!r}")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256)):
        raise InvalidInputError(f"sha256 {sha256!r}: expected 64 lowercase hexadecimal digits or None")
    if not isinstance(dataset, str) or not dataset:
        raise InvalidInputError(f"dataset {dataset!r}: expected a non-empty name")
    started = _aware("started_at", started_at).astimezone(UTC)
    finished = _aware("finished_at", finished_at).astimezone(UTC) if finished_at is not None else utcnow()
    quarantine = fields["quarantine_path"]
    row = Ingestion(
        dataset=dataset,
        table_name=table,
        source=os.fspath(source),
        source_sha256=sha256,
        rows_in=fields["rows_in"],
        written=fields["written"],
        duplicates=fields["duplicates"],
        quarantined=fields["quarantined"],
        quarantine_path=os.fspath(quarantine) if quarantine else None,
        started_at=started,
        finished_at=finished,
    )
    with db.session() as session:
        session.add(row)
        session.flush()
        return IngestionRecord._from_row(row)


def list_ingestions(db: Database, *, dataset: str | None = None, limit: int | None = None) -> list[IngestionRecord]:
    """Logged ingestions, newest first, of ``dataset`` or of all datasets."""
    query = sa.select(Ingestion).order_by(Ingestion.started_at.desc(), Ingestion.id.desc())
    if dataset is not None:
        query = query.where(Ingestion.dataset == dataset)
    if limit is not None:
        query = query.limit(limit)
    with db.session() as session:
        return [IngestionRecord._from_row(row) for row in session.scalars(query)]
