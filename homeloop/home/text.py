"""Text vectors for device names and rooms.

Two encoders, by name in :data:`TEXT_ENCODERS`:

``"minilm"``
    the pretrained sentence-transformers all-MiniLM-L6-v2 shipped with homeloop
    (:func:`homeloop.nlu.encoders.minilm_model_path`), 384 numbers per text; "Plug 1"
    and "Lamp plug" land near each other, "Coffee maker" near "Kettle".
``"hashing"``
    character 2-4-grams hashed into 256 numbers (no model to load; what tests use).

Each distinct text is encoded once; the empty text (no room) is the zero vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from homeloop.errors import InvalidInputError

__all__ = ["TEXT_ENCODERS", "encode_texts"]


@lru_cache(maxsize=1)
def _minilm():
    from sentence_transformers import SentenceTransformer

    from homeloop.nlu.encoders import minilm_model_path

    return SentenceTransformer(str(minilm_model_path()), device="cpu")


def _minilm_vectors(texts: Sequence[str]) -> np.ndarray:
    model = _minilm()
    return np.asarray(
        model.encode(list(texts), batch_size=256, normalize_embeddings=True, show_progress_bar=False), np.float32
    )


def _hashing_vectors(texts: Sequence[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=256, alternate_sign=False, norm="l2")
    return vec.transform([t.lower() for t in texts]).toarray().astype(np.float32)


#: name -> function(list of distinct non-empty texts) -> float32 array [texts, dim]
TEXT_ENCODERS: dict[str, Callable[[Sequence[str]], np.ndarray]] = {
    "minilm": _minilm_vectors,
    "hashing": _hashing_vectors,
}
_DIMS = {"minilm": 384, "hashing": 256}


def encode_texts(texts: Sequence[str | None], *, encoder: str = "minilm") -> np.ndarray:
    """One vector per text (zeros for ``None`` or empty), each distinct text encoded once."""
    if encoder not in TEXT_ENCODERS:
        raise InvalidInputError(f"text encoder {encoder!r}: expected one of {sorted(TEXT_ENCODERS)}")
    clean = [t.strip() if isinstance(t, str) else "" for t in texts]
    distinct = sorted({t for t in clean if t})
    dim = _DIMS.get(encoder)
    if not distinct:
        return np.zeros((len(clean), dim or 1), np.float32)
    vectors = TEXT_ENCODERS[encoder](distinct)
    index = {t: i for i, t in enumerate(distinct)}
    out = np.zeros((len(clean), vectors.shape[1]), np.float32)
    for i, t in enumerate(clean):
        if t:
            out[i] = vectors[index[t]]
    return out
