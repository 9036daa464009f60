"""Per-layer rules of bookkeeping clipping: per-example gradient norms and clipped gradient sums of each layer type.

A rule takes what :class:`~homeloop.privacy.clipper.BookKeepingClipper` kept of one call of a layer (its inputs
and the gradient of the loss with respect to its output, a :class:`LayerRecord`) and gives

- ``norms(module, record)``: the squared norm of each example's gradient of the layer's parameters, without
  materialising per-example gradients where a ghost norm is cheaper
  (``||a_i^T g_i||^2 = <a_i a_i^T, g_i g_i^T>`` for sequences, ``||a_i||^2 ||g_i||^2`` for vectors);
- ``accumulate(module, record, weights)``: adds ``sum_i weights_i * g_i`` to the parameters' ``.grad``;
- optionally ``compact(module, record)`` (shrinks the record in the backward hook) and ``check(module)`` (a
  reason the layer's configuration is unsupported, or ``None``).

:data:`LAYER_RULES` maps each supported layer type to its rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LAYER_RULES", "LayerRecord"]


@dataclass
class LayerRecord:
    """One call of a layer: its inputs, and the gradient of the loss with respect to its output (or a compact
    form of it, for embeddings)."""

    inputs: tuple[torch.Tensor, ...]
    grad: torch.Tensor | None = None
    compact: Any = None


def _seq(x: torch.Tensor) -> torch.Tensor:
    """``[batch, ..., d] -> [batch, positions, d]``."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _weighted(g: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return g * weights.reshape((-1,) + (1,) * (g.dim() - 1))


