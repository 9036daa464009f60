"""A linear intent classifier on frozen sentence vectors of the pretrained MiniLM (a linear probe).

The pretrained (public) encoder stays fixed; only one ``nn.Linear`` learns, in
seconds, through :func:`homeloop.training.fit`. That makes it the model of
choice where many models must be trained: privately (noise grows with the
number of trained parameters, see ``benchmarks/dp_utility.py``) and in update
experiments that repeat every training over many seeds
(:func:`homeloop.graceful.experiments.probe_update_experiment`). Every version
of a probe reads the same features, so two versions can also be averaged
weight by weight (:func:`homeloop.graceful.interpolation.interpolate_weights`).

Logits are ``PROBE_SCALE * (W x + b)`` on L2-normalised sentence vectors (scaled
cosine logits). The default recipe (5 epochs of batches of 256, AdamW 5e-3) was
chosen on a validation tenth of HWU64's training split.

:class:`IntentProbe` wraps it as an intent classifier that reads text
(``fit(utterances)``, ``predict_proba(texts)``, ``intents_``), with a
:class:`SentenceVectors` memo that several probes can share (a privacy audit
trains dozens of them on the same utterances).

Example::

    x_train, x_test = sentence_vectors(train), sentence_vectors(test)
    probe = fit_probe(x_train, labels, n_classes=len(intents))
    predicted = probe_logits(probe, x_test).argmax(1)

    classifier = IntentProbe().fit(train)
    classifier.predict_proba(["turn off the kitchen lights"])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from homeloop.errors import InvalidInputError, NoDataError, NotFittedError

__all__ = ["PROBE_SCALE", "IntentProbe", "SentenceVectors", "fit_probe", "probe_logits", "sentence_vectors"]

#: the probe's logits are this times ``W x + b`` (x has unit norm)
PROBE_SCALE = 10.0

#: ``extra_loss(logits, index) -> scalar`` added to the cross-entropy (``index``: rows of the training data)
ExtraLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class SentenceVectors:
    """The pretrained all-MiniLM-L6-v2's mean-pooled, L2-normalised sentence vectors of token tuples, frozen,
    each computed once (kept by token tuple); the encoder loads on first use."""

    def __init__(self, *, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._encoder: Any = None
        self._memo: dict[tuple[str, ...], torch.Tensor] = {}

    def __call__(self, token_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """``[n, 384]`` for ``n`` token lists (an empty one reads as the empty string)."""
        from homeloop.nlu.encoders import MiniLMEncoder

        keys = [tuple(tokens) or ("",) for tokens in token_lists]
        missing = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if missing and self._encoder is None:
            self._encoder = MiniLMEncoder.build([]).eval()
        with torch.no_grad():
            for begin in range(0, len(missing), self.batch_size):
                chunk = missing[begin : begin + self.batch_size]
                vectors = F.normalize(self._encoder(self._encoder.encode(chunk)).sentence, dim=1)
                self._memo.update(zip(chunk, vectors, strict=True))
        if not keys:
            return torch.zeros(0, 384)
        return torch.stack([self._memo[k] for k in keys])


def sentence_vectors(utterances: Sequence[Any], *, batch_size: int = 64) -> torch.Tensor:
    """``[n, 384]``: the pretrained MiniLM's sentence vectors of each utterance's ``tokens`` (see
    :class:`SentenceVectors`; nothing is kept between calls)."""
    if not utterances:
        raise NoDataError("sentence_vectors: expected utterances, got none")
    return SentenceVectors(batch_size=batch_size)([u.tokens for u in utterances])


def probe_logits(probe: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The probe's intent logits for ``features``."""
    return PROBE_SCALE * probe(features)


