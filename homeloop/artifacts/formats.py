"""Artefact formats: how one kind of model is written to and read from a version folder.

A format is an :class:`ArtifactFormat` registered with :func:`register_format` by the module
that defines it. :func:`format_named` finds a format by the name stored in ``metadata.json``,
importing its module on first use (the table :data:`FORMAT_MODULES`), so that loading a model
never depends on what the caller happened to import. :func:`format_for` finds the format that
saves a given estimator.

Formats never pickle: tensors go into safetensors files, scikit-learn models through skops
with an explicit list of trusted types, everything else into JSON.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

from homeloop.errors import ArtifactError

__all__ = ["FORMAT_MODULES", "ArtifactFormat", "format_for", "format_named", "register_format"]

# format name -> the module that defines and registers it (imported on first use)
FORMAT_MODULES: dict[str, str] = {
    "homeloop.nlu.intent_slot": "homeloop.nlu.artifacts",
    "homeloop.selflearn.defect_model": "homeloop.selflearn.artifacts",
    "homeloop.selflearn.rephrase_span": "homeloop.selflearn.artifacts",
    "homeloop.home.device_state": "homeloop.home.artifacts",
}

_FORMATS: dict[str, ArtifactFormat] = {}


class ArtifactFormat:
    """How one estimator class is saved. Subclass it, set the class attributes, implement
    :meth:`write` and :meth:`read`, and register an instance with :func:`register_format`.

    ``kind`` names the folder under ``models/`` (``models/<kind>/<name>/v<N>/``), ``default_name``
    the model's name when the caller gives none. ``version`` is the format version written;
    ``readable_versions`` those :meth:`read` understands.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    estimator: ClassVar[type]
    default_name: ClassVar[str]
    version: ClassVar[int] = 1
    readable_versions: ClassVar[tuple[int, ...]] = (1,)

    def write(self, model: Any, folder: Path) -> dict[str, Any]:
        """Write the fitted ``model``'s files into ``folder``; return format-specific details for the
        metadata (JSON-ready), stored under ``details``."""
        raise NotImplementedError

    def read(self, folder: Path, metadata: dict[str, Any]) -> Any:
        """Rebuild the fitted model from ``folder`` (whose ``metadata.json`` is ``metadata``). Raise
        :class:`~homeloop.errors.ArtifactError` naming the file when something is missing or wrong."""
        raise NotImplementedError

    def training_data(self, model: Any) -> dict[str, Any]:
        """What the model records of its training data (size, fingerprint, ...); by default its
        ``training_data_`` attribute."""
        return dict(getattr(model, "training_data_", None) or {})


def register_format(fmt: ArtifactFormat) -> ArtifactFormat:
    """Make ``fmt`` known to :func:`homeloop.artifacts.save` and :func:`homeloop.artifacts.load`."""
    for attr in ("name", "kind", "estimator", "default_name"):
        if not hasattr(fmt, attr):
            raise TypeError(f"artefact format {type(fmt).__name__}: class attribute {attr!r} is not set")
    if fmt.version not in fmt.readable_versions:
        raise TypeError(f"artefact format {fmt.name!r}: writes version {fmt.version} that it cannot read")
    _FORMATS[fmt.name] = fmt
    return fmt


def format_named(name: Any, *, where: Path | None = None) -> ArtifactFormat:
    """The registered format called ``name`` (importing its module when needed)."""
    if name not in _FORMATS and isinstance(name, str) and name in FORMAT_MODULES:
        importlib.import_module(FORMAT_MODULES[name])
    if name not in _FORMATS:
        place = f"{where}: " if where is not None else ""
        known = sorted(set(FORMAT_MODULES) | set(_FORMATS))
        raise ArtifactError(f"{place}unknown artefact format {name!r}; expected one of {known}")
    return _FORMATS[name]


def format_for(model: Any) -> ArtifactFormat:
    """The registered format that saves ``model``'s class."""
    for module in set(FORMAT_MODULES.values()):
        if type(model).__module__.split(".")[:2] == module.split(".")[:2]:
            importlib.import_module(module)
    for fmt in _FORMATS.values():
        if type(model) is fmt.estimator:
            return fmt
    known = sorted(f.estimator.__name__ for f in _FORMATS.values())
    raise ArtifactError(f"no artefact format saves a {type(model).__name__}; known estimators: {known}")
