"""The model registry: every trained model, numbered by version per name.

Registering is atomic: the next version number is taken inside one
transaction, under a lock (SQLite's write lock, a PostgreSQL advisory lock),
with the ``(name, version)`` unique constraint as the last word, so concurrent
registrations never share a version. Status starts as ``candidate``; moving a
model to ``promoted`` or ``retired`` is the job of the update gate.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from homeloop.db._json import json_object
from homeloop.db.database import Database
from homeloop.db.models import Model, ModelStatus
from homeloop.errors import DatabaseError, InvalidInputError, MissingInputError

__all__ = ["ModelRecord", "ModelRegistry"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RETRIES = 5


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version, detached from the database."""

    id: int
    name: str
    version: int
    path: Path
    kind: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    data: dict[str, Any]
    status: ModelStatus
    created_at: datetime
    promoted_at: datetime | None

    @classmethod
    def _from_row(cls, row: Model) -> ModelRecord:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            path=Path(row.path),
            kind=row.kind,
            metrics=dict(row.metrics),
            params=dict(row.params),
            data=dict(row.data),
            status=ModelStatus(row.status),
            created_at=row.created_at,
            promoted_at=row.promoted_at,
        )

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "kind": self.kind,
            "metrics": self.metrics,
            "params": self.params,
            "data": self.data,
            "status": self.status.value,
            "created_at": self.created_at.isoformat(),
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
        }


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"model name {name!r}: expected 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def _advisory_key(text: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class ModelRegistry:
    """Registered models in the operational database ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        kind: str,
        metrics: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """Record the artefact folder ``path`` as the next version of model ``name``, status ``candidate``.

        ``kind`` says what the model is (e.g. ``"intent-slot"`` or the encoder
        it uses); ``metrics`` (held-out scores), ``params`` (hyper-parameters)
        and ``data`` (what it was trained on) are stored as JSON: numpy scalars
        become numbers, and NaN or infinite values become null.
        """
        _check_name(name)
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 64:
            raise InvalidInputError(f"kind {kind!r}: expected a non-empty text of at most 64 characters")
        artefact = Path(path)
        if not artefact.exists():
            raise MissingInputError(f"model artefact {artefact} for {name!r}: expected a saved model there, found none")
        values = {
            "path": os.fspath(artefact),
            "kind": kind,
            "metrics": json_object("metrics", metrics),
            "params": json_object("params", params),
            "data": json_object("data", data),
        }
        for attempt in range(_RETRIES):
            try:
                with self.db.session(immediate=True) as session:
                    if self.db.dialect == "postgresql":
                        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_advisory_key(f"models/{name}"))))
                    latest = session.scalar(sa.select(sa.func.max(Model.version)).where(Model.name == name))
                    row = Model(name=name, version=(latest or 0) + 1, status=ModelStatus.CANDIDATE.value, **values)
                    session.add(row)
                    session.flush()
                    return ModelRecord._from_row(row)
            except IntegrityError as exc:  # another writer took the version first (no lock on this database)
                if attempt == _RETRIES - 1:
                    raise DatabaseError(
                        f"cannot register model {name!r} in {self.db.url}: version taken {_RETRIES} times in a row "
                        f"({exc.orig})"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        """Version ``version`` of model ``name`` (the newest when None); raises if it is not registered."""
        _check_name(name)
        if version is None:
            record = self.latest(name)
            if record is None:
                raise InvalidInputError(f"model {name!r}: expected a registered model, found no version of it")
            return record
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInputError(f"version {version!r} of model {name!r}: expected an integer >= 1")
        with self.db.session() as session:
            row = session.scalar(sa.select(Model).where(Model.name == name, Model.version == version))
            if row is None:
                versions = session.scalars(
                    sa.select(Model.version).where(Model.name == name).order_by(Model.version)
                ).all()
                known = ", ".join(map(str, versions)) or "none"
                raise InvalidInputError(
                    f"model {name!r} version {version}: not registered (registered versions: {known})"
                )
            return ModelRecord._from_row(row)

    def latest(self, name: str) -> ModelRecord | None:
        """The newest version of model ``name``, whatever its status; None if there is none."""
        _check_name(name)
        with self.db.session() as session:
            row = session.scalar(sa.select(Model).where(Model.name == name).order_by(Model.version.desc()).limit(1))
            return ModelRecord._from_row(row) if row is not None else None

    def promoted(self, name: str) -> ModelRecord | None:
        """The version of model ``name`` in service (the last promoted one); None if none is promoted."""
        _check_name(name)
        with self.db.session() as session:
            row = session.scalar(
                sa.select(Model)
                .where(Model.name == name, Model.status == ModelStatus.PROMOTED.value)
                .order_by(Model.promoted_at.desc().nulls_last(), Model.version.desc())
                .limit(1)
            )
            return ModelRecord._from_row(row) if row is not None else None

    def list(self, name: str | None = None) -> list[ModelRecord]:
        """Every registered version, of model ``name`` or of all models, by name then version."""
        query = sa.select(Model).order_by(Model.name, Model.version)
        if name is not None:
            query = query.where(Model.name == _check_name(name))
        with self.db.session() as session:
            return [ModelRecord._from_row(row) for row in session.scalars(query)]
