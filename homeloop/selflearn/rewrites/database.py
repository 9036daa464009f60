"""Rewrite tables in the operational database: publish a table as the next version in one transaction,
list the versions, load the one in service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from homeloop.errors import InvalidInputError
from homeloop.selflearn.rewrites.table import Rewrite, RewriteTable

__all__ = ["load_rewrite_table", "publish_rewrite_table", "rewrite_table_versions"]


def publish_rewrite_table(db, table: RewriteTable, *, dataset: str = "", batch_size: int = 5000) -> int:
    """Store ``table`` as the next version of the rewrite table and return its number.

    The version row and all its rewrites go in one transaction: readers (:func:`load_rewrite_table`)
    see the whole new table once it commits, and the previous one until then; a failure part-way
    leaves nothing of the new version behind. ``table.version`` is set on success.
    """
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from homeloop.db._json import json_object
    from homeloop.db.models import Rewrite as RewriteRow
    from homeloop.db.rewrite_tables import RewriteTableVersion
    from homeloop.errors import DatabaseError

    info = json_object("info", {k: v for k, v in table.info.items() if k != "figures"} | _figures_info(table))
    for attempt in range(5):
        try:
            with db.session(immediate=True) as session:
                if db.dialect == "postgresql":
                    session.execute(sa.select(sa.func.pg_advisory_xact_lock(0x7265777269746573)))  # "rewrites"
                latest = session.scalar(sa.select(sa.func.max(RewriteTableVersion.version)))
                version = (latest or 0) + 1
                now = dt.datetime.now(dt.UTC)
                session.add(RewriteTableVersion(version=version, dataset=dataset, rewrites=len(table), info=info))
                session.flush()
                rows = [
                    {
                        "source_text": r.source,
                        "target_text": r.target,
                        "support": r.support,
                        "source_success_prob": r.source_success_prob,
                        "target_success_prob": r.target_success_prob,
                        "created_at": now,
                        "table_version": version,
                    }
                    for r in table.rewrites
                ]
                for start in range(0, len(rows), batch_size):
                    session.execute(sa.insert(RewriteRow), rows[start : start + batch_size])
            table.version = version
            return version
        except IntegrityError as exc:
            if "rewrite_tables" not in str(exc.orig) and "pk_rewrite_tables" not in str(exc.orig):
                raise InvalidInputError(f"rewrite table: a row was refused by the database ({exc.orig})") from None
            if attempt == 4:
                raise DatabaseError(
                    f"cannot publish a rewrite table: version taken 5 times in a row ({exc.orig})"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _figures_info(table: RewriteTable) -> dict[str, Any]:
    figures = table.info.get("figures")
    return {"figures": figures} if isinstance(figures, dict) else {}


def rewrite_table_versions(db) -> list[dict[str, Any]]:
    """Published versions, newest first: version, dataset, rewrites, created_at, info."""
    import sqlalchemy as sa

    from homeloop.db.rewrite_tables import RewriteTableVersion

    with db.session() as session:
        rows = session.scalars(sa.select(RewriteTableVersion).order_by(RewriteTableVersion.version.desc())).all()
        return [
            {
                "version": r.version,
                "dataset": r.dataset,
                "rewrites": r.rewrites,
                "created_at": r.created_at.isoformat(),
                "info": r.info,
            }
            for r in rows
        ]


def load_rewrite_table(db, version: int | None = None) -> RewriteTable | None:
    """The rewrite table in service (the newest published version), or version ``version``.

    Returns None when no table was ever published; raises when ``version`` does not exist.
    """
    import sqlalchemy as sa

    from homeloop.db.models import Rewrite as RewriteRow
    from homeloop.db.rewrite_tables import RewriteTableVersion

    with db.session() as session:
        if version is None:
            head = session.scalar(sa.select(RewriteTableVersion).order_by(RewriteTableVersion.version.desc()).limit(1))
            if head is None:
                return None
        else:
            head = session.get(RewriteTableVersion, version)
            if head is None:
                known = session.scalars(sa.select(RewriteTableVersion.version).order_by(RewriteTableVersion.version))
                raise InvalidInputError(
                    f"rewrite table version {version}: expected one of {list(known) or 'none (nothing published)'}"
                )
        rows = session.execute(
            sa.select(
                RewriteRow.source_text,
                RewriteRow.target_text,
                RewriteRow.support,
                RewriteRow.source_success_prob,
                RewriteRow.target_success_prob,
            ).where(RewriteRow.table_version == head.version)
        ).all()
        if len(rows) != head.rewrites:
            from homeloop.errors import DatabaseError

            raise DatabaseError(
                f"rewrite table version {head.version}: expected {head.rewrites} rewrites, found {len(rows)}"
            )
        return RewriteTable(
            (Rewrite(s, t, int(n), float(p), float(q)) for s, t, n, p, q in rows),
            version=head.version,
            info=dict(head.info or {}) | {"dataset": head.dataset, "published_at": head.created_at.isoformat()},
        )
