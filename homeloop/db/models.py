"""Tables of the operational database, as SQLAlchemy declarative models.

The schema itself is created and changed only by the Alembic migrations in
``homeloop/db/migrations/versions``; these classes must match them (a test
compares the two on SQLite and PostgreSQL).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from homeloop.errors import InvalidInputError

__all__ = ["Base", "Ingestion", "Model", "ModelStatus", "Rewrite", "UTCDateTime", "utcnow"]

# Constraint names are fixed by convention so that migrations name them the same way on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps the time zone (``timestamp with time zone``); SQLite keeps
    none, so values are converted to UTC on the way in and marked UTC on the
    way out. Naive datetimes are refused: their time zone would be a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InvalidInputError(f"timestamp: expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(
                f"timestamp {value.isoformat()}: expected a timezone-aware datetime (e.g. datetime.now(UTC)), "
                "got a naive one"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


class ModelStatus(enum.StrEnum):
    """Where a registered model stands: trained, in service, or withdrawn."""

    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    RETIRED = "retired"


class Model(Base):
    """One version of a trained model in the model registry."""

    __tablename__ = "models"
    __table_args__ = (
        sa.UniqueConstraint("name", "version"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint("status IN ('candidate', 'promoted', 'retired')", name="status_known"),
        sa.Index(None, "name", "status"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int] = mapped_column(sa.Integer)
    path: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    params: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), default=ModelStatus.CANDIDATE.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Ingestion(Base):
    """One run of :meth:`homeloop.data.lake.Lake.ingest` (or ``write``) into the lake."""

    __tablename__ = "ingestions"
    __table_args__ = (sa.Index(None, "dataset", "table_name"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(sa.String(64))
    table_name: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str] = mapped_column(sa.Text)
    source_sha256: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    rows_in: Mapped[int] = mapped_column(sa.Integer)
    written: Mapped[int] = mapped_column(sa.Integer)
    duplicates: Mapped[int] = mapped_column(sa.Integer)
    quarantined: Mapped[int] = mapped_column(sa.Integer)
    quarantine_path: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Rewrite(Base):
    """One learned rewrite ``source_text -> target_text`` in a published rewrite table version."""

    __tablename__ = "rewrites"
    __table_args__ = (
        sa.Index(None, "table_version", "source_text"),
        sa.CheckConstraint("support >= 0", name="support_non_negative"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    source_text: Mapped[str] = mapped_column(sa.Text)
    target_text: Mapped[str] = mapped_column(sa.Text)
    support: Mapped[int] = mapped_column(sa.Integer)
    source_success_prob: Mapped[float] = mapped_column(sa.Float)
    target_success_prob: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    table_version: Mapped[int] = mapped_column(sa.Integer)


# Tables defined in their own modules join Base's metadata (and Alembic's comparison) here.
import homeloop.db.model_updates  # noqa: E402, F401
import homeloop.db.rewrite_tables  # noqa: E402, F401
