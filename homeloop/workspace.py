"""The workspace: one folder that holds the lake, the database, models and reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workspace", "default_workspace_path"]

ENV_HOME = "HOMELOOP_HOME"
ENV_DATABASE_URL = "HOMELOOP_DATABASE_URL"


def default_workspace_path() -> Path:
    """``$HOMELOOP_HOME`` when set, else ``./homeloop-workspace``."""
    return Path(os.environ.get(ENV_HOME) or "homeloop-workspace")


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace folder.

    ``database_url`` is the operational database: ``$HOMELOOP_DATABASE_URL`` when
    set (PostgreSQL in production), else a SQLite file inside the workspace.
    """

    root: Path

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Workspace:
        path = Path(root) if root is not None else default_workspace_path()
        ws = cls(path.resolve())
        for sub in (ws.lake, ws.models, ws.reports):
            sub.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def database_url(self) -> str:
        return os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{self.root / 'homeloop.db'}"
