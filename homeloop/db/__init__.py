"""The operational database: small, mutable state shared by the library, the CLI and the service.

SQLite by default (a file in the workspace), PostgreSQL in production; the
schema is managed by Alembic migrations shipped inside this package and applied
automatically when a database is opened::

    from homeloop.db import ModelRegistry, open_database

    db = open_database(workspace.database_url)        # migrates to the newest schema
    record = ModelRegistry(db).register("nlu", workspace.models / "nlu-3", kind="intent-slot",
                                        metrics={"intent_accuracy": 0.91})

Tables (see :mod:`homeloop.db.models`): ``models`` (the model registry),
``ingestions`` (the lake's ingestion log), ``rewrites`` (learned rewrites).
"""

from __future__ import annotations

from homeloop.db.database import Database, alembic_config, head_revision, open_database, safe_url
from homeloop.db.ingestions import IngestionRecord, list_ingestions, record_ingestion
from homeloop.db.model_updates import GateReport, ModelPromotion, PromotionAction
from homeloop.db.models import Base, Ingestion, Model, ModelStatus, Rewrite, utcnow
from homeloop.db.registry import GateReportRecord, ModelRecord, ModelRegistry, PromotionRecord

__all__ = [
    "Base",
    "Database",
    "GateReport",
    "GateReportRecord",
    "Ingestion",
    "IngestionRecord",
    "Model",
    "ModelRecord",
    "ModelRegistry",
    "ModelPromotion",
    "ModelStatus",
    "PromotionAction",
    "PromotionRecord",
    "Rewrite",
    "alembic_config",
    "head_revision",
    "list_ingestions",
    "open_database",
    "record_ingestion",
    "safe_url",
    "utcnow",
]
