"""The span detector's files: a fitted :class:`~homeloop.selflearn.rephrase.span_model.SpanRephraseDetector`
saved as a model version (safetensors weights, tokenizer and transformer config) and loaded back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from homeloop.errors import ArtifactError, MissingInputError
from homeloop.selflearn.rephrase.span_model import SpanRephraseDetector, _span_network_class

__all__ = ["REPHRASE_MODEL_NAME", "load_rephrase_model", "save_rephrase_model"]

REPHRASE_MODEL_NAME = "rephrase"
_FORMAT_VERSION = 1


def save_rephrase_model(
    detector: SpanRephraseDetector,
    models_dir: str | os.PathLike[str],
    *,
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted span detector as the next version ``<models_dir>/rephrase/v<N>/``:
    ``metadata.json``, ``weights.safetensors`` and ``encoder/`` (tokenizer and transformer config)."""
    from safetensors.torch import save_file

    from homeloop.nlu.artifacts import _homeloop_version, save_version

    detector._check_fitted()

    def write(tmp: Path) -> dict[str, Any]:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in detector.network_.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        detector.tokenizer_.save_pretrained(str(tmp / "encoder"))
        detector.network_.transformer.config.save_pretrained(str(tmp / "encoder"))
        return {
            "format": "homeloop-rephrase-model",
            "format_version": _FORMAT_VERSION,
            "homeloop_version": _homeloop_version(),
            "params": {k: str(v) if isinstance(v, os.PathLike) else v for k, v in detector.get_params().items()},
            "candidates": len(detector.classes_) - 1,
            "metrics": metrics or {},
            "training_data": {**(training_data or {}), "examples": getattr(detector, "training_examples_", None)},
            "training_seconds": round(getattr(detector, "training_seconds_", 0.0), 2),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    return save_version(models_dir, REPHRASE_MODEL_NAME, write)


def load_rephrase_model(path: str | os.PathLike[str]) -> SpanRephraseDetector:
    """Load a span detector written by :func:`save_rephrase_model` (a version folder or the folder of versions)."""
    from safetensors.torch import load_file

    from homeloop.nlu.artifacts import latest_model_path, list_versions
    from homeloop.nlu.encoders import _quiet_transformers

    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"rephrase model {path} does not exist")
    if not (path / "metadata.json").exists() and list_versions(path.parent, name=path.name):
        path = latest_model_path(path.parent, name=path.name)
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"rephrase model {path}: metadata.json missing or unreadable ({exc})") from None
    if meta.get("format") != "homeloop-rephrase-model" or meta.get("format_version") != _FORMAT_VERSION:
        raise ArtifactError(
            f"rephrase model {path}: expected format homeloop-rephrase-model version {_FORMAT_VERSION}, "
            f"got {meta.get('format')!r} version {meta.get('format_version')!r}"
        )
    params = dict(meta.get("params", {}))
    detector = SpanRephraseDetector(**params)
    try:
        with _quiet_transformers() as tf:
            detector.tokenizer_ = tf.AutoTokenizer.from_pretrained(str(path / "encoder"), local_files_only=True)
            config = tf.AutoConfig.from_pretrained(str(path / "encoder"), local_files_only=True)
            transformer = tf.AutoModel.from_config(config, add_pooling_layer=False)
        network = _span_network_class()(transformer)
        network.load_state_dict(load_file(str(path / "weights.safetensors")))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"rephrase model {path}: encoder files or weights missing or corrupt ({exc})") from None
    network.eval()
    detector.network_ = network
    # versions written before the classes were saved were fitted on examples of up to 3 candidates
    detector.classes_ = np.array([None, *range(int(meta.get("candidates", 3)))], dtype=object)
    detector.path_ = path
    detector.metadata_ = meta
    return detector
