"""Rephrase baselines: the word-and-letter similarity rule (:func:`similarity_rule`) and the pairwise
detector over MiniLM sentence embeddings (:class:`PairwiseRephraseDetector`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from homeloop.errors import NoDataError, NotFittedError
from homeloop.selflearn.rephrase.encoder import _load_minilm
from homeloop.selflearn.rephrase.examples import (
    RephraseExample,
    _best_candidate_proba,
    _candidate_classes,
    _check_candidates,
    _check_targets,
    rephrase_metrics,
)
from homeloop.selflearn.sessions import is_negation

__all__ = ["PairwiseRephraseDetector", "similarity_rule"]


def similarity_rule(examples: Sequence[RephraseExample], *, min_similarity: float = 0.5) -> list[int | None]:
    """The simplest reading: the most similar candidate by words and letters
    (:func:`~homeloop.selflearn.sessions.text_similarity`), if it reaches ``min_similarity``."""
    from homeloop.selflearn.sessions import text_similarity

    out: list[int | None] = []
    for ex in examples:
        sims = [0.0 if is_negation(c.text) else text_similarity(ex.text, c.text) for c in ex.candidates]
        k = int(np.argmax(sims))
        out.append(k if sims[k] >= min_similarity else None)
    return out


class PairwiseRephraseDetector(BaseEstimator):
    """Baseline: each (request, candidate) pair scored on its own from the cosine similarity of their
    MiniLM sentence embeddings (pretrained, not fine-tuned) and the seconds between them; a logistic
    regression learns the weights; the best candidate wins if its probability reaches the threshold
    (``threshold``, or with ``tune_threshold`` the one that maximises F1 on the training examples).

    ``fit(examples, targets)`` (a candidate index or None per example). After ``fit``: ``classifier_``,
    ``threshold_`` (the one in use) and ``classes_``: None ("no rephrase"), then the candidate positions
    ``0 .. k-1`` (``k``, the most candidates a training example has). ``predict`` gives the candidate index
    or None per example; ``predict_proba`` an ``(n, k + 1)`` array over ``classes_``: the best candidate's
    probability in its column, the rest on "no rephrase" (column 0).
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        threshold: float = 0.5,
        tune_threshold: bool = True,
        batch_size: int = 64,
    ) -> None:
        self.model_path = model_path
        self.threshold = threshold
        self.tune_threshold = tune_threshold
        self.batch_size = batch_size

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not hasattr(self, "_encoder"):
            self._encoder = _load_minilm(self.model_path)
        tokenizer, transformer = self._encoder
        transformer.eval()
        distinct = sorted(set(texts))
        vectors: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for start in range(0, len(distinct), self.batch_size):
                batch = distinct[start : start + self.batch_size]
                enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
                hidden = transformer(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                for text, v in zip(batch, pooled.numpy(), strict=True):
                    vectors[text] = v
        return np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, 384))

    def _pairs(self, examples: Sequence[RephraseExample]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        req_texts, cand_texts, gaps, index = [], [], [], []
        for e, ex in enumerate(examples):
            for k, c in enumerate(ex.candidates):
                req_texts.append(ex.text or " ")
                cand_texts.append(c.text or " ")
                gaps.append(c.gap_seconds)
                index.append((e, k))
        if not index:
            return np.zeros((0, 2)), []
        a, b = self._embed(req_texts), self._embed(cand_texts)
        cosine = (a * b).sum(1)
        x = np.column_stack([cosine, np.log1p(np.asarray(gaps, dtype=float))])
        return x, index

    def fit(self, examples: Sequence[RephraseExample], targets: Sequence[int | None]):
        from sklearn.linear_model import LogisticRegression

        _check_targets(examples, targets)
        x, index = self._pairs(examples)
        y = np.array([targets[e] == k for e, k in index], dtype=bool)
        if y.all() or not y.any():
            raise NoDataError("PairwiseRephraseDetector.fit: expected both rephrase and other candidate pairs")
        self.classifier_ = LogisticRegression(C=1.0).fit(x, y)
        self.classes_ = _candidate_classes(examples)
        self.threshold_ = float(self.threshold)
        if self.tune_threshold:
            best_k, best_p = self._best(examples)
            self.threshold_ = _best_threshold(best_k, best_p, targets)
        return self

    def _check_fitted(self, examples: Sequence[RephraseExample]) -> None:
        if not hasattr(self, "classifier_"):
            raise NotFittedError("PairwiseRephraseDetector: call fit() before predict()")
        _check_candidates("PairwiseRephraseDetector", self.classes_, examples)

    def _best(self, examples: Sequence[RephraseExample]) -> tuple[list[int], np.ndarray]:
        x, index = self._pairs(examples)
        p = self.classifier_.predict_proba(x)[:, 1] if len(index) else np.zeros(0)
        best_k = [0] * len(examples)
        best_p = np.zeros(len(examples))
        for (e, k), pk in zip(index, p, strict=True):
            if pk > best_p[e]:
                best_p[e], best_k[e] = pk, k
        return best_k, best_p

    def predict_proba(self, examples: Sequence[RephraseExample]) -> np.ndarray:
        """Probabilities over ``classes_``, shape ``(n, len(classes_))``: column ``1 + k`` holds the best
        candidate ``k``'s probability of rephrasing the request, column 0 the rest ("no rephrase")."""
        self._check_fitted(examples)
        best_k, best_p = self._best(examples)
        return _best_candidate_proba(best_k, best_p, len(self.classes_))

    def predict(self, examples: Sequence[RephraseExample]) -> list[int | None]:
        """The index of the candidate that rephrases each request, or None."""
        self._check_fitted(examples)
        best_k, best_p = self._best(examples)
        return [k if p >= self.threshold_ else None for k, p in zip(best_k, best_p, strict=True)]


def _best_threshold(best_k: Sequence[int], best_p: np.ndarray, targets: Sequence[int | None]) -> float:
    """The cut on the best candidate's probability that maximises pair F1 on ``targets``."""
    best_f1, best_t = -1.0, 0.5
    for t in np.unique(np.round(best_p, 4)):
        predicted = [k if p >= t else None for k, p in zip(best_k, best_p, strict=True)]
        f1 = rephrase_metrics(predicted, targets)["f1"]
        if f1 > best_f1:
            best_f1, best_t = f1, float(t)
    return best_t
