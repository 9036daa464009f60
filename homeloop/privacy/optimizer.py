"""The DP optimizer of bookkeeping clipping: :class:`BookKeepingDPOptimizer`, Opacus's noise-adding optimizer
fed by :class:`~homeloop.privacy.clipper.BookKeepingClipper`'s clipped sums, with the Gaussian noise drawn ahead
(:mod:`homeloop.privacy.noise`) and the clipping norm optionally adaptive
(:class:`~homeloop.privacy.adaptive_clipping.AdaptiveClipping`).

Importing this module imports Opacus; :mod:`homeloop.privacy.clipping_modes` imports it when a model is prepared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from opacus.optimizers import DPOptimizerFastGradientClipping
from torch import nn

from homeloop.errors import InvalidInputError
from homeloop.privacy.adaptive_clipping import AdaptiveClipping
from homeloop.privacy.clipper import BookKeepingClipper
from homeloop.privacy.noise import GaussianNoise

__all__ = ["BookKeepingDPOptimizer"]


class BookKeepingDPOptimizer(DPOptimizerFastGradientClipping):
    """Opacus's noise-adding optimizer, fed by :class:`BookKeepingClipper`'s clipped sums."""

    mean_reduction: bool = True

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        clipper: BookKeepingClipper,
        adaptive: AdaptiveClipping | None = None,
        noise_ahead: bool = True,
        **kwargs: Any,
    ) -> None:
        self.clipper = clipper
        self.adaptive = adaptive
        self._ours = {id(p) for p in clipper.parameters}
        stray = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        if stray:
            raise InvalidInputError(
                f"optimizer: {len(stray)} trained parameter(s) (shapes {[tuple(p.shape) for p in stray[:3]]}) "
                "belong to no layer of the model, so nothing clips their per-example gradients; fix: build the "
                "optimizer from model.parameters()"
            )
        super().__init__(optimizer, **kwargs)
        # adaptive clipping spends part of the noise budget on the count (Andrew et al. 2021, Theorem 1)
        self.gradient_noise_multiplier = (
            adaptive.gradient_noise_multiplier(self.noise_multiplier) if adaptive else self.noise_multiplier
        )
        self.noise = GaussianNoise(self.generator, ahead=noise_ahead)

    @property
    def params(self) -> list[nn.Parameter]:
        """The trained parameters (bookkeeping took them out of autograd)."""
        return [p for g in self.param_groups for p in g["params"] if id(p) in self._ours]

    def pre_step(self, closure: Callable[[], float] | None = None) -> bool | None:
        """Gradients = (Gaussian noise of std ``noise_multiplier * max_grad_norm`` + clipped sum) divided by the
        expected batch size: the clipped sum is accumulated into the noise, scaled as it is computed, so
        nothing is copied or passed over again (Opacus's version copies every gradient first)."""
        batch = self.clipper.batch_size()
        scale = float(batch) if self.mean_reduction else 1.0
        params = self.params
        noise = self.noise.take(params, self._noise_std())
        self.last_norms, _ = self.clipper.clipped_sum(
            self.max_grad_norm,
            scale=scale,
            multiplier=1.0 / self._divisor(),
            into=dict(zip(params, noise, strict=True)),
        )
        if self.adaptive is not None:  # the next step's clipping norm, from this step's noisy unclipped count
            self.max_grad_norm = self.adaptive.next_norm(
                self.max_grad_norm, self.last_norms, self.expected_batch_size, self.generator
            )
        if self.step_hook:
            self.step_hook(self)
        self._is_last_step_skipped = False
        return True

    def _divisor(self) -> float:
        return float(self.expected_batch_size) if self.loss_reduction == "mean" else 1.0

    def _noise_std(self) -> float:
        return float(self.gradient_noise_multiplier) * float(self.max_grad_norm) / self._divisor()

    def zero_grad(self, set_to_none: bool = False) -> None:
        self.clipper.clear()
        super().zero_grad(set_to_none)
        if hasattr(self, "noise"):  # the step's noise is drawn into the gradients while the model computes
            params = self.params
            for p in params:
                p.grad = None
            self.noise.draw_ahead(params, self._noise_std())
