"""The per-sample clipping modes of DP-SGD: :data:`CLIPPING_MODES` maps each name to a function that wraps a
model and its optimizer, fastest first.

- ``"bookkeeping"`` (homeloop): one ordinary backward pass (:class:`~homeloop.privacy.clipper.BookKeepingClipper`
  and :class:`~homeloop.privacy.optimizer.BookKeepingDPOptimizer`).
- ``"ghost"`` (Opacus ghost clipping): two backward passes, the first for norms.
- ``"hooks"`` (Opacus): per-sample gradients materialised (memory ``batch x params``).

Each returns a :class:`PreparedClipping`. Opacus is imported when a model is prepared, not with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from homeloop.privacy.clipper import BookKeepingClipper

__all__ = ["CLIPPING_MODES", "PerExampleLoss", "PreparedClipping"]

#: ``per_example_loss(model, batch) -> Tensor[batch]``, one loss per example
PerExampleLoss = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class PreparedClipping:
    """What a clipping mode returns: the module to train, the DP optimizer, the loss wrapper, and how to undo it."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[PerExampleLoss], Callable[[nn.Module, Any], Any]]
    detach: Callable[[], None]
    clipper: BookKeepingClipper | None = None


def _mean_loss(per_example: PerExampleLoss) -> Callable[[nn.Module, Any], torch.Tensor]:
    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        return per_example(model, batch).mean()

    return loss_fn


def _prepare_bookkeeping(
    model,
    optimizer,
    *,
    noise_multiplier,
    max_grad_norm,
    expected_batch_size,
    generator,
    adaptive=None,
    noise_ahead=True,
):
    from homeloop.privacy.optimizer import BookKeepingDPOptimizer

    clipper = BookKeepingClipper(model)
    try:
        dp = BookKeepingDPOptimizer(
            optimizer,
            clipper=clipper,
            adaptive=adaptive,
            noise_ahead=noise_ahead,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=generator,
        )
    except Exception:
        clipper.detach()  # the model is left as it was given
        raise

    def detach() -> None:
        dp.noise.wait()
        clipper.detach()

    return PreparedClipping(module=model, optimizer=dp, loss=_mean_loss, detach=detach, clipper=clipper)


def _prepare_opacus(mode: str):
    def prepare(model, optimizer, *, noise_multiplier, max_grad_norm, expected_batch_size, generator):
        from opacus.grad_sample.utils import prepare_module
        from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping

        kwargs = {"max_grad_norm": max_grad_norm} if mode == "ghost" else {}
        wrapped = prepare_module(model, grad_sample_mode=mode, batch_first=True, loss_reduction="mean", **kwargs)
        cls = DPOptimizerFastGradientClipping if mode == "ghost" else DPOptimizer
        dp = cls(
            optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=generator,
        )
        if mode == "ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            def loss(per_example: PerExampleLoss):
                def loss_fn(m: nn.Module, batch: Any):
                    return DPTensorFastGradientClipping(wrapped, dp, per_example(m, batch), "mean")

                return loss_fn
        else:
            loss = _mean_loss

        def detach() -> None:
            wrapped._close()

        return PreparedClipping(module=wrapped, optimizer=dp, loss=loss, detach=detach)

    return prepare


#: per-sample clipping implementations, fastest first; ``"auto"`` picks the first that supports the model
CLIPPING_MODES: dict[str, Callable[..., PreparedClipping]] = {
    "bookkeeping": _prepare_bookkeeping,
    "ghost": _prepare_opacus("ghost"),
    "hooks": _prepare_opacus("hooks"),
}
