"""Versioned artefact folders: ``<models_dir>/<kind>/<name>/v<N>/``, one metadata schema for every kind.

A version folder holds the files its format writes and ``metadata.json``::

    format, format_version   which :class:`~homeloop.artifacts.formats.ArtifactFormat` wrote it
    kind, name, version      where it lives: models/<kind>/<name>/v<version>
    homeloop_version         the homeloop that wrote it
    libraries                versions of python, numpy, torch, scikit-learn, ... that wrote it
    parameters               the estimator's get_params(deep=False), as JSON
    training_data            what it was trained on (size, fingerprint, name/split, ...)
    metrics                  held-out figures given by the caller
    created                  UTC time, ISO 8601
    details                  format-specific facts (label spaces, encoder, training history, ...)

:func:`save` stages the folder under a hidden name and renames it into place, so a version is
complete or absent, and a failure leaves nothing behind; two writers at once get different
numbers. A model's ``name`` identifies it across kinds (it is its key in the model registry),
so one name belongs to one kind.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from homeloop.artifacts.formats import format_for, format_named
from homeloop.errors import ArtifactError, MissingInputError

__all__ = ["homeloop_version", "latest", "load", "read_json_object", "read_metadata", "save", "versions"]

_VERSION_DIR = re.compile(r"^v(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LIBRARIES = ("numpy", "torch", "scikit-learn", "safetensors", "skops", "transformers", "sentence-transformers")


def homeloop_version() -> str:
    """The installed homeloop's version (``"unknown"`` in a bare source tree)."""
    try:
        return importlib_metadata.version("homeloop")
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _libraries() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def _json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars become numbers, tuples lists, NaN and infinities null."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ArtifactError(f"{what} {value!r}: expected 1-64 letters, digits, '_', '-' or '.', not starting with '.'")
    return value


def versions(models_dir: str | os.PathLike[str], kind: str, name: str) -> list[Path]:
    """The version folders ``<models_dir>/<kind>/<name>/v<N>`` that exist, oldest first."""
    return _versions_in(Path(models_dir) / kind / name)


def _versions_in(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest(models_dir: str | os.PathLike[str], kind: str, name: str) -> Path:
    """The newest version folder of ``<kind>/<name>``; :class:`MissingInputError` when there is none."""
    found = versions(models_dir, kind, name)
    if not found:
        raise MissingInputError(
            f"no saved {kind!r} model named {name!r} in {Path(models_dir) / kind / name}: expected folders "
            "v1, v2, ...; train one first"
        )
    return found[-1]


def _claimed_by_other_kind(models_dir: Path, kind: str, name: str) -> str | None:
    if not models_dir.is_dir():
        return None
    for other in models_dir.iterdir():
        if other.is_dir() and other.name != kind and versions(models_dir, other.name, name):
            return other.name
    return None


def save(
    model: Any,
    models_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Write the fitted ``model`` as the next version ``<models_dir>/<kind>/<name>/v<N>/`` and return it.

    The kind and the files come from the format registered for the model's class; ``name``
    defaults to the format's. ``metrics`` (held-out figures) and ``training_data`` (merged over
    what the model recorded in ``fit``) go into ``metadata.json``.
    """
    fmt = format_for(model)
    check = getattr(model, "_check_fitted", None)
    if callable(check):
        check()
    name = _check_name("model name", name if name is not None else fmt.default_name)
    models_dir = Path(models_dir)
    other = _claimed_by_other_kind(models_dir, fmt.kind, name)
    if other is not None:
        raise ArtifactError(
            f"model name {name!r} is already used by a {other!r} model in {models_dir / other / name}; "
            f"a name belongs to one kind: choose another name for this {fmt.kind!r} model"
        )
    root = models_dir / fmt.kind / name
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        details = fmt.write(model, tmp)
        meta: dict[str, Any] = {
            "format": fmt.name,
            "format_version": fmt.version,
            "kind": fmt.kind,
            "name": name,
            "version": None,
            "homeloop_version": homeloop_version(),
            "libraries": _libraries(),
            "parameters": _json_ready(model.get_params(deep=False)),
            "training_data": _json_ready({**fmt.training_data(model), **dict(training_data or {})}),
            "metrics": _json_ready(dict(metrics or {})),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "details": _json_ready(details or {}),
        }
        for _attempt in range(1000):
            found = _versions_in(root)
            number = int(found[-1].name[1:]) + 1 if found else 1
            meta["version"] = number
            (tmp / "metadata.json").write_text(json.dumps(meta, indent=2))
            target = root / f"v{number}"
            if target.exists():  # another writer took this number meanwhile
                continue
            try:
                os.rename(tmp, target)
            except OSError:
                if target.exists():
                    continue
                raise
            return target
        raise ArtifactError(f"could not find a free version number under {root}")  # pragma: no cover
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _version_folder(path: Path) -> Path:
    """``path`` itself when it is a version folder, else the newest version inside it."""
    if not path.exists():
        raise MissingInputError(f"model {path} does not exist")
    if not (path / "metadata.json").exists():
        found = _versions_in(path)
        if found:
            return found[-1]
    return path


def read_json_object(path: Path, *, what: str = "saved model version") -> dict[str, Any]:
    """The JSON object in ``path``, a file of an artefact folder; :class:`ArtifactError` naming the file when
    it is missing, unreadable or not an object (``what`` names the folder it belongs to)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: expected a complete {what} folder") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata.json`` of a version folder (or of the newest version in a folder of versions)."""
    return read_json_object(_version_folder(Path(path)) / "metadata.json")


def load(path: str | os.PathLike[str]) -> Any:
    """Load any saved model: a version folder, or a folder of versions (the newest is loaded).

    The format named in ``metadata.json`` rebuilds the model; the loaded model carries
    ``metadata_`` (the metadata) and ``path_`` (the version folder). Raises
    :class:`~homeloop.errors.ArtifactError` naming the path when the folder is incomplete,
    of an unknown format or format version, or does not match its files.
    """
    folder = _version_folder(Path(path))
    meta = read_metadata(folder)
    fmt = format_named(meta.get("format"), where=folder)
    if meta.get("format_version") not in fmt.readable_versions:
        raise ArtifactError(
            f"{folder}: {fmt.name} format_version {meta.get('format_version')!r} is not supported by homeloop "
            f"{homeloop_version()} (supported: {list(fmt.readable_versions)}); it was written by homeloop "
            f"{meta.get('homeloop_version')}"
        )
    model = fmt.read(folder, meta)
    model.metadata_ = meta
    model.path_ = folder
    return model