def _matrix_sq_norms(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of ``a_i^T g_i`` per example; ``a: [B, T, din]``, ``g: [B, T, dout]``."""
    t, din, dout = a.shape[1], a.shape[2], g.shape[2]
    if t == 1:
        return (a.square().sum((1, 2))) * (g.square().sum((1, 2)))
    if t * (din + dout) <= din * dout:  # ghost norm: T x T Gram matrices are smaller than the gradient
        return (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
    return torch.bmm(g.transpose(1, 2), a).square().sum((1, 2))


class _LinearRule:
    @staticmethod
    def norms(module: nn.Linear, r: LayerRecord) -> torch.Tensor:
        a, g = _seq(r.inputs[0]), _seq(r.grad)
        sq = _matrix_sq_norms(a.to(g.dtype), g)
        if module.bias is not None:
            sq = sq + g.sum(1).square().sum(1)
        return sq

    @staticmethod
    def accumulate(module: nn.Linear, r: LayerRecord, weights: torch.Tensor) -> None:
        g = _weighted(r.grad, weights)
        x, gw = r.inputs[0].reshape(-1, r.inputs[0].shape[-1]), g.reshape(-1, g.shape[-1])
        module.weight.grad.addmm_(gw.t(), x.to(gw.dtype))
        if module.bias is not None:
            module.bias.grad.add_(gw.sum(0))


class _EmbeddingRule:
    """Per-example gradients of an embedding table are sums of output gradients over the rows each example
    looks up; the backward hook sums them per (example, row) at once and drops the full output gradient."""

    @staticmethod
    def compact(module: nn.Embedding, r: LayerRecord) -> None:
        ids, g = r.inputs[0], r.grad
        batch = ids.shape[0]
        ids = ids.reshape(batch, -1)
        g = g.reshape(batch * ids.shape[1], -1)
        example = torch.arange(batch, device=ids.device).unsqueeze(1)
        keys = (example * module.num_embeddings + ids).reshape(-1)
        unique, inverse = torch.unique(keys, return_inverse=True)
        summed = torch.zeros(unique.shape[0], g.shape[-1], dtype=g.dtype, device=g.device)
        summed.index_add_(0, inverse, g)
        rows = unique % module.num_embeddings
        if module.padding_idx is not None:  # torch gives the padding row no gradient
            summed.index_fill_(0, torch.nonzero(rows == module.padding_idx).flatten(), 0.0)
        r.compact = (torch.div(unique, module.num_embeddings, rounding_mode="floor"), rows, summed, batch)
        r.grad = None

    @staticmethod
    def norms(module: nn.Embedding, r: LayerRecord) -> torch.Tensor:
        example, _, summed, batch = r.compact
        sq = torch.zeros(batch, dtype=summed.dtype, device=summed.device)
        return sq.index_add_(0, example, summed.square().sum(1))

    @staticmethod
    def accumulate(module: nn.Embedding, r: LayerRecord, weights: torch.Tensor) -> None:
        example, rows, summed, _ = r.compact
        grad = module.weight.grad
        grad.index_add_(0, rows, (summed * weights[example].unsqueeze(1)).to(grad.dtype))


class _Conv1dRule:
    @staticmethod
    def _patches(module: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        """Input patches ``[B, L_out, C_in * k]`` of a 1-D convolution."""
        patches = F.unfold(
            x.unsqueeze(2),
            kernel_size=(1, module.kernel_size[0]),
            dilation=(1, module.dilation[0]),
            padding=(0, module.padding[0]),
            stride=(1, module.stride[0]),
        )
        return patches.transpose(1, 2)

    @staticmethod
    def norms(module: nn.Conv1d, r: LayerRecord) -> torch.Tensor:
        x, gs = r.inputs[0], r.grad.transpose(1, 2)  # gs: [B, L_out, C_out]
        (k,), (d,), (p,), (stride,) = module.kernel_size, module.dilation, module.padding, module.stride
        length = gs.shape[1]
        if stride == 1 and length * (x.shape[1] * k + gs.shape[2]) <= x.shape[1] * k * gs.shape[2]:
            # ghost norm without unfolding: the patches' Gram matrix is a sum of k shifted blocks of x's
            xp = F.pad(x, (p, p)).transpose(1, 2)
            gram = torch.bmm(xp, xp.transpose(1, 2))
            patch_gram = sum(gram[:, j * d : j * d + length, j * d : j * d + length] for j in range(k))
            sq = (patch_gram * torch.bmm(gs, gs.transpose(1, 2))).sum((1, 2))
        else:
            sq = _matrix_sq_norms(_Conv1dRule._patches(module, x), gs)
        if module.bias is not None:
            sq = sq + gs.sum(1).square().sum(1)
        return sq

    @staticmethod
    def accumulate(module: nn.Conv1d, r: LayerRecord, weights: torch.Tensor) -> None:
        g = _weighted(r.grad, weights)
        module.weight.grad.add_(
            torch.nn.grad.conv1d_weight(
                r.inputs[0],
                module.weight.shape,
                g,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
            )
        )
        if module.bias is not None:
            module.bias.grad.add_(g.sum((0, 2)))

    @staticmethod
    def check(module: nn.Conv1d) -> str | None:
        if module.groups != 1 or isinstance(module.padding, str) or module.padding_mode != "zeros":
            return "grouped, 'same'-padded or non-zero-padded convolutions"
        return None


class _LayerNormRule:
    @staticmethod
    def _per_example(module: nn.LayerNorm, r: LayerRecord) -> dict[nn.Parameter, torch.Tensor]:
        x, g = r.inputs[0], r.grad
        dims = tuple(range(-len(module.normalized_shape), 0))
        normed = (x - x.mean(dims, keepdim=True)) * torch.rsqrt(x.var(dims, unbiased=False, keepdim=True) + module.eps)
        shape = (x.shape[0], -1, *module.normalized_shape)
        out = {}
        if module.weight is not None:
            out[module.weight] = (g * normed).reshape(shape).sum(1)
        if module.bias is not None:
            out[module.bias] = g.reshape(shape).sum(1)
        return out

    @staticmethod
    def norms(module: nn.LayerNorm, r: LayerRecord) -> torch.Tensor:
        per = _LayerNormRule._per_example(module, r)
        return sum(v.reshape(v.shape[0], -1).square().sum(1) for v in per.values())

    @staticmethod
    def accumulate(module: nn.LayerNorm, r: LayerRecord, weights: torch.Tensor) -> None:
        for p, v in _LayerNormRule._per_example(module, r).items():
            p.grad.add_(_weighted(v, weights).sum(0))


#: how bookkeeping clipping takes per-sample norms and clipped gradients of each layer type
LAYER_RULES: dict[type[nn.Module], Any] = {
    nn.Linear: _LinearRule,
    nn.Embedding: _EmbeddingRule,
    nn.Conv1d: _Conv1dRule,
    nn.LayerNorm: _LayerNormRule,
}
