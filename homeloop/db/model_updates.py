"""Tables of the update gate: the gate's reports on candidates, and the log of promotions and rollbacks.

``gate_reports`` keeps every evaluation of a candidate against the model in
service (passed or not, the thresholds used, the figures). ``model_promotions``
is an append-only log; the version in service and the one a rollback returns
to are read from it (a promotion pushes a version, a rollback pops one).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from homeloop.db.models import Base, UTCDateTime, utcnow

__all__ = ["GateReport", "ModelPromotion", "PromotionAction"]


class PromotionAction(enum.StrEnum):
    """What a row of the promotion log did."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"


class GateReport(Base):
    """The update gate's verdict on one candidate version of a model."""

    __tablename__ = "gate_reports"
    __table_args__ = (sa.Index(None, "name", "candidate_version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    candidate_version: Mapped[int] = mapped_column(sa.Integer)
    baseline_version: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    passed: Mapped[bool] = mapped_column(sa.Boolean)
    thresholds: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    report_path: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelPromotion(Base):
    """One promotion or rollback of a model, in the order they happened."""

    __tablename__ = "model_promotions"
    __table_args__ = (
        sa.Index(None, "name", "id"),
        sa.CheckConstraint("action IN ('promote', 'rollback')", name="action_known"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int] = mapped_column(sa.Integer)
    previous_version: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    action: Mapped[str] = mapped_column(sa.String(16))
    gate_report_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("gate_reports.id", ondelete="SET NULL"), nullable=True
    )
    forced: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
