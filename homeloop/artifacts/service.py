"""Saved models and the model registry: which version of a model is in service.

The registry (:class:`~homeloop.db.ModelRegistry`) keys models by name and records each
registered version's kind; the update gate promotes and rolls back. :func:`in_service` is the
one answer to "which model do I use": the promoted version, or the newest saved one while none
is promoted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from homeloop.artifacts.formats import format_named
from homeloop.artifacts.store import latest, read_metadata
from homeloop.errors import ArtifactError, MissingInputError
from homeloop.workspace import Workspace

__all__ = ["in_service", "register"]


def in_service(ws: Workspace, kind: str, name: str) -> Path:
    """The version folder of ``<kind>/<name>`` that serving should load: the one promoted in the model
    registry, else the newest saved version. :class:`MissingInputError` when there is none."""
    from homeloop.db import ModelRegistry, open_database

    db = open_database(ws.database_url)
    try:
        record = ModelRegistry(db).promoted(name)
    finally:
        db.dispose()
    if record is not None:
        if not record.path.exists():
            raise MissingInputError(f"model {name!r} version {record.version} is in service but {record.path} is gone")
        return record.path
    return latest(ws.models, kind, name)


def register(ws: Workspace, path: str | os.PathLike[str], *, name: str | None = None) -> Any:
    """Record the saved version folder ``path`` in the model registry as the next candidate version of
    ``name`` (by default the name it was saved under), with its kind, numeric metrics, parameters and
    training data; the registry record is returned. A path registered before is not registered twice."""
    from homeloop.db import ModelRegistry, open_database

    path = Path(path)
    meta = read_metadata(path)
    name = name if name is not None else meta.get("name")
    kind = meta.get("kind") or format_named(meta.get("format"), where=path).kind  # format 1 NLU folders: no kind
    if not isinstance(name, str):
        raise ArtifactError(f"{path}: metadata.json names no model; save it with homeloop.artifacts")
    db = open_database(ws.database_url)
    try:
        registry = ModelRegistry(db)
        for record in registry.list(name):
            if record.path.resolve() == path.resolve():
                return record
        metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float, str, bool))}
        return registry.register(
            name,
            path,
            kind=kind,
            metrics=metrics,
            params=meta.get("parameters") or {},
            data=meta.get("training_data") or {},
        )
    finally:
        db.dispose()