def training_labels(features: torch.Tensor, labels: Sequence[int] | torch.Tensor, n_classes: int) -> torch.Tensor:
    """``labels`` as a long tensor, after checking them against ``features`` (``[n, dim]``) and ``n_classes``."""
    y = torch.as_tensor(labels, dtype=torch.long)
    if features.ndim != 2 or len(features) != len(y):
        raise InvalidInputError(
            f"features: expected a [n, dim] tensor with one row per label, got shape {tuple(features.shape)} "
            f"for {len(y)} labels"
        )
    if len(y) == 0:
        raise NoDataError("probe: expected training examples, got none")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise InvalidInputError(
            f"labels: expected class indices in [0, {n_classes}), got {int(y.min())}..{int(y.max())}"
        )
    return y


def fit_probe(
    features: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    n_classes: int,
    *,
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 256,
    lr: float = 5e-3,
    extra_loss: ExtraLoss | None = None,
) -> nn.Linear:
    """A new probe trained on ``features`` (``[n, dim]``) and class indices ``labels`` (``[n]``).

    ``extra_loss(logits, index)`` is added to the mean cross-entropy of each
    batch, for example :func:`homeloop.graceful.pctraining.focal_distillation_term`.
    """
    from homeloop.training import fit, make_loader

    y = training_labels(features, labels, n_classes)
    torch.manual_seed(seed)
    probe = nn.Linear(features.shape[1], n_classes)
    data = list(zip(features, y, torch.arange(len(y)), strict=True))

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        logits = probe_logits(model, batch[0])
        loss = F.cross_entropy(logits, batch[1])
        return loss if extra_loss is None else loss + extra_loss(logits, batch[2])

    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    fit(probe, make_loader(data, batch_size=batch_size, seed=seed), loss_fn=loss_fn, optimizer=optimizer, epochs=epochs)
    return probe.eval()


class IntentProbe(BaseEstimator):
    """An intent classifier: a linear probe (:func:`fit_probe`) on frozen MiniLM sentence vectors.

    ``vectors`` may be shared between probes (:class:`SentenceVectors` keeps what it computed); by default
    each fit makes its own. After :meth:`fit`: ``intents_`` (sorted intent names, the columns of
    :meth:`predict_proba`; also ``classes_``, as an array), ``probe_`` and ``vectors_`` (the sentence vectors
    it reads).
    """

    def __init__(
        self,
        *,
        epochs: int = 5,
        batch_size: int = 256,
        lr: float = 5e-3,
        seed: int = 0,
        vectors: SentenceVectors | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.vectors = vectors

    def training_data(self, utterances: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features, labels)`` of the utterances with words; sets ``intents_`` and ``vectors_`` (the first half
        of :meth:`fit`, for trainers of ``probe_`` such as :func:`homeloop.privacy.probe.train_private_probe`)."""
        usable = [u for u in utterances if len(u.tokens)]
        if not usable:
            raise NoDataError("IntentProbe: expected labelled utterances with words, got none")
        self.vectors_ = self.vectors if self.vectors is not None else SentenceVectors()
        self.intents_ = sorted({u.intent for u in usable})
        column = {name: k for k, name in enumerate(self.intents_)}
        features = self.vectors_([tuple(t.lower() for t in u.tokens) for u in usable])
        return features, torch.tensor([column[u.intent] for u in usable])

    def fit(self, utterances: Sequence[Any]) -> IntentProbe:
        """Train the probe on ``utterances`` (objects with ``tokens`` and ``intent``)."""
        features, labels = self.training_data(utterances)
        self.probe_ = fit_probe(
            features,
            labels,
            len(self.intents_),
            seed=self.seed,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "probe_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(utterances) first")

    @property
    def classes_(self) -> np.ndarray:
        """The intents, in the order of :meth:`predict_proba`'s columns (``intents_`` as an array)."""
        self._check_fitted()
        return np.asarray(self.intents_)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, len(intents_)]`` intent probabilities of raw texts (lower-cased, split on whitespace)."""
        self._check_fitted()
        with torch.no_grad():
            logits = probe_logits(self.probe_, self.vectors_([tuple(t.lower().split()) for t in texts]))
        return torch.softmax(logits, 1).numpy()
