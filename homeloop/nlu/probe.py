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

Example::

    x_train, x_test = sentence_vectors(train), sentence_vectors(test)
    probe = fit_probe(x_train, labels, n_classes=len(intents))
    predicted = probe_logits(probe, x_test).argmax(1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from homeloop.errors import InvalidInputError, NoDataError

__all__ = ["PROBE_SCALE", "fit_probe", "probe_logits", "sentence_vectors"]

#: the probe's logits are this times ``W x + b`` (x has unit norm)
PROBE_SCALE = 10.0

#: ``extra_loss(logits, index) -> scalar`` added to the cross-entropy (``index``: rows of the training data)
ExtraLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sentence_vectors(utterances: Sequence[Any], *, batch_size: int = 64) -> torch.Tensor:
    """``[n, 384]``: the pretrained all-MiniLM-L6-v2's mean-pooled sentence vectors, L2-normalised; frozen.

    Reads each utterance's ``tokens``; an utterance without words reads as the empty string.
    """
    from homeloop.nlu.encoders import MiniLMEncoder

    if not utterances:
        raise NoDataError("sentence_vectors: expected utterances, got none")
    encoder = MiniLMEncoder.build([]).eval()
    chunks = []
    with torch.no_grad():
        for begin in range(0, len(utterances), batch_size):
            tokens = [tuple(u.tokens) or ("",) for u in utterances[begin : begin + batch_size]]
            chunks.append(encoder(encoder.encode(tokens)).sentence)
    return F.normalize(torch.cat(chunks), dim=1)


def probe_logits(probe: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The probe's intent logits for ``features``."""
    return PROBE_SCALE * probe(features)


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

    y = torch.as_tensor(labels, dtype=torch.long)
    if features.ndim != 2 or len(features) != len(y):
        raise InvalidInputError(
            f"features: expected a [n, dim] tensor with one row per label, got shape {tuple(features.shape)} "
            f"for {len(y)} labels"
        )
    if len(y) == 0:
        raise NoDataError("fit_probe: expected training examples, got none")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise InvalidInputError(
            f"labels: expected class indices in [0, {n_classes}), got {int(y.min())}..{int(y.max())}"
        )
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
