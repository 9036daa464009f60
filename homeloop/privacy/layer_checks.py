"""Which layers per-sample clipping can handle: :func:`check_layers` refuses the others before training, naming the fix."""

from __future__ import annotations

from torch import nn

from homeloop.errors import UnsupportedLayerError
from homeloop.privacy.layer_rules import LAYER_RULES

__all__ = ["check_layers", "trainable_layers"]

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


def trainable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
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
    for name, m in trainable_layers(model):
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
