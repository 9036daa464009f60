"""Versioned NLU artefacts on disk: ``<models_dir>/<name>/v<N>/``.

A version folder holds::

    metadata.json       format and version, homeloop/torch versions, encoder, parameters,
                        training data (size, SHA-256, name/split when given), metrics, creation time
    model.json          label spaces (intents, BIO tags) and the encoder's config
    weights.safetensors the network's state dict
    encoder/            extra files of the encoder (the MiniLM tokenizer and config)

:func:`save_model` writes into a hidden temporary folder next to the versions
and renames it into place, so a version folder is either complete or absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from homeloop.errors import ArtifactError, MissingInputError
from homeloop.nlu.encoders import ENCODERS
from homeloop.nlu.model import IntentSlotModel, JointIntentSlotNetwork
from homeloop.training import TrainingHistory

__all__ = ["FORMAT", "FORMAT_VERSION", "latest_model_path", "list_versions", "load_model", "save_model", "save_version"]

FORMAT = "homeloop.nlu.intent_slot"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
_VERSION_DIR = re.compile(r"^v(\d+)$")


def _homeloop_version() -> str:
    try:
        return importlib_metadata.version("homeloop")
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def list_versions(models_dir: str | os.PathLike[str], *, name: str = "nlu") -> list[Path]:
    """The version folders ``<models_dir>/<name>/v<N>`` that exist, oldest first."""
    root = Path(models_dir) / name
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_model_path(models_dir: str | os.PathLike[str], *, name: str = "nlu") -> Path:
    """The newest version folder of ``name``; :class:`MissingInputError` when there is none."""
    versions = list_versions(models_dir, name=name)
    if not versions:
        raise MissingInputError(
            f"no saved '{name}' model in {Path(models_dir) / name}: expected folders v1, v2, ...; train one first"
        )
    return versions[-1]


def save_model(
    model: IntentSlotModel,
    models_dir: str | os.PathLike[str],
    *,
    name: str = "nlu",
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` as the next version ``<models_dir>/<name>/v<N>/`` and return that folder.

    ``metrics`` (held-out figures, e.g. from :func:`homeloop.nlu.evaluate`) and
    ``training_data`` (e.g. ``{"name": "hwu64", "split": "train"}``, merged
    with what ``fit`` recorded) go into ``metadata.json``.
    """
    model._check_fitted()
    network = model.network_
    encoder = network.encoder

    def write(tmp: Path) -> dict[str, Any]:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        encoder.save_files(tmp / "encoder")
        (tmp / "encoder").mkdir(exist_ok=True)
        model_json = {"intents": model.intents_, "slot_tags": model.slot_tags_, "encoder_config": encoder.config()}
        (tmp / "model.json").write_text(json.dumps(model_json))
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "homeloop_version": _homeloop_version(),
            "torch_version": torch.__version__,
            "encoder": encoder.name,
            "parameters": model.get_params(),
            "training_settings": model.training_settings(),
            "training_data": {**model.training_data_, **dict(training_data or {})},
            "training": {
                "epoch_losses": list(model.history_.epoch_losses),
                "steps": model.history_.steps,
                "seconds": model.history_.seconds,
            },
            "metrics": dict(metrics or {}),
            "n_intents": len(model.intents_),
            "n_slot_tags": len(model.slot_tags_),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    return save_version(models_dir, name, write)


def save_version(models_dir: str | os.PathLike[str], name: str, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Publish a model artefact as the next version ``<models_dir>/<name>/v<N>/`` and return that folder.

    ``write(folder)`` writes the artefact's files into a hidden staging folder and
    returns its metadata, which goes into ``metadata.json`` with the version
    number. The folder becomes ``v<N>`` in one rename, so readers never see a
    half-written version, and a failure leaves nothing behind; two writers at
    once get different numbers.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ArtifactError(f"model name {name!r}: expected letters, digits, '_', '-' or '.'")
    root = Path(models_dir) / name
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        meta = dict(write(tmp))
        for _attempt in range(1000):
            versions = list_versions(models_dir, name=name)
            number = int(versions[-1].name[1:]) + 1 if versions else 1
            meta["version"] = number
            (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing: expected a complete NLU artefact folder") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_model(path: str | os.PathLike[str]) -> IntentSlotModel:
    """Load a model written by :func:`save_model`.

    ``path`` is a version folder (``.../nlu/v3``) or the folder holding the
    versions (``.../nlu``, the newest is loaded). Raises
    :class:`~homeloop.errors.ArtifactError` naming the path when the folder is
    incomplete, of an unknown format version or does not match its weights.
    """
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"NLU model {path} does not exist")
    if not (path / "metadata.json").exists() and list_versions(path.parent, name=path.name):
        path = latest_model_path(path.parent, name=path.name)
    meta = _read_json(path / "metadata.json")
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: expected an artefact of format {FORMAT!r}, found {meta.get('format')!r}")
    if meta.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ArtifactError(
            f"{path}: format_version {meta.get('format_version')!r} is not supported by homeloop "
            f"{_homeloop_version()} (supported: {list(SUPPORTED_FORMAT_VERSIONS)}); it was written by homeloop "
            f"{meta.get('homeloop_version')}"
        )
    encoder_name = meta.get("encoder")
    if encoder_name not in ENCODERS:
        raise ArtifactError(f"{path}: encoder {encoder_name!r} is not one of {sorted(ENCODERS)}")
    spec = _read_json(path / "model.json")
    try:
        params = dict(meta["parameters"])
        intents, slot_tags, encoder_config = list(spec["intents"]), list(spec["slot_tags"]), spec["encoder_config"]
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{path}: metadata.json or model.json lacks {exc}") from None
    try:
        model = IntentSlotModel(**params)
    except TypeError as exc:
        raise ArtifactError(
            f"{path}: parameters {sorted(params)} do not fit this homeloop's IntentSlotModel: {exc}"
        ) from None
    encoder = ENCODERS[encoder_name].from_config(encoder_config, folder=path / "encoder")
    network = JointIntentSlotNetwork(encoder, n_intents=len(intents), n_tags=len(slot_tags), dropout=model.dropout)
    weights = path / "weights.safetensors"
    if not weights.is_file():
        raise ArtifactError(f"{weights} is missing: expected the network's weights")
    try:
        network.load_state_dict(load_file(str(weights)), strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights} does not match the model described in {path}: {exc}") from exc
    model.intents_ = intents
    model.slot_tags_ = slot_tags
    model.network_ = network.eval()
    trained = meta.get("training") or {}
    model.history_ = TrainingHistory(
        epoch_losses=list(trained.get("epoch_losses", [])),
        steps=int(trained.get("steps", 0)),
        seconds=float(trained.get("seconds", 0.0)),
    )
    model.training_data_ = dict(meta.get("training_data") or {})
    model.metadata_ = meta
    model.path_ = path
    return model
