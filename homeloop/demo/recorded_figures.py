"""The benchmark figures the demo report shows, recorded by the benchmarks and shipped with homeloop.

Hours of attacks and training are too long for a demo run, so the report shows what the benchmarks
recorded in ``benchmarks/results``. The files it reads are copied into the package
(``homeloop/demo/recorded/``, package data), so an installed homeloop shows them too; a test checks
that each copy equals its original. :func:`read_recorded` returns None for a file that is not shipped,
and the sections then say plainly that those figures are absent.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = ["RECORDED", "read_recorded"]

#: the folder of recorded figures inside the installed package
RECORDED: Traversable = files("homeloop.demo") / "recorded"


def read_recorded(name: str, folder: Traversable | Path | None = None) -> dict[str, Any] | None:
    """The figures recorded in ``name`` (e.g. ``"dp_utility.json"``), read from ``folder`` (default: the
    copies shipped in the package, :data:`RECORDED`); None when the file is not there."""
    path = (RECORDED if folder is None else folder) / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
