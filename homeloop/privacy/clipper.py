"""The bookkeeping clipper: per-example gradient norms and clipped sums from one ordinary backward pass.

:class:`BookKeepingClipper` takes the parameters of the supported layers out of autograd, so the backward pass
computes only the gradients flowing between layers, and keeps each layer's input and output gradient in hooks;
the layer rules (:mod:`homeloop.privacy.layer_rules`) turn them into per-example norms and the clipped sum
``sum_i c_i a_i^T g_i`` (Bu et al. 2023, "book-keeping").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from homeloop.errors import UnsupportedLayerError
from homeloop.privacy.layer_checks import check_layers, trainable_layers
from homeloop.privacy.layer_rules import LAYER_RULES, LayerRecord

__all__ = ["BookKeepingClipper"]


class _Tap(torch.autograd.Function):
    """Identity that makes a first layer's output part of the autograd graph, so the backward pass reaches its
    gradient hook. Marking the output itself ``requires_grad`` would make it a leaf, which the graph keeps alive
    until the loss is gone (for the NLU's n-gram embedding that is its whole ``batch x words x n-grams x dim``
    output); a view from a function of an anchor leaf is freed as soon as the layers after it are done with it."""

    @staticmethod
    def forward(ctx: Any, anchor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None]:
        return None, None


class BookKeepingClipper:
    """Hooks on the supported layers of ``model`` that give per-example gradient norms and clipped sums after
    one ordinary backward pass (see the module docstring). ``detach()`` restores the model."""

    def __init__(self, model: nn.Module) -> None:
        check_layers(model, "bookkeeping")
        self.model = model
        self._layers = [m for _, m in trainable_layers(model)]
        self._frozen: list[nn.Parameter] = []
        self._records: dict[nn.Module, list[LayerRecord]] = {}
        self._handles = []
        self._anchor = torch.zeros((), requires_grad=True)
        self.active = True
        for m in self._layers:
            for p in m.parameters(recurse=False):
                if p.requires_grad:
                    p.requires_grad_(False)
                    self._frozen.append(p)
            self._handles.append(m.register_forward_hook(self._forward_hook))
        self.parameters = list(self._frozen)

    def _forward_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        if not (self.active and module.training and torch.is_grad_enabled()):
            return None
        record = LayerRecord(inputs=tuple(x.detach() if isinstance(x, torch.Tensor) else x for x in inputs))
        self._records.setdefault(module, []).append(record)
        if not output.requires_grad:  # the first layer: nothing before it needs gradients
            output = _Tap.apply(self._anchor, output)

        compact = getattr(LAYER_RULES[type(module)], "compact", None)

        def keep(grad: torch.Tensor) -> None:
            record.grad = grad.detach()
            if compact is not None:
                compact(module, record)

        output.register_hook(keep)
        return output

    def clear(self) -> None:
        self._records.clear()

    def _pairs(self) -> Iterator[tuple[nn.Module, LayerRecord]]:
        for m, records in self._records.items():
            for r in records:
                if r.grad is not None or r.compact is not None:
                    yield m, r

    def batch_size(self) -> int:
        for _, r in self._pairs():
            return int(r.grad.shape[0]) if r.grad is not None else int(r.compact[-1])
        return 0

    def _check_batch(self) -> None:
        sizes = {m: int(r.grad.shape[0]) if r.grad is not None else int(r.compact[-1]) for m, r in self._pairs()}
        batch = max(sizes.values(), default=0)
        for m, size in sizes.items():
            if size != batch:
                name = next((n for n, mod in self.model.named_modules() if mod is m), type(m).__name__)
                raise UnsupportedLayerError(
                    f"layer {name!r} ({type(m).__name__}): its output has batch size {size}, the batch {batch}; "
                    "a layer whose output is shared by every example (broadcast, e.g. position embeddings) has no "
                    "per-example gradient; fix: freeze it (requires_grad_(False)) or give it batch-first inputs"
                )

    def per_sample_norms(self, *, scale: float = 1.0) -> torch.Tensor:
        """Per-example gradient norms of the last backward pass (``scale`` undoes a mean reduction)."""
        self._check_batch()
        total: torch.Tensor | None = None
        for m, r in self._pairs():
            sq = LAYER_RULES[type(m)].norms(m, r)
            total = sq if total is None else total + sq
        if total is None:
            return torch.zeros(0)
        return total.clamp(min=0).sqrt() * scale

    def clipped_sum(
        self,
        max_grad_norm: float,
        *,
        scale: float = 1.0,
        multiplier: float = 1.0,
        into: Mapping[nn.Parameter, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Set each parameter's ``.grad`` to ``multiplier * sum_i min(1, C / ||g_i||) g_i``, added to its tensor in
        ``into`` (the DP optimizer's noise) or to zeros; returns the norms and the clipping factors."""
        norms = self.per_sample_norms(scale=scale)
        factors = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        weights = factors * (scale * multiplier)
        for p in self.parameters:
            p.grad = into[p] if into and p in into else torch.zeros_like(p, memory_format=torch.contiguous_format)
        for m, r in self._pairs():
            LAYER_RULES[type(m)].accumulate(m, r, weights)
            r.inputs, r.grad, r.compact = (), None, None  # freed as soon as used
        self.clear()
        return norms, factors

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for p in self._frozen:
            p.requires_grad_(True)
            p.grad = None
        self._frozen = []
        self.clear()
        self.active = False
