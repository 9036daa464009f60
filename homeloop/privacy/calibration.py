"""The DP-SGD settings users get wrong, chosen automatically: clipping norm, batch size, learning rate.

- :func:`private_clipping_norm`: a quantile (the median by default, as Andrew et
  al. 2021 recommend) of the per-example gradient norms at the start of
  training, read from a *differentially private* histogram: one Poisson sample
  of about ``sample_size`` examples, norms bucketed on a log grid, Gaussian
  noise on each count. Each example moves one count by one, so this is a
  subsampled Gaussian mechanism; it is returned as a history entry and
  :func:`~homeloop.privacy.make_private` charges it to the target epsilon.
- :func:`recommended_batch_size`: the expected Poisson batch size with the
  least noise on the averaged gradient (``sigma / batch``) among batch sizes
  that still leave enough optimizer steps.
- :func:`scaled_learning_rate`: square-root scaling of an Adam learning rate
  tuned at another batch size (Malladi et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from homeloop.errors import InvalidInputError, PrivacyBudgetError, UnsupportedLayerError
from homeloop.privacy.accounting import Mechanism, noise_multiplier_for
from homeloop.privacy.clipper import BookKeepingClipper

__all__ = [
    "NORM_GRID",
    "calibration_mechanism",
    "per_example_gradient_norms",
    "private_clipping_norm",
    "recommended_batch_size",
    "scaled_learning_rate",
]

#: upper edges of the histogram bins of gradient norms: 3 per decade from 1e-3 to 1e4 (few bins keep the
#: noise of the cumulative counts low)
NORM_GRID = np.logspace(-3, 4, 22)


def per_example_gradient_norms(
    module: nn.Module,
    items: Sequence[Any],
    per_example_loss: Callable[[nn.Module, Any], torch.Tensor],
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """Per-example gradient norms of ``per_example_loss`` at the current weights (no update; not private).

    Uses bookkeeping norms when the model allows them, else one backward pass per example.
    """
    collate = collate_fn or torch.utils.data.default_collate
    was_training = module.training
    module.train()
    norms: list[torch.Tensor] = []
    try:
        try:
            clipper = BookKeepingClipper(module)
        except UnsupportedLayerError:
            clipper = None
        try:
            step = batch_size if clipper is not None else 1
            for begin in range(0, len(items), step):
                batch = collate(list(items[begin : begin + step]))
                loss = per_example_loss(module, batch)
                if clipper is not None:
                    loss.sum().backward()
                    norms.append(clipper.per_sample_norms().detach())
                    clipper.clear()
                else:
                    params = [p for p in module.parameters() if p.requires_grad]
                    grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
                    norms.append(torch.sqrt(sum((g.square().sum() for g in grads if g is not None), torch.zeros(()))))
        finally:
            if clipper is not None:
                clipper.detach()
    finally:
        module.train(was_training)
    return torch.cat([n.reshape(-1) for n in norms]) if norms else torch.zeros(0)


#: the clipping-norm calibration's Gaussian noise multiplier and expected sample size
CALIBRATION_NOISE, CALIBRATION_SAMPLE = 2.0, 1024


def calibration_mechanism(
    n: int, *, target_epsilon: float | None = None, delta: float = 1e-5, share: float = 0.05
) -> list[Mechanism]:
    """The privacy cost of :func:`private_clipping_norm` on ``n`` examples, as a history entry: a Poisson
    sample of about :data:`CALIBRATION_SAMPLE` examples with noise multiplier 2, or, when that would spend
    more than ``share`` of ``target_epsilon`` (PRV), a smaller sample (down to 128) and more noise (up to 6)."""
    from homeloop.privacy.accounting import ACCOUNTANTS

    full = min(1.0, CALIBRATION_SAMPLE / n)
    if target_epsilon is None:
        return [(CALIBRATION_NOISE, float(full), 1)]
    prv = ACCOUNTANTS["prv"]
    budget = share * target_epsilon
    rates = [full]
    while rates[-1] * n / 2 >= 128:
        rates.append(rates[-1] / 2)
    candidate = (CALIBRATION_NOISE, full, 1)
    for noise in (CALIBRATION_NOISE, 3.0, 4.0, 6.0):
        for rate in rates:
            candidate = (float(noise), float(rate), 1)
            if prv([candidate], delta) <= budget:
                return [candidate]
    return [candidate]


def private_clipping_norm(
    module: nn.Module,
    dataset: Sequence[Any],
    per_example_loss: Callable[[nn.Module, Any], torch.Tensor],
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    quantile: float = 0.5,
    sample_size: int = CALIBRATION_SAMPLE,
    noise_multiplier: float = CALIBRATION_NOISE,
    mechanism: Sequence[Mechanism] | None = None,
    seed: int = 0,
) -> tuple[float, list[Mechanism]]:
    """``(clipping norm, [(noise_multiplier, sample_rate, 1)])``: the ``quantile`` of per-example gradient norms
    from a Gaussian-noised histogram over a Poisson sample of about ``sample_size`` examples (or as
    ``mechanism``, from :func:`calibration_mechanism`, says)."""
    if not 0 < quantile < 1:
        raise InvalidInputError(f"clip_quantile: expected a number in (0, 1), got {quantile!r}")
    n = len(dataset)
    sample_rate = min(1.0, sample_size / n)
    if mechanism:
        noise_multiplier, sample_rate, _ = mechanism[0]
    generator = torch.Generator()
    generator.manual_seed(seed + 7)
    chosen = torch.nonzero(torch.rand(n, generator=generator) < sample_rate).flatten().tolist()
    norms = per_example_gradient_norms(
        module, [dataset[i] for i in chosen], per_example_loss, collate_fn=collate_fn
    ).numpy()
    bins = np.searchsorted(NORM_GRID, norms, side="left").clip(max=len(NORM_GRID) - 1)
    counts = np.bincount(bins, minlength=len(NORM_GRID)).astype(float)
    rng = np.random.default_rng(seed + 11)
    noisy = np.clip(counts + rng.normal(0.0, noise_multiplier, size=counts.shape), 0, None)
    cumulative = np.cumsum(noisy)
    if cumulative[-1] <= 0:
        raise PrivacyBudgetError(
            f"max_grad_norm='auto': the noisy histogram of {len(chosen)} sampled examples is empty; "
            "expected more training data, or pass max_grad_norm explicitly"
        )
    index = int(np.searchsorted(cumulative, quantile * cumulative[-1]))
    clip = float(NORM_GRID[min(index, len(NORM_GRID) - 1)])
    return clip, [(float(noise_multiplier), float(sample_rate), 1)]


def recommended_batch_size(
    n: int,
    *,
    epochs: int,
    target_epsilon: float,
    delta: float,
    candidates: Sequence[int] = (64, 128, 256, 512, 1024),
    min_steps: int = 250,
) -> int:
    """The expected Poisson batch size, among ``candidates`` (at most ``n / 8``), with the least noise on the
    averaged gradient (``noise_multiplier / batch``, RDP-calibrated) that leaves at least ``min_steps`` steps."""
    usable = [b for b in candidates if b <= n / 8] or [max(1, n // 8)]
    best, best_noise = usable[0], math.inf
    for b in usable:
        steps = epochs * max(1, round(n / b))
        if steps < min_steps and b != usable[0]:
            continue
        try:
            sigma = noise_multiplier_for(target_epsilon, delta, sample_rate=b / n, steps=steps, accountant="rdp")
        except PrivacyBudgetError:
            continue
        if sigma / b < best_noise:
            best, best_noise = b, sigma / b
    return best


def scaled_learning_rate(lr: float, *, from_batch_size: int, to_batch_size: float) -> float:
    """An Adam learning rate tuned at ``from_batch_size``, scaled by ``sqrt(to / from)`` for another batch size."""
    return float(lr) * math.sqrt(float(to_batch_size) / float(from_batch_size))
