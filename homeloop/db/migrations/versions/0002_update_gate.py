"""Update gate: gate reports and the promotion log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gate_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_reports")),
    )
    op.create_index(op.f("ix_gate_reports_name_candidate_version"), "gate_reports", ["name", "candidate_version"])
    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("gate_report_id", sa.Integer(), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("action IN ('promote', 'rollback')", name=op.f("ck_model_promotions_action_known")),
        sa.ForeignKeyConstraint(
            ["gate_report_id"],
            ["gate_reports.id"],
            name=op.f("fk_model_promotions_gate_report_id_gate_reports"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
    )
    op.create_index(op.f("ix_model_promotions_name_id"), "model_promotions", ["name", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_model_promotions_name_id"), table_name="model_promotions")
    op.drop_table("model_promotions")
    op.drop_index(op.f("ix_gate_reports_name_candidate_version"), table_name="gate_reports")
    op.drop_table("gate_reports")
