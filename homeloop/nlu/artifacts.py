"""The NLU's artefact format, and NLU-typed shortcuts over :mod:`homeloop.artifacts`.

A version folder ``models/nlu/<name>/v<N>/`` of format ``homeloop.nlu.intent_slot`` holds::

    metadata.json       the store's schema; ``details`` has the encoder, training settings and history
    model.json          label spaces (intents, BIO tags) and the encoder's config
    weights.safetensors the network's state dict
    encoder/            extra files of the encoder (the MiniLM tokenizer and config)

Format version 1 (homeloop before the artefact store, folders ``models/nlu/v<N>``) is still read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from homeloop import artifacts
from homeloop.errors import ArtifactError
from homeloop.nlu.encoders import ENCODERS
from homeloop.nlu.model import IntentSlotModel, JointIntentSlotNetwork
from homeloop.training import TrainingHistory

__all__ = ["FORMAT", "KIND", "IntentSlotFormat", "latest_model_path", "list_versions", "load_model", "save_model"]

FORMAT = "homeloop.nlu.intent_slot"
KIND = "nlu"


class IntentSlotFormat(artifacts.ArtifactFormat):
    """:class:`~homeloop.nlu.IntentSlotModel` as safetensors weights, JSON label spaces and encoder files."""

    name = FORMAT
    kind = KIND
    estimator = IntentSlotModel
    default_name = "nlu"
    version = 2
    readable_versions = (1, 2)

    def write(self, model: IntentSlotModel, folder: Path) -> dict[str, Any]:
        network = model.network_
        encoder = network.encoder
        state = {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        encoder.save_files(folder / "encoder")
        (folder / "encoder").mkdir(exist_ok=True)
        spec = {"intents": model.intents_, "slot_tags": model.slot_tags_, "encoder_config": encoder.config()}
        (folder / "model.json").write_text(json.dumps(spec))
        return {
            "encoder": encoder.name,
            "training_settings": model.training_settings(),
            "training": {
                "epoch_losses": list(model.history_.epoch_losses),
                "steps": model.history_.steps,
                "seconds": model.history_.seconds,
            },
            "n_intents": len(model.intents_),
            "n_slot_tags": len(model.slot_tags_),
        }

    def read(self, folder: Path, metadata: dict[str, Any]) -> IntentSlotModel:
        # format version 1 kept these facts at the top level of the metadata
        details = metadata.get("details") if metadata.get("format_version", 1) >= 2 else metadata
        details = details or {}
        encoder_name = details.get("encoder")
        if encoder_name not in ENCODERS:
            raise ArtifactError(f"{folder}: encoder {encoder_name!r} is not one of {sorted(ENCODERS)}")
        spec = artifacts.read_json_object(folder / "model.json", what="NLU artefact")
        try:
            params = dict(metadata["parameters"])
            intents, slot_tags, encoder_config = list(spec["intents"]), list(spec["slot_tags"]), spec["encoder_config"]
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"{folder}: metadata.json or model.json lacks {exc}") from None
        try:
            model = IntentSlotModel(**params)
        except TypeError as exc:
            raise ArtifactError(
                f"{folder}: parameters {sorted(params)} do not fit this homeloop's IntentSlotModel: {exc}"
            ) from None
        encoder = ENCODERS[encoder_name].from_config(encoder_config, folder=folder / "encoder")
        network = JointIntentSlotNetwork(encoder, n_intents=len(intents), n_tags=len(slot_tags), dropout=model.dropout)
        weights = folder / "weights.safetensors"
        if not weights.is_file():
            raise ArtifactError(f"{weights} is missing: expected the network's weights")
        try:
            network.load_state_dict(load_file(str(weights)), strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ArtifactError(f"{weights} does not match the model described in {folder}: {exc}") from exc
        model.intents_ = intents
        model.slot_tags_ = slot_tags
        model.network_ = network.eval()
        trained = details.get("training") or {}
        model.history_ = TrainingHistory(
            epoch_losses=list(trained.get("epoch_losses", [])),
            steps=int(trained.get("steps", 0)),
            seconds=float(trained.get("seconds", 0.0)),
        )
        model.training_data_ = dict(metadata.get("training_data") or {})
        return model


artifacts.register_format(IntentSlotFormat())


def save_model(
    model: IntentSlotModel,
    models_dir: str | os.PathLike[str],
    *,
    name: str = "nlu",
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` as the next version ``<models_dir>/nlu/<name>/v<N>/`` (:func:`homeloop.artifacts.save`).

    ``metrics`` (held-out figures, e.g. from :func:`homeloop.nlu.evaluate`) and ``training_data``
    (e.g. ``{"name": "hwu64", "split": "train"}``, merged over what ``fit`` recorded) go into
    ``metadata.json``.
    """
    if not isinstance(model, IntentSlotModel):
        raise ArtifactError(f"save_model: expected an IntentSlotModel, got {type(model).__name__}")
    return artifacts.save(model, models_dir, name=name, metrics=metrics, training_data=training_data)


def load_model(path: str | os.PathLike[str]) -> IntentSlotModel:
    """Load a saved NLU (:func:`homeloop.artifacts.load`, checked to be an :class:`IntentSlotModel`).

    ``path`` is a version folder (``.../nlu/nlu/v3``) or the folder holding the versions (the
    newest is loaded).
    """
    model = artifacts.load(path)
    if not isinstance(model, IntentSlotModel):
        raise ArtifactError(
            f"{model.path_}: expected a saved NLU (format {FORMAT!r}), found a {model.metadata_.get('format')!r} model"
        )
    return model


def list_versions(models_dir: str | os.PathLike[str], *, name: str = "nlu") -> list[Path]:
    """The version folders ``<models_dir>/nlu/<name>/v<N>`` that exist, oldest first."""
    return artifacts.versions(models_dir, KIND, name)


def latest_model_path(models_dir: str | os.PathLike[str], *, name: str = "nlu") -> Path:
    """The newest version folder of NLU ``name``; :class:`~homeloop.errors.MissingInputError` when none."""
    return artifacts.latest(models_dir, KIND, name)
