"""The device-state model's artefact format, saved through :mod:`homeloop.artifacts`.

A version folder ``models/device-state/<dataset>/v<N>/`` of format ``homeloop.home.device_state``
holds::

    metadata.json        the store's schema; ``details`` has the ensemble size, the training
                         history, the best epochs and a SHA-256 checksum of each file below
    model.json           what fit learned besides the weights: the training days of each home,
                         the horizons, the text vectors' size, the network's sizes, the base rate
                         and the validation losses
    weights.safetensors  each ensemble member's weights, named ``member<i>.<parameter>``

Loading reads JSON and tensors and runs no code from the folder. A file
changed after saving (or missing) raises :class:`~homeloop.errors.ArtifactError` naming it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from homeloop import artifacts
from homeloop.errors import ArtifactError
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.network import DeviceStateNetwork
from homeloop.training import TrainingHistory

__all__ = ["FORMAT", "KIND", "DeviceStateFormat"]

FORMAT = "homeloop.home.device_state"
KIND = "device-state"
_MODEL_FILE = "model.json"
_WEIGHTS_FILE = "weights.safetensors"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(folder: Path, details: dict[str, Any]) -> None:
    """Every file of the folder present and as it was saved."""
    sums = details.get("files")
    if not isinstance(sums, dict):
        raise ArtifactError(f"{folder / 'metadata.json'}: details.files (the files' checksums) is missing")
    for name in (_MODEL_FILE, _WEIGHTS_FILE):
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing: expected a complete device-state model folder")
        if sums.get(name) != _sha256(path):
            raise ArtifactError(
                f"{path} does not match its SHA-256 checksum in {folder / 'metadata.json'}: it was changed after saving"
            )


class DeviceStateFormat(artifacts.ArtifactFormat):
    """:class:`~homeloop.home.device_model.DeviceStateModel` as safetensors weights and JSON; its name is the
    dataset it was trained on."""

    name = FORMAT
    kind = KIND
    estimator = DeviceStateModel
    default_name = "home-assistant"
    version = 1
    readable_versions = (1,)

    def write(self, model: DeviceStateModel, folder: Path) -> dict[str, Any]:
        model._check()
        members = list(model.members_)
        weights = {
            f"member{i}.{key}": value.detach().cpu().contiguous().clone()
            for i, network in enumerate(members)
            for key, value in network.state_dict().items()
        }
        save_file(weights, str(folder / _WEIGHTS_FILE))
        spec = {
            "train_days": {str(k): int(v) for k, v in model.train_days_.items()},
            "horizons": [int(h) for h in model.horizons_],
            "classes": np.asarray(model.classes_).tolist(),
            "text_dim": int(model.text_dim_),
            "network": dict(members[0].sizes),
            "base_rate": float(model.base_rate_),
            "validation_losses": [float(v) for v in model.validation_losses_],
        }
        (folder / _MODEL_FILE).write_text(json.dumps(spec))
        params = model.get_params(deep=False)
        return {
            "members": len(members),
            "best_epoch": int(model.best_epoch_),
            "best_epochs": [int(e) for e in model.best_epochs_],
            "training": {
                "epoch_losses": list(model.history_.epoch_losses),
                "steps": model.history_.steps,
                "seconds": model.history_.seconds,
            },
            "tuple_parameters": sorted(k for k, v in params.items() if isinstance(v, tuple)),
            "files": {name: _sha256(folder / name) for name in (_MODEL_FILE, _WEIGHTS_FILE)},
        }

    def read(self, folder: Path, metadata: dict[str, Any]) -> DeviceStateModel:
        details = metadata.get("details") or {}
        _checked(folder, details)
        model_file, weights_file = folder / _MODEL_FILE, folder / _WEIGHTS_FILE
        try:
            spec = json.loads(model_file.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{model_file} cannot be read as JSON: {exc}") from exc
        try:
            params = dict(metadata["parameters"])
            for key in details.get("tuple_parameters", []):
                params[key] = tuple(params[key])
            model = DeviceStateModel(**params)
        except (KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{folder / 'metadata.json'}: its parameters do not fit this homeloop's DeviceStateModel: {exc}"
            ) from None
        try:
            weights = load_file(str(weights_file))
        except (OSError, SafetensorError) as exc:
            raise ArtifactError(f"{weights_file} cannot be read as safetensors: {exc}") from exc
        try:
            members = []
            for i in range(int(details["members"])):
                prefix = f"member{i}."
                network = DeviceStateNetwork(**spec["network"])
                state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
                network.load_state_dict(state, strict=True)
                members.append(network.eval())
            if not members:
                raise ValueError("no ensemble member")
            model.train_days_ = {str(k): int(v) for k, v in spec["train_days"].items()}
            model.horizons_ = tuple(int(h) for h in spec["horizons"])
            model.classes_ = np.asarray(spec["classes"])
            model.text_dim_ = int(spec["text_dim"])
            model.base_rate_ = float(spec["base_rate"])
            model.validation_losses_ = [float(v) for v in spec["validation_losses"]]
            model.best_epoch_ = int(details["best_epoch"])
            model.best_epochs_ = [int(e) for e in details["best_epochs"]]
            trained = details["training"]
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{model_file} and {weights_file} do not describe a device-state model: {exc}") from exc
        model.history_ = TrainingHistory(
            epoch_losses=list(trained.get("epoch_losses", [])),
            steps=int(trained.get("steps", 0)),
            seconds=float(trained.get("seconds", 0.0)),
        )
        model.members_ = members
        model.network_ = members[0]
        model._caches = {}
        return model

    def training_data(self, model: DeviceStateModel) -> dict[str, Any]:
        return {"homes": len(model.train_days_), "train_days": int(sum(model.train_days_.values()))}


artifacts.register_format(DeviceStateFormat())
