"""Turning user-supplied metrics, parameters and descriptions into plain JSON."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from homeloop.errors import InvalidInputError


def json_object(field: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
    """``value`` as a JSON object: numpy scalars become numbers, paths and dates text, NaN and ±inf null."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{field}: expected a mapping (dict) of JSON values, got {type(value).__name__}")
    return _plain(value, field)


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return _plain(value.tolist(), where)
    raise InvalidInputError(
        f"{where}: expected a JSON value (number, text, bool, None, list or dict), got {type(value).__name__}"
    )
