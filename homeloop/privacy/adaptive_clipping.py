"""Adaptive clipping: :class:`AdaptiveClipping` moves the clipping norm to a quantile of the gradient norms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from homeloop.errors import InvalidInputError

__all__ = ["AdaptiveClipping"]


@dataclass(frozen=True)
class AdaptiveClipping:
    """The clipping norm follows a quantile of the per-example gradient norms during training (Andrew et al.,
    NeurIPS 2021, "Differentially private learning with adaptive clipping").

    After each step the share of examples whose norm was at most ``C`` is counted, with Gaussian noise of
    std ``count_noise`` (the count has sensitivity 1/2 once centred), and ``C <- C * exp(-learning_rate *
    (share - target_quantile))``. The count and the clipped gradient sum together are one Gaussian mechanism
    of noise multiplier ``(sigma_g^-2 + (2 count_noise)^-2)^-1/2``: the accountant's ``sigma`` is kept and
    the gradient gets ``sigma_g`` (slightly more noise), so the privacy guarantee is unchanged.
    """

    target_quantile: float = 0.5
    learning_rate: float = 0.2
    count_noise: float = 1.0

    def gradient_noise_multiplier(self, sigma: float) -> float:
        if sigma <= 0:
            return sigma
        rest = sigma**-2 - (2.0 * self.count_noise) ** -2
        if rest <= 0:
            raise InvalidInputError(
                f"adaptive clipping: count noise {self.count_noise:g} is too small for noise multiplier {sigma:g}; "
                f"expected count_noise > {sigma / 2:g} (use a larger batch)"
            )
        return rest**-0.5

    def next_norm(
        self, clip: float, norms: torch.Tensor, expected_batch_size: float, generator: torch.Generator | None
    ) -> float:
        unclipped = float((norms <= clip).sum())
        noise = float(torch.randn((), generator=generator)) * self.count_noise
        share = (unclipped + noise) / max(1.0, float(expected_batch_size))
        return float(clip * math.exp(-self.learning_rate * (share - self.target_quantile)))
