"""The versions of the rewrite table: one row per published version, the newest is the one in service.

Rows of ``rewrites`` belong to a version through ``table_version``. A version is
published in one transaction together with its rewrites (see
:func:`homeloop.selflearn.rewrites.database.publish_rewrite_table`), so readers see a
whole table or the previous one, never part of one; the primary key on
``version`` stops two publishers from taking the same number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from homeloop.db.models import Base, UTCDateTime, utcnow

__all__ = ["RewriteTableVersion"]


class RewriteTableVersion(Base):
    """One published version of the rewrite table."""

    __tablename__ = "rewrite_tables"
    __table_args__ = (
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint("rewrites >= 0", name="rewrites_non_negative"),
    )

    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    dataset: Mapped[str] = mapped_column(sa.Text)
    rewrites: Mapped[int] = mapped_column(sa.Integer)
    info: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
