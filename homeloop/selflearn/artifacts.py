"""The selflearn room's artefact formats, and typed shortcuts over :mod:`homeloop.artifacts`.

A version folder ``models/defects/<name>/v<N>/`` of format ``homeloop.selflearn.defect_model``
(a :class:`~homeloop.selflearn.defects.DefectModel`) holds::

    metadata.json       the store's schema; ``details`` has the threshold and the number of features
    classifier.skops    the HistGradientBoostingClassifier, in skops' format (read back trusting only
                        the types in :data:`DEFECT_TRUSTED_TYPES`, so loading cannot run code)
    model.json          the feature columns, the threshold in use and the training defect rate

A version folder ``models/rephrase/<name>/v<N>/`` of format ``homeloop.selflearn.rephrase_span``
(a :class:`~homeloop.selflearn.rephrase.span_model.SpanRephraseDetector`) holds::

    metadata.json       the store's schema; ``details`` has the training history
    model.json          the most candidates an example may have (the detector's classes)
    weights.safetensors the network's state dict (MiniLM and the span head)
    encoder/            the tokenizer and the transformer's config
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from homeloop import artifacts
from homeloop.errors import ArtifactError, MissingInputError
from homeloop.selflearn.defects import DefectModel
from homeloop.selflearn.rephrase.span_model import SpanRephraseDetector, _span_network_class

__all__ = [
    "DEFECT_FORMAT",
    "DEFECT_KIND",
    "DEFECT_MODEL_NAME",
    "DEFECT_TRUSTED_TYPES",
    "REPHRASE_FORMAT",
    "REPHRASE_KIND",
    "REPHRASE_MODEL_NAME",
    "DefectModelFormat",
    "RephraseSpanFormat",
    "latest_defect_model",
    "load_defect_model",
    "load_rephrase_model",
    "save_defect_model",
    "save_rephrase_model",
]

DEFECT_FORMAT = "homeloop.selflearn.defect_model"
DEFECT_KIND = "defects"
DEFECT_MODEL_NAME = "defects"
REPHRASE_FORMAT = "homeloop.selflearn.rephrase_span"
REPHRASE_KIND = "rephrase"
REPHRASE_MODEL_NAME = "rephrase"

# the types inside a fitted HistGradientBoostingClassifier that skops does not trust by default
DEFECT_TRUSTED_TYPES = [
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]


def _estimator(cls: type, folder: Path, metadata: dict[str, Any]) -> Any:
    try:
        return cls(**dict(metadata["parameters"]))
    except (KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{folder / 'metadata.json'}: parameters do not fit this homeloop's {cls.__name__}: {exc}"
        ) from None


class DefectModelFormat(artifacts.ArtifactFormat):
    """:class:`~homeloop.selflearn.defects.DefectModel` as a skops classifier and JSON."""

    name = DEFECT_FORMAT
    kind = DEFECT_KIND
    estimator = DefectModel
    default_name = DEFECT_MODEL_NAME

    def write(self, model: DefectModel, folder: Path) -> dict[str, Any]:
        import skops.io

        skops.io.dump(model.classifier_, folder / "classifier.skops")
        spec = {"features": list(model.features_), "threshold": model.threshold_, "defect_rate": model.defect_rate_}
        (folder / "model.json").write_text(json.dumps(spec))
        return {"threshold": model.threshold_, "n_features": len(model.features_)}

    def read(self, folder: Path, metadata: dict[str, Any]) -> DefectModel:
        import skops.io
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = _estimator(DefectModel, folder, metadata)
        spec = artifacts.read_json_object(folder / "model.json", what="defect model artefact")
        file = folder / "classifier.skops"
        if not file.is_file():
            raise ArtifactError(f"{file} is missing: expected the defect model's classifier")
        try:
            classifier = skops.io.load(file, trusted=DEFECT_TRUSTED_TYPES)
        except Exception as exc:  # skops raises untrusted-type, zip and format errors of many classes
            raise ArtifactError(f"{file} cannot be read as a trusted skops file: {exc}") from None
        if not isinstance(classifier, HistGradientBoostingClassifier):
            raise ArtifactError(f"{file}: expected a HistGradientBoostingClassifier, got {type(classifier).__name__}")
        try:
            model.features_ = tuple(spec["features"])
            model.threshold_ = float(spec["threshold"])
            model.defect_rate_ = float(spec["defect_rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{folder / 'model.json'}: lacks or misstates {exc}") from None
        if classifier.n_features_in_ != len(model.features_):
            raise ArtifactError(
                f"{file}: the classifier reads {classifier.n_features_in_} features, model.json names "
                f"{len(model.features_)}"
            )
        model.classifier_ = classifier
        model.classes_ = classifier.classes_
        model.training_data_ = dict(metadata.get("training_data") or {})
        return model


class RephraseSpanFormat(artifacts.ArtifactFormat):
    """:class:`~homeloop.selflearn.rephrase.span_model.SpanRephraseDetector` as safetensors weights, JSON and
    the encoder's tokenizer and config."""

    name = REPHRASE_FORMAT
    kind = REPHRASE_KIND
    estimator = SpanRephraseDetector
    default_name = REPHRASE_MODEL_NAME

    def write(self, model: SpanRephraseDetector, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.network_.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        model.tokenizer_.save_pretrained(str(folder / "encoder"))
        model.network_.transformer.config.save_pretrained(str(folder / "encoder"))
        (folder / "model.json").write_text(json.dumps({"candidates": len(model.classes_) - 1}))
        return {
            "training_seconds": round(getattr(model, "training_seconds_", 0.0), 2),
            "epoch_losses": list(getattr(model, "epoch_losses_", [])),
        }

    def read(self, folder: Path, metadata: dict[str, Any]) -> SpanRephraseDetector:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from homeloop.nlu.encoders import _quiet_transformers

        model = _estimator(SpanRephraseDetector, folder, metadata)
        spec = artifacts.read_json_object(folder / "model.json", what="rephrase model artefact")
        encoder = folder / "encoder"
        try:
            with _quiet_transformers() as tf:
                tokenizer = tf.AutoTokenizer.from_pretrained(str(encoder), local_files_only=True)
                config = tf.AutoConfig.from_pretrained(str(encoder), local_files_only=True)
                transformer = tf.AutoModel.from_config(config, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{encoder}: the tokenizer or config files are missing or corrupt ({exc})") from None
        network = _span_network_class()(transformer)
        weights = folder / "weights.safetensors"
        if not weights.is_file():
            raise ArtifactError(f"{weights} is missing: expected the network's weights")
        try:
            network.load_state_dict(load_file(str(weights)), strict=True)
        except (SafetensorError, RuntimeError, OSError, ValueError) as exc:
            raise ArtifactError(f"{weights} does not match the model described in {folder}: {exc}") from None
        try:
            candidates = int(spec["candidates"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{folder / 'model.json'}: lacks or misstates {exc}") from None
        details = metadata.get("details") or {}
        model.tokenizer_ = tokenizer
        model.network_ = network.eval()
        model.classes_ = np.array([None, *range(candidates)], dtype=object)
        model.training_seconds_ = float(details.get("training_seconds", 0.0))
        model.epoch_losses_ = list(details.get("epoch_losses", []))
        model.training_data_ = dict(metadata.get("training_data") or {})
        model.training_examples_ = model.training_data_.get("size")
        return model


artifacts.register_format(DefectModelFormat())
artifacts.register_format(RephraseSpanFormat())


def _loaded(path: str | os.PathLike[str], cls: type, fmt: str) -> Any:
    model = artifacts.load(path)
    if not isinstance(model, cls):
        found = model.metadata_.get("format")
        raise ArtifactError(f"{model.path_}: expected a saved {cls.__name__} (format {fmt!r}), found a {found!r} model")
    return model


def save_defect_model(
    model: DefectModel,
    models_dir: str | os.PathLike[str],
    *,
    name: str = DEFECT_MODEL_NAME,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` as the next version ``<models_dir>/defects/<name>/v<N>/`` (:func:`homeloop.artifacts.save`)."""
    if not isinstance(model, DefectModel):
        raise ArtifactError(f"save_defect_model: expected a DefectModel, got {type(model).__name__}")
    return artifacts.save(model, models_dir, name=name, metrics=metrics, training_data=training_data)


def load_defect_model(path: str | os.PathLike[str]) -> DefectModel:
    """Load a saved defect model: a version folder, or the folder of its versions (the newest)."""
    return _loaded(path, DefectModel, DEFECT_FORMAT)


def latest_defect_model(models_dir: str | os.PathLike[str], *, name: str = DEFECT_MODEL_NAME) -> DefectModel | None:
    """The newest saved defect model called ``name``, or None when there is none."""
    try:
        return load_defect_model(artifacts.latest(models_dir, DEFECT_KIND, name))
    except MissingInputError:
        return None


def save_rephrase_model(
    detector: SpanRephraseDetector,
    models_dir: str | os.PathLike[str],
    *,
    name: str = REPHRASE_MODEL_NAME,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
) -> Path:
    """Save a fitted span detector as the next version ``<models_dir>/rephrase/<name>/v<N>/``
    (:func:`homeloop.artifacts.save`)."""
    if not isinstance(detector, SpanRephraseDetector):
        raise ArtifactError(f"save_rephrase_model: expected a SpanRephraseDetector, got {type(detector).__name__}")
    return artifacts.save(detector, models_dir, name=name, metrics=metrics, training_data=training_data)


def load_rephrase_model(path: str | os.PathLike[str]) -> SpanRephraseDetector:
    """Load a saved span detector: a version folder, or the folder of its versions (the newest)."""
    return _loaded(path, SpanRephraseDetector, REPHRASE_FORMAT)
