"""Private linear intent probes on frozen (public) MiniLM sentence vectors, through ``fit`` and ``make_private``.

Only the probe's one ``nn.Linear`` sees the private data, so DP-SGD adds its
noise to about 25,000 numbers (HWU64) instead of millions, and the probe keeps
most of its accuracy at epsilon 8 (``benchmarks/dp_utility.py``). The recipe
(adaptive clipping at the 0.7 quantile, Poisson batches of 2,048, 160 epochs,
AdamW 5e-3) was chosen on a validation tenth of HWU64's training split
(``benchmarks/dp_probe_tuning.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from homeloop.errors import InvalidInputError
from homeloop.nlu.probe import IntentProbe, SentenceVectors, probe_logits, training_labels
from homeloop.privacy.engine import make_private
from homeloop.privacy.nlu import PrivacyRecord

__all__ = ["fit_private_probe", "train_private_probe"]


def fit_private_probe(
    features: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    n_classes: int,
    *,
    target_epsilon: float,
    delta: float | None = None,
    epochs: int = 160,
    batch_size: int = 2048,
    lr: float = 5e-3,
    max_grad_norm: float | str = "adaptive",
    clip_quantile: float = 0.7,
    seed: int = 0,
) -> tuple[nn.Linear, PrivacyRecord]:
    """A probe trained with DP-SGD at ``(target_epsilon, delta)`` (default delta ``1 / n^1.1``).

    The expected Poisson batch is ``batch_size``, or a quarter of the data when that is smaller.
    """
    from homeloop.training import fit, make_loader

    if not (isinstance(target_epsilon, (int, float)) and 0 < target_epsilon < math.inf):
        raise InvalidInputError(f"target_epsilon: expected a positive finite number, got {target_epsilon!r}")
    y = training_labels(features, labels, n_classes)
    started = time.perf_counter()
    torch.manual_seed(seed)
    probe = nn.Linear(features.shape[1], n_classes)
    data = list(zip(features, y, strict=True))

    def per_example(model: nn.Module, batch: Any) -> torch.Tensor:
        return F.cross_entropy(probe_logits(model, batch[0]), batch[1], reduction="none")

    private = make_private(
        probe,
        torch.optim.AdamW(probe.parameters(), lr=lr),
        make_loader(data, batch_size=max(1, min(batch_size, len(data) // 4)), seed=seed),
        epochs=epochs,
        target_epsilon=float(target_epsilon),
        target_delta=delta,
        max_grad_norm=max_grad_norm,
        clip_quantile=clip_quantile,
        per_example_loss=per_example,
        seed=seed,
    )
    fit(
        private.module,
        private.data_loader,
        loss_fn=private.loss(per_example),
        optimizer=private.optimizer,
        epochs=epochs,
    )
    private.detach()
    record = PrivacyRecord.of(
        private, epochs=epochs, training_examples=len(data), seconds=time.perf_counter() - started
    )
    return probe.eval(), record


def train_private_probe(
    utterances: Sequence[Any],
    *,
    target_epsilon: float,
    delta: float | None = None,
    seed: int = 0,
    vectors: SentenceVectors | None = None,
    **recipe: Any,
) -> tuple[IntentProbe, PrivacyRecord | None]:
    """An :class:`~homeloop.nlu.probe.IntentProbe` trained on ``utterances`` at ``target_epsilon``
    (``inf``: the ordinary, non-private probe, and no record). ``recipe`` goes to :func:`fit_private_probe`."""
    classifier = IntentProbe(seed=seed, vectors=vectors)
    if target_epsilon == math.inf:
        return classifier.fit(utterances), None
    features, labels = classifier.training_data(utterances)
    classifier.probe_, record = fit_private_probe(
        features, labels, len(classifier.intents_), target_epsilon=target_epsilon, delta=delta, seed=seed, **recipe
    )
    return classifier, record
