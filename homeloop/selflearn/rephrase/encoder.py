"""The pretrained MiniLM (tokenizer and transformer) that both rephrase detectors read."""

from __future__ import annotations

from pathlib import Path

from homeloop.errors import ArtifactError


def _load_minilm(model_path: str | Path | None):
    from homeloop.nlu.encoders import _quiet_transformers, minilm_model_path

    path = Path(model_path) if model_path is not None else minilm_model_path()
    with _quiet_transformers() as tf:
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            transformer = tf.AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load the pretrained MiniLM from {path}: {exc}") from exc
    return tokenizer, transformer
