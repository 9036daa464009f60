"""What ``homeloop learn rewrites`` runs: mine a dataset, publish the table, optionally export it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from homeloop.selflearn.rewrites.database import publish_rewrite_table
from homeloop.selflearn.rewrites.miner import RewriteMiner
from homeloop.selflearn.rewrites.table import RewriteTable

__all__ = ["learn_rewrites"]


def learn_rewrites(
    lake,
    db,
    dataset: str,
    *,
    export: str | os.PathLike[str] | None = None,
    **options: Any,
) -> tuple[RewriteTable, dict[str, Any]]:
    """Mine ``dataset``, publish the table as the next version in ``db``, optionally export it
    (``.parquet`` or ``.json``); returns the table and the mining figures. What ``homeloop learn rewrites`` runs."""
    miner = RewriteMiner(**options).fit(lake, dataset)
    table = miner.table_
    table.info["figures"] = miner.figures_
    version = publish_rewrite_table(db, table, dataset=dataset)
    figures = {**miner.figures_, "version": version}
    if export is not None:
        path = Path(export)
        if path.suffix == ".json":
            table.to_json(path)
        elif path.suffix == ".parquet":
            table.to_parquet(path)
        else:
            from homeloop.errors import UnsupportedFormatError

            raise UnsupportedFormatError(f"export path {path}: expected a .parquet or .json file name")
        figures["exported_to"] = str(path)
    return table, figures
