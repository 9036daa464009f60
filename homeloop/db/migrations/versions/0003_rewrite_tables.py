"""Rewrite table versions: one row per published version of the rewrite table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewrite_tables",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False),
        sa.Column("rewrites", sa.Integer(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_rewrite_tables_version_positive")),
        sa.CheckConstraint("rewrites >= 0", name=op.f("ck_rewrite_tables_rewrites_non_negative")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_rewrite_tables")),
    )


def downgrade() -> None:
    op.drop_table("rewrite_tables")
