"""DP-SGD for any homeloop model: :func:`make_private` wraps the user's model, optimizer and loader.

One entry point, as Opacus ``PrivacyEngine.make_private``::

    private = make_private(network, optimizer, loader, target_epsilon=8, target_delta=1e-5, epochs=10)
    fit(private.module, private.data_loader, optimizer=private.optimizer,
        loss_fn=private.loss(per_example_loss), epochs=10)
    private.detach()                       # hooks off; the network is a plain module again
    private.spent()                        # EpsilonSpent(epsilon (PRV), epsilon_rdp, ...)

``per_example_loss(model, batch) -> Tensor[batch]`` gives one loss per example
(DP-SGD bounds each example's influence, so the loss must not mix examples).

**Per-sample clipping**, from the registry :data:`CLIPPING_MODES`, fastest first:

- ``"bookkeeping"`` (homeloop): one ordinary backward pass. Parameters of the
  supported layers (:data:`LAYER_RULES`: ``Linear``, ``Embedding``, ``Conv1d``,
  ``LayerNorm``) are taken out of autograd, so the backward pass computes only the
  gradients flowing between layers; hooks keep each layer's input and output
  gradient. Per-sample gradient norms come from them without materialising
  per-sample gradients (ghost norms: ``||a_i^T g_i||^2 = <a_i a_i^T, g_i g_i^T>``
  for sequences, ``||a_i||^2 ||g_i||^2`` for vectors, per-row sums for embedding
  tables; the cheaper of ghost and explicit per layer), and the clipped sum
  ``sum_i c_i a_i^T g_i`` is one matrix product per layer, exactly the work the
  ordinary backward pass would have done for the weights (Bu et al. 2023, "book-keeping").
- ``"ghost"`` (Opacus ghost clipping): two backward passes, the first for norms.
- ``"hooks"`` (Opacus): per-sample gradients materialised (memory ``batch x params``).

``clipping="auto"`` takes bookkeeping when every trainable layer has a rule, else
Opacus ghost clipping when Opacus supports every layer, with a warning saying why.
Layers nothing supports (BatchNorm mixes the examples of a batch; ``nn.GRU``
needs Opacus's ``DPGRU``) raise :class:`~homeloop.errors.UnsupportedLayerError`
naming the layer and the fix, before anything is trained.

**Sampling and noise**: the loader becomes a Poisson sampler (each example joins
each batch independently with probability ``q = batch_size / n``), the noise
multiplier comes from ``target_epsilon`` with the PRV accountant
(:mod:`homeloop.privacy.accounting`), and ``max_grad_norm="auto"`` sets the
clipping norm to a quantile of the per-sample gradient norms estimated with a
differentially private histogram whose cost is accounted
(:mod:`homeloop.privacy.calibration`); ``max_grad_norm="adaptive"`` makes the
norm follow that quantile as training shrinks the gradients (:class:`AdaptiveClipping`). The optimizer is
Opacus's ``DPOptimizerFastGradientClipping``; with bookkeeping clipping the gradients start as the Gaussian noise,
drawn on a background thread while the model computes, and the clipped sums are accumulated into them
(:mod:`homeloop.privacy.noise`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from homeloop.errors import InvalidInputError, UnsupportedLayerError
from homeloop.privacy.accounting import EpsilonSpent, Mechanism, check_delta, epsilon_spent, noise_multiplier_for
from homeloop.privacy.noise import GaussianNoise

__all__ = [
    "CLIPPING_MODES",
    "LAYER_RULES",
    "AdaptiveClipping",
    "BookKeepingClipper",
    "PoissonLoader",
    "PrivacyWarning",
    "PrivateTraining",
    "check_layers",
    "make_private",
]

PerExampleLoss = Callable[[nn.Module, Any], torch.Tensor]


class PrivacyWarning(UserWarning):
    """An unsafe or wasteful privacy setting (spent budget, large delta, no Poisson sampling, ...)."""


# --------------------------------------------------------------------------- per-layer rules


@dataclass
class _Record:
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
    def norms(module: nn.Linear, r: _Record) -> torch.Tensor:
        a, g = _seq(r.inputs[0]), _seq(r.grad)
        sq = _matrix_sq_norms(a.to(g.dtype), g)
        if module.bias is not None:
            sq = sq + g.sum(1).square().sum(1)
        return sq

    @staticmethod
    def accumulate(module: nn.Linear, r: _Record, weights: torch.Tensor) -> None:
        g = _weighted(r.grad, weights)
        x, gw = r.inputs[0].reshape(-1, r.inputs[0].shape[-1]), g.reshape(-1, g.shape[-1])
        module.weight.grad.addmm_(gw.t(), x.to(gw.dtype))
        if module.bias is not None:
            module.bias.grad.add_(gw.sum(0))


class _EmbeddingRule:
    """Per-example gradients of an embedding table are sums of output gradients over the rows each example
    looks up; the backward hook sums them per (example, row) at once and drops the full output gradient."""

    @staticmethod
    def compact(module: nn.Embedding, r: _Record) -> None:
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
    def norms(module: nn.Embedding, r: _Record) -> torch.Tensor:
        example, _, summed, batch = r.compact
        sq = torch.zeros(batch, dtype=summed.dtype, device=summed.device)
        return sq.index_add_(0, example, summed.square().sum(1))

    @staticmethod
    def accumulate(module: nn.Embedding, r: _Record, weights: torch.Tensor) -> None:
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
    def norms(module: nn.Conv1d, r: _Record) -> torch.Tensor:
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
    def accumulate(module: nn.Conv1d, r: _Record, weights: torch.Tensor) -> None:
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
    def _per_example(module: nn.LayerNorm, r: _Record) -> dict[nn.Parameter, torch.Tensor]:
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
    def norms(module: nn.LayerNorm, r: _Record) -> torch.Tensor:
        per = _LayerNormRule._per_example(module, r)
        return sum(v.reshape(v.shape[0], -1).square().sum(1) for v in per.values())

    @staticmethod
    def accumulate(module: nn.LayerNorm, r: _Record, weights: torch.Tensor) -> None:
        for p, v in _LayerNormRule._per_example(module, r).items():
            p.grad.add_(_weighted(v, weights).sum(0))


#: how bookkeeping clipping takes per-sample norms and clipped gradients of each layer type
LAYER_RULES: dict[type[nn.Module], Any] = {
    nn.Linear: _LinearRule,
    nn.Embedding: _EmbeddingRule,
    nn.Conv1d: _Conv1dRule,
    nn.LayerNorm: _LayerNormRule,
}


# --------------------------------------------------------------------------- layer checks

_FIXES: dict[str, str] = {
    "BatchNorm": "replace it with nn.GroupNorm or nn.LayerNorm (opacus.validators.ModuleValidator.fix(model) does "
    "this); batch normalisation mixes the examples of a batch, so per-example gradients do not exist",
    "GRU": "use opacus.layers.DPGRU (ModuleValidator.fix(model)) with clipping='hooks', or for the NLU's fast encoder "
    "encoder_params={'context': 'cnn'}",
    "LSTM": "use opacus.layers.DPLSTM (ModuleValidator.fix(model)) with clipping='hooks'",
    "RNN": "use opacus.layers.DPRNN (ModuleValidator.fix(model)) with clipping='hooks'",
}


def _fix_for(module: nn.Module) -> str:
    for name, fix in _FIXES.items():
        if name in type(module).__name__:
            return fix
    return "replace it with layers built from nn.Linear, nn.Embedding, nn.Conv1d and nn.LayerNorm, or freeze it"


def _trainable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name or type(model).__name__, m)
        for name, m in model.named_modules()
        if any(p.requires_grad for p in m.parameters(recurse=False))
    ]


def check_layers(model: nn.Module, clipping: str = "bookkeeping") -> None:
    """Raise :class:`UnsupportedLayerError` for the first trainable layer ``clipping`` cannot clip per sample.

    Batch normalisation is refused in every mode, even when frozen in training mode, since it mixes examples.
    """
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
            m.training or any(p.requires_grad for p in m.parameters())
        ):
            raise UnsupportedLayerError(
                f"layer {name!r} ({type(m).__name__}): differentially private training needs per-example "
                f"gradients; fix: {_fix_for(m)}"
            )
    for name, m in _trainable_layers(model):
        reason = _unsupported(m, clipping)
        if reason:
            raise UnsupportedLayerError(
                f"layer {name!r} ({type(m).__name__}): {reason} in clipping mode {clipping!r}; fix: {_fix_for(m)}"
            )


def _unsupported(m: nn.Module, clipping: str) -> str | None:
    if clipping == "bookkeeping":
        rule = LAYER_RULES.get(type(m))
        if rule is None:
            return "homeloop's bookkeeping clipping has no per-sample rule for this layer"
        check = getattr(rule, "check", None)
        reason = check(m) if check else None
        if isinstance(m, nn.Embedding) and (m.max_norm is not None or m.scale_grad_by_freq or m.sparse):
            reason = "embeddings with max_norm, scale_grad_by_freq or sparse gradients"
        return f"{reason} are not supported" if reason else None
    from opacus.grad_sample import GradSampleModule

    if type(m) in GradSampleModule.GRAD_SAMPLERS:
        return None
    if isinstance(m, (nn.RNNBase,)):
        return "Opacus has no per-sample gradients for torch's fused recurrent layers"
    return None  # Opacus falls back to functorch for other layers


# --------------------------------------------------------------------------- bookkeeping clipper


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
        self._layers = [m for _, m in _trainable_layers(model)]
        self._frozen: list[nn.Parameter] = []
        self._records: dict[nn.Module, list[_Record]] = {}
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
        record = _Record(inputs=tuple(x.detach() if isinstance(x, torch.Tensor) else x for x in inputs))
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

    def _pairs(self) -> Iterator[tuple[nn.Module, _Record]]:
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


# --------------------------------------------------------------------------- Poisson sampling


class PoissonLoader:
    """Batches in which every example takes part independently with probability ``sample_rate`` (the sampling
    the accountants assume). ``len()`` is the number of batches per epoch, ``round(1 / sample_rate)``.

    A batch that comes out empty (probability ``(1-q)^n``, negligible at the expected batch sizes used) is
    skipped, and the accountant still counts it.
    """

    def __init__(
        self,
        dataset: Sequence[Any],
        *,
        sample_rate: float,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        seed: int = 0,
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise InvalidInputError(f"sample_rate: expected a number in (0, 1], got {sample_rate!r}")
        self.dataset = dataset
        self.sample_rate = float(sample_rate)
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.steps_per_epoch = max(1, round(1 / self.sample_rate))

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        for _ in range(self.steps_per_epoch):
            chosen = torch.nonzero(torch.rand(n, generator=self.generator) < self.sample_rate).flatten().tolist()
            if chosen:
                yield self.collate_fn([self.dataset[i] for i in chosen])


# --------------------------------------------------------------------------- the DP optimizer


def _dp_optimizer_class() -> type:
    from opacus.optimizers import DPOptimizerFastGradientClipping

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

    return BookKeepingDPOptimizer


# --------------------------------------------------------------------------- adaptive clipping


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


# --------------------------------------------------------------------------- modes


@dataclass
class _Prepared:
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
    clipper = BookKeepingClipper(model)
    try:
        dp = _dp_optimizer_class()(
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

    return _Prepared(module=model, optimizer=dp, loss=_mean_loss, detach=detach, clipper=clipper)


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

        return _Prepared(module=wrapped, optimizer=dp, loss=loss, detach=detach)

    return prepare


#: per-sample clipping implementations, fastest first; ``"auto"`` picks the first that supports the model
CLIPPING_MODES: dict[str, Callable[..., _Prepared]] = {
    "bookkeeping": _prepare_bookkeeping,
    "ghost": _prepare_opacus("ghost"),
    "hooks": _prepare_opacus("hooks"),
}


def _choose_clipping(model: nn.Module, clipping: str) -> str:
    if clipping != "auto":
        if clipping not in CLIPPING_MODES:
            raise InvalidInputError(f"clipping {clipping!r}: expected 'auto' or one of {sorted(CLIPPING_MODES)}")
        check_layers(model, clipping)
        return clipping
    try:
        check_layers(model, "bookkeeping")
        return "bookkeeping"
    except UnsupportedLayerError as exc:
        check_layers(model, "ghost")  # raises for layers nothing supports
        warnings.warn(
            f"falling back to Opacus ghost clipping (two backward passes, slower): {exc}", PrivacyWarning, stacklevel=3
        )
        return "ghost"


# --------------------------------------------------------------------------- the entry point


@dataclass
class PrivateTraining:
    """What :func:`make_private` returns: the wrapped objects plus the privacy bookkeeping.

    Unpacks as ``module, optimizer, data_loader = make_private(...)``. Train with
    ``loss_fn=private.loss(per_example_loss)``; afterwards call :meth:`detach`
    and read :meth:`spent`.
    """

    module: nn.Module
    optimizer: torch.optim.Optimizer
    data_loader: Any
    clipping: str
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    expected_batch_size: float
    planned_steps: int
    delta: float
    target_epsilon: float | None
    accountant: str = "prv"
    calibration: list[Mechanism] = field(default_factory=list)
    steps: int = 0
    _prepared: _Prepared | None = None
    _original: nn.Module | None = None
    _warned_spent: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.module, self.optimizer, self.data_loader))

    def loss(self, per_example_loss: PerExampleLoss) -> Callable[[nn.Module, Any], Any]:
        """The ``loss_fn`` for :func:`homeloop.training.fit`: the mean of ``per_example_loss`` (``[batch]``)."""
        return self._prepared.loss(per_example_loss)

    @property
    def current_max_grad_norm(self) -> float:
        """The clipping norm of the next step (it moves during training with ``max_grad_norm='adaptive'``)."""
        return float(getattr(self.optimizer, "max_grad_norm", self.max_grad_norm))

    def history(self) -> list[Mechanism]:
        """The mechanisms run so far: calibration, then ``steps`` DP-SGD steps."""
        return [*self.calibration, (self.noise_multiplier, self.sample_rate, self.steps)]

    def spent(self, delta: float | None = None) -> EpsilonSpent:
        """Epsilon spent so far (PRV) with the RDP cross-check."""
        return epsilon_spent(self.history(), delta or self.delta, accountant=self.accountant)

    def _on_step(self, _optimizer: Any) -> None:
        self.steps += 1
        if self.target_epsilon is not None and self.steps > self.planned_steps and not self._warned_spent:
            self._warned_spent = True
            warnings.warn(
                f"privacy budget spent: {self.planned_steps} steps reach epsilon {self.target_epsilon}; further steps "
                "exceed the target (stop training, or ask for more epochs in make_private)",
                PrivacyWarning,
                stacklevel=2,
            )

    def detach(self) -> nn.Module:
        """Remove the per-sample hooks and return the original model (trained); warns if much budget is unspent."""
        if self._prepared is not None:
            self._prepared.detach()
        if self.target_epsilon is not None and self.steps < 0.5 * self.planned_steps:
            warnings.warn(
                f"unspent privacy budget: {self.steps} of {self.planned_steps} planned steps ran; the same epsilon "
                "allowed less noise",
                PrivacyWarning,
                stacklevel=2,
            )
        return self._original


def _dataset_of(loader: Any) -> Sequence[Any]:
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise InvalidInputError(
            f"data_loader: expected a DataLoader over a map-style dataset (len and indexing), got {type(loader).__name__}"
        )
    return dataset


def make_private(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: Any,
    *,
    epochs: int,
    target_epsilon: float | None = None,
    target_delta: float | None = None,
    noise_multiplier: float | None = None,
    max_grad_norm: float | str = "auto",
    batch_size: int | str | None = None,
    per_example_loss: PerExampleLoss | None = None,
    clipping: str = "auto",
    accountant: str = "prv",
    poisson_sampling: bool = True,
    clip_quantile: float = 0.5,
    seed: int = 0,
    noise_ahead: bool = True,
) -> PrivateTraining:
    """Wrap ``module``, ``optimizer`` and ``data_loader`` for DP-SGD (see the module docstring).

    Give either ``target_epsilon`` (the noise multiplier is calibrated with ``accountant`` for ``epochs``
    passes at ``target_delta``, default ``1 / n^1.1``) or ``noise_multiplier`` directly.
    ``max_grad_norm="auto"`` estimates the ``clip_quantile`` quantile of per-example gradient norms
    privately before training (needs ``per_example_loss``; its small cost is part of the target);
    ``"adaptive"`` tracks that quantile during training instead (:class:`AdaptiveClipping`, bookkeeping
    clipping only; its cost is part of every step's noise). ``batch_size`` is the
    expected Poisson batch size: the loader's by default, or ``"auto"`` for
    :func:`homeloop.privacy.calibration.recommended_batch_size`. ``noise_ahead`` (bookkeeping clipping, CPU)
    draws each step's Gaussian noise on a background thread while the model computes
    (:mod:`homeloop.privacy.noise`). Raises
    :class:`~homeloop.errors.UnsupportedLayerError` and :class:`~homeloop.errors.PrivacyBudgetError`
    before training when the model or the target cannot work.
    """
    from homeloop.privacy import calibration

    if not isinstance(epochs, int) or epochs < 1:
        raise InvalidInputError(f"epochs: expected a positive integer, got {epochs!r}")
    if (target_epsilon is None) == (noise_multiplier is None):
        raise InvalidInputError(
            f"make_private: expected exactly one of target_epsilon and noise_multiplier, got "
            f"target_epsilon={target_epsilon!r}, noise_multiplier={noise_multiplier!r}"
        )
    if target_epsilon is not None and target_epsilon <= 0:
        raise InvalidInputError(f"target_epsilon: expected a positive number, got {target_epsilon!r}")
    mode = _choose_clipping(module, clipping)
    dataset = _dataset_of(data_loader)
    n = len(dataset)
    if n < 2:
        raise InvalidInputError(f"data_loader: expected at least 2 training examples, got {n}")
    delta = float(target_delta) if target_delta is not None else 1.0 / n**1.1
    check_delta(delta)
    if delta >= 1.0 / n:
        warnings.warn(
            f"delta {delta:g} is not below 1/n = {1 / n:g}: a mechanism that publishes one example in {n} at random "
            "meets it; use delta well below 1/n (default 1/n^1.1)",
            PrivacyWarning,
            stacklevel=2,
        )
    if target_epsilon is not None and target_epsilon > 10:
        warnings.warn(
            f"target epsilon {target_epsilon} gives a weak guarantee (likelihood ratios up to e^{target_epsilon:g})",
            PrivacyWarning,
            stacklevel=2,
        )
    collate = getattr(data_loader, "collate_fn", None)
    if batch_size == "auto":
        if target_epsilon is None:
            raise InvalidInputError("batch_size='auto' needs target_epsilon")
        expected = calibration.recommended_batch_size(n, epochs=epochs, target_epsilon=target_epsilon, delta=delta)
    elif batch_size is None:
        expected = int(getattr(data_loader, "batch_size", None) or 0)
        if expected < 1:
            raise InvalidInputError("batch_size: the data_loader has no batch_size; pass batch_size=...")
    elif isinstance(batch_size, int) and batch_size >= 1:
        expected = batch_size
    else:
        raise InvalidInputError(f"batch_size: expected a positive integer, 'auto' or None, got {batch_size!r}")
    sample_rate = min(1.0, expected / n)
    steps_per_epoch = max(1, round(1 / sample_rate))
    planned_steps = epochs * steps_per_epoch

    prior: list[Mechanism] = []
    adaptive: AdaptiveClipping | None = None
    if max_grad_norm == "adaptive":
        if mode != "bookkeeping":
            raise InvalidInputError(
                f"max_grad_norm='adaptive' needs clipping='bookkeeping' (homeloop's clipping), got {mode!r}"
            )
        if not 0 < clip_quantile < 1:
            raise InvalidInputError(f"clip_quantile: expected a number in (0, 1), got {clip_quantile!r}")
        clip = 1.0  # where the norm starts; it moves by up to a factor e^0.1 per step
    elif max_grad_norm == "auto":
        if per_example_loss is None:
            raise InvalidInputError(
                "max_grad_norm='auto' needs per_example_loss(model, batch) -> Tensor[batch]; or pass max_grad_norm=1.0"
            )
        # known before looking at the data: at most 5% of the target
        prior = calibration.calibration_mechanism(n, target_epsilon=target_epsilon, delta=delta)
    elif isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0:
        clip = float(max_grad_norm)
    else:
        raise InvalidInputError(
            f"max_grad_norm: expected a positive number, 'auto' or 'adaptive', got {max_grad_norm!r}"
        )

    if target_epsilon is not None:  # refuses an impossible target before any gradient is computed
        sigma = noise_multiplier_for(
            target_epsilon, delta, sample_rate=sample_rate, steps=planned_steps, prior=prior, accountant=accountant
        )
    else:
        sigma = float(noise_multiplier)
        if not sigma >= 0:
            raise InvalidInputError(f"noise_multiplier: expected a non-negative number, got {noise_multiplier!r}")
    if max_grad_norm == "adaptive":  # Andrew et al.'s count noise, B / 20, and no less than sigma
        adaptive = AdaptiveClipping(target_quantile=clip_quantile, count_noise=max(expected / 20.0, sigma, 1e-6))
    if max_grad_norm == "auto":
        clip, spent_prior = calibration.private_clipping_norm(
            module, dataset, per_example_loss, collate_fn=collate, quantile=clip_quantile, mechanism=prior, seed=seed
        )
        prior = spent_prior  # the same mechanism as computed above
    if sigma < 0.3:
        warnings.warn(
            f"noise multiplier {sigma:.3g} is small: the accountant's guarantee holds, but epsilon grows fast with "
            "every extra step",
            PrivacyWarning,
            stacklevel=2,
        )
    if poisson_sampling:
        loader = PoissonLoader(dataset, sample_rate=sample_rate, collate_fn=collate, seed=seed)
    else:
        warnings.warn(
            "poisson_sampling=False: the accountants assume Poisson sampling, so the reported epsilon is an "
            "approximation, not a guarantee",
            PrivacyWarning,
            stacklevel=2,
        )
        loader = data_loader
    generator = torch.Generator()
    generator.manual_seed(seed + 1)
    prepared = CLIPPING_MODES[mode](
        module,
        optimizer,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=max(1, round(expected)),
        generator=generator,
        **({"adaptive": adaptive} if adaptive else {}),
        **({"noise_ahead": noise_ahead} if mode == "bookkeeping" else {}),
    )
    private = PrivateTraining(
        module=prepared.module,
        optimizer=prepared.optimizer,
        data_loader=loader,
        clipping=mode,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        sample_rate=sample_rate,
        expected_batch_size=expected,
        planned_steps=planned_steps,
        delta=delta,
        target_epsilon=float(target_epsilon) if target_epsilon is not None else None,
        accountant=accountant,
        calibration=prior,
        _prepared=prepared,
        _original=module,
    )
    prepared.optimizer.attach_step_hook(private._on_step)
    return private


def expected_steps(n: int, batch_size: int, epochs: int) -> int:
    """DP-SGD steps of ``epochs`` passes with Poisson batches of expected size ``batch_size`` over ``n`` examples."""
    return epochs * max(1, round(n / max(1, batch_size)))
