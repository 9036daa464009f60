"""Initial schema: model registry, ingestion log, rewrite table.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("version >= 1", name=op.f("ck_models_version_positive")),
        sa.CheckConstraint("status IN ('candidate', 'promoted', 'retired')", name=op.f("ck_models_status_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_models_name_version")),
    )
    op.create_index(op.f("ix_models_name_status"), "models", ["name", "status"])

    op.create_table(
        "ingestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=64), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("quarantine_path", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestions")),
    )
    op.create_index(op.f("ix_ingestions_dataset_table_name"), "ingestions", ["dataset", "table_name"])

    op.create_table(
        "rewrites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("target_text", sa.Text(), nullable=False),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("source_success_prob", sa.Float(), nullable=False),
        sa.Column("target_success_prob", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("table_version", sa.Integer(), nullable=False),
        sa.CheckConstraint("support >= 0", name=op.f("ck_rewrites_support_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewrites")),
    )
    op.create_index(op.f("ix_rewrites_table_version_source_text"), "rewrites", ["table_version", "source_text"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rewrites_table_version_source_text"), table_name="rewrites")
    op.drop_table("rewrites")
    op.drop_index(op.f("ix_ingestions_dataset_table_name"), table_name="ingestions")
    op.drop_table("ingestions")
    op.drop_index(op.f("ix_models_name_status"), table_name="models")
    op.drop_table("models")
