"""The model registry: every trained model, numbered by version per name.

Registering is atomic: the next version number is taken inside one
transaction, under a lock (SQLite's write lock, a PostgreSQL advisory lock),
with the ``(name, version)`` unique constraint as the last word, so concurrent
registrations never share a version. Status starts as ``candidate``; moving a
model to ``promoted`` or ``retired`` is the job of the update gate
(:mod:`homeloop.graceful.gate`), through :meth:`ModelRegistry.promote` and
:meth:`ModelRegistry.rollback`.

Promotion and rollback are atomic: each runs in one transaction under the same
lock as registration, retires the version in service, promotes the new one and
appends to the promotion log (``model_promotions``) together, so a crash at
any point leaves either the old state or the new one, never two models in
service or none. The version a rollback returns to is read from the log (a
promotion pushes a version, a rollback pops one).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from homeloop.db._json import json_object
from homeloop.db.database import Database
from homeloop.db.model_updates import GateReport, ModelPromotion, PromotionAction
from homeloop.db.models import Model, ModelStatus, utcnow
from homeloop.errors import DatabaseError, InvalidInputError, MissingInputError

__all__ = ["GateReportRecord", "ModelRecord", "ModelRegistry", "PromotionRecord"]

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


@dataclass(frozen=True)
class GateReportRecord:
    """One verdict of the update gate on a candidate version, detached from the database."""

    id: int
    name: str
    candidate_version: int
    baseline_version: int | None
    passed: bool
    thresholds: dict[str, Any]
    summary: dict[str, Any]
    report_path: Path | None
    created_at: datetime

    @classmethod
    def _from_row(cls, row: GateReport) -> GateReportRecord:
        return cls(
            id=row.id,
            name=row.name,
            candidate_version=row.candidate_version,
            baseline_version=row.baseline_version,
            passed=bool(row.passed),
            thresholds=dict(row.thresholds),
            summary=dict(row.summary),
            report_path=Path(row.report_path) if row.report_path else None,
            created_at=row.created_at,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "candidate_version": self.candidate_version,
            "baseline_version": self.baseline_version,
            "passed": self.passed,
            "thresholds": self.thresholds,
            "summary": self.summary,
            "report_path": str(self.report_path) if self.report_path else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class PromotionRecord:
    """One row of the promotion log: ``version`` went into service (``promote``) or back into it (``rollback``)."""

    id: int
    name: str
    version: int
    previous_version: int | None
    action: PromotionAction
    gate_report_id: int | None
    forced: bool
    at: datetime

    @classmethod
    def _from_row(cls, row: ModelPromotion) -> PromotionRecord:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            previous_version=row.previous_version,
            action=PromotionAction(row.action),
            gate_report_id=row.gate_report_id,
            forced=bool(row.forced),
            at=row.at,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "previous_version": self.previous_version,
            "action": self.action.value,
            "gate_report_id": self.gate_report_id,
            "forced": self.forced,
            "at": self.at.isoformat(),
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

    # ------------------------------------------------------------ the update gate

    def _lock(self, session: Any, name: str) -> None:
        if self.db.dialect == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(_advisory_key(f"models/{name}"))))

    def record_gate_report(
        self,
        name: str,
        candidate_version: int,
        *,
        baseline_version: int | None,
        passed: bool,
        thresholds: Mapping[str, Any],
        summary: Mapping[str, Any],
        report_path: str | os.PathLike[str] | None = None,
    ) -> GateReportRecord:
        """Store the gate's verdict on version ``candidate_version`` of ``name`` (which must be registered)."""
        self.get(name, candidate_version)
        with self.db.session() as session:
            row = GateReport(
                name=name,
                candidate_version=candidate_version,
                baseline_version=baseline_version,
                passed=bool(passed),
                thresholds=json_object("thresholds", thresholds),
                summary=json_object("summary", summary),
                report_path=os.fspath(report_path) if report_path is not None else None,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return GateReportRecord._from_row(row)

    def gate_reports(self, name: str, version: int | None = None) -> list[GateReportRecord]:
        """The gate's verdicts on model ``name`` (on one version when given), oldest first."""
        query = sa.select(GateReport).where(GateReport.name == _check_name(name)).order_by(GateReport.id)
        if version is not None:
            query = query.where(GateReport.candidate_version == version)
        with self.db.session() as session:
            return [GateReportRecord._from_row(row) for row in session.scalars(query)]

    def latest_gate_report(self, name: str, version: int) -> GateReportRecord | None:
        """The newest verdict on version ``version`` of ``name``; None if it was never proposed."""
        reports = self.gate_reports(name, version)
        return reports[-1] if reports else None

    def promotions(self, name: str) -> list[PromotionRecord]:
        """The promotion log of model ``name``, oldest first."""
        query = sa.select(ModelPromotion).where(ModelPromotion.name == _check_name(name)).order_by(ModelPromotion.id)
        with self.db.session() as session:
            return [PromotionRecord._from_row(row) for row in session.scalars(query)]

    @staticmethod
    def _service_stack(session: Any, name: str) -> list[int]:
        """Versions in service, in order: a promotion pushes, a rollback pops (the last is in service)."""
        stack: list[int] = []
        rows = session.scalars(sa.select(ModelPromotion).where(ModelPromotion.name == name).order_by(ModelPromotion.id))
        for row in rows:
            if row.action == PromotionAction.PROMOTE.value:
                stack.append(row.version)
            elif stack:
                stack.pop()
        return stack

    def promote(
        self,
        name: str,
        version: int,
        *,
        gate_report_id: int | None = None,
        forced: bool = False,
        _after_retire: Callable[[], None] | None = None,
    ) -> PromotionRecord:
        """Put version ``version`` of ``name`` into service, atomically.

        In one transaction: the version in service (if any) becomes ``retired``,
        ``version`` becomes ``promoted`` (``promoted_at`` now), and the
        promotion log gains a row. This does not check the gate; use
        :func:`homeloop.graceful.gate.promote`, which does. ``_after_retire``
        is a test hook called between the two status changes.
        """
        self.get(name, version)  # a clear error for an unknown version
        with self.db.session(immediate=True) as session:
            self._lock(session, name)
            target = session.scalar(sa.select(Model).where(Model.name == name, Model.version == version))
            if target.status == ModelStatus.PROMOTED.value:
                raise InvalidInputError(f"model {name!r} version {version}: already in service, nothing to promote")
            current = session.scalars(
                sa.select(Model).where(Model.name == name, Model.status == ModelStatus.PROMOTED.value)
            ).all()
            for row in current:
                row.status = ModelStatus.RETIRED.value
            session.flush()
            if _after_retire is not None:
                _after_retire()
            target.status = ModelStatus.PROMOTED.value
            target.promoted_at = utcnow()
            previous = current[0].version if current else None
            log = ModelPromotion(
                name=name,
                version=version,
                previous_version=previous,
                action=PromotionAction.PROMOTE.value,
                gate_report_id=gate_report_id,
                forced=bool(forced),
                at=utcnow(),
            )
            session.add(log)
            session.flush()
            return PromotionRecord._from_row(log)

    def rollback(self, name: str, *, _after_retire: Callable[[], None] | None = None) -> PromotionRecord:
        """Take the version of ``name`` in service out and put back the one it replaced, atomically.

        Raises :class:`InvalidInputError` when nothing is in service or the
        version in service replaced none. ``_after_retire`` is a test hook
        called between the two status changes.
        """
        _check_name(name)
        with self.db.session(immediate=True) as session:
            self._lock(session, name)
            stack = self._service_stack(session, name)
            current = session.scalars(
                sa.select(Model).where(Model.name == name, Model.status == ModelStatus.PROMOTED.value)
            ).all()
            if not current:
                raise InvalidInputError(f"model {name!r}: nothing is in service, so there is nothing to roll back")
            if len(stack) < 2:
                raise InvalidInputError(
                    f"model {name!r}: version {current[0].version} is in service but replaced no earlier version; "
                    "expected a promotion that replaced another before rolling back"
                )
            previous = stack[-2]
            for row in current:
                row.status = ModelStatus.RETIRED.value
            session.flush()
            if _after_retire is not None:
                _after_retire()
            target = session.scalar(sa.select(Model).where(Model.name == name, Model.version == previous))
            target.status = ModelStatus.PROMOTED.value
            target.promoted_at = utcnow()
            log = ModelPromotion(
                name=name,
                version=previous,
                previous_version=current[0].version,
                action=PromotionAction.ROLLBACK.value,
                forced=False,
                at=utcnow(),
            )
            session.add(log)
            session.flush()
            return PromotionRecord._from_row(log)
