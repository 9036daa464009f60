"""Backward-compatible weight interpolation (BCWI): average the old and the new model, weight by weight.

Schumann et al. (Amazon, "Backward compatibility during data updates by weight
interpolation", EACL 2024) update a model trained on more data by moving its
weights part of the way back towards the old model's::

    theta = (1 - old_weight) * theta_new + old_weight * theta_old

When both versions start from the same pretrained weights (or, as for
:mod:`homeloop.nlu.probe`, only retrain a head on the same frozen features),
the path between them stays in one basin of the loss: the interpolated model
keeps most of the new model's gains while agreeing with the old model where the
old one was right, so negative flips fall at a small cost in error. It costs no
training and nothing at inference (one model, the same architecture).

Models trained from different random initialisations do not share a basin:
the fast encoder trained from scratch cannot be interpolated at all (its
vocabulary and n-gram tables differ), and even two MiniLM NLUs fine-tuned from
the same pretrained encoder need the same ``seed`` (the same initial intent and
slot heads): measured on HWU64 (BENCHMARKS.md), BCWI at 0.5 cut the NFR of a
same-seed update to 0.43x for +0.09 points of error, and did nothing for an
update trained with another seed (0.94x, +1.0 point).

:func:`interpolate_weights` works on any two ``nn.Module`` of one architecture;
:func:`interpolate_models` on two fitted NLUs, aligning their heads by intent
and tag name (a label only the new model knows keeps the new model's weights).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from homeloop.errors import InvalidInputError

__all__ = ["interpolate_models", "interpolate_weights"]


def _check_weight(old_weight: float) -> None:
    if not (isinstance(old_weight, (int, float)) and 0.0 <= old_weight <= 1.0):
        raise InvalidInputError(f"old_weight: expected a number in [0, 1], got {old_weight!r}")


def interpolate_weights(old: nn.Module, new: nn.Module, old_weight: float) -> nn.Module:
    """A copy of ``new`` whose floating-point parameters and buffers are ``(1 - old_weight) * new + old_weight * old``.

    ``old`` and ``new`` must have the same state-dict keys and shapes (the same
    architecture and label space); ``old_weight`` is in ``[0, 1]`` (0: ``new``
    unchanged, 1: ``old``'s weights). Integer buffers (counters) are ``new``'s.
    """
    _check_weight(old_weight)
    old_state, new_state = old.state_dict(), new.state_dict()
    if old_state.keys() != new_state.keys():
        missing = sorted(set(new_state) ^ set(old_state))
        raise InvalidInputError(
            f"interpolate_weights: the models differ in architecture (parameters in only one of them: {missing[:5]})"
        )
    mixed = {}
    for name, value in new_state.items():
        before = old_state[name]
        if before.shape != value.shape:
            raise InvalidInputError(
                f"interpolate_weights: parameter {name!r} has shape {tuple(before.shape)} in the old model and "
                f"{tuple(value.shape)} in the new one (a different label space or size); retrain on the same labels"
            )
        if torch.is_floating_point(value):
            mixed[name] = torch.lerp(value, before.to(value.dtype), float(old_weight))
        else:
            mixed[name] = value.clone()
    result = copy.deepcopy(new)
    result.load_state_dict(mixed)
    return result


def interpolate_models(old: Any, new: Any, old_weight: float) -> Any:
    """BCWI for two fitted :class:`~homeloop.nlu.IntentSlotModel`: a copy of ``new`` whose network is moved
    ``old_weight`` of the way back to ``old``'s.

    The intent and slot heads are aligned by label: rows of intents (tags) both models know are
    interpolated, rows only ``new`` knows stay as they are. Every other parameter must have the same shape in
    both (the same encoder and settings); otherwise :class:`~homeloop.errors.InvalidInputError` names it.
    """
    _check_weight(old_weight)
    for name, model in (("old", old), ("new", new)):
        if getattr(model, "network_", None) is None:
            raise InvalidInputError(f"interpolate_models: the {name} model is not fitted")
    if old.encoder != new.encoder:
        raise InvalidInputError(
            f"interpolate_models: the old model uses the {old.encoder!r} encoder and the new one {new.encoder!r}; "
            "BCWI needs one architecture (use positive-congruent training across architectures)"
        )
    heads = {"intent_head.": (old.intents_, new.intents_), "slot_head.": (old.slot_tags_, new.slot_tags_)}
    old_state, new_state = old.network_.state_dict(), new.network_.state_dict()
    mixed = {}
    for name, value in new_state.items():
        before = old_state.get(name)
        head = next((labels for prefix, labels in heads.items() if name.startswith(prefix)), None)
        if head is not None and before is not None and before.shape[1:] == value.shape[1:]:
            position = {label: i for i, label in enumerate(head[0])}
            shared = [(i, position[label]) for i, label in enumerate(head[1]) if label in position]
            value = value.clone()
            if shared:
                rows_new, rows_old = (torch.tensor(side) for side in zip(*shared, strict=True))
                value[rows_new] = torch.lerp(value[rows_new], before[rows_old].to(value.dtype), float(old_weight))
            mixed[name] = value
        elif before is None or before.shape != value.shape:
            raise InvalidInputError(
                f"interpolate_models: parameter {name!r} differs between the models "
                f"({None if before is None else tuple(before.shape)} vs {tuple(value.shape)}); BCWI needs the same "
                "encoder built the same way (a fast encoder's vocabulary comes from its data: use MiniLM)"
            )
        else:
            mixed[name] = (
                torch.lerp(value, before.to(value.dtype), float(old_weight)) if value.is_floating_point() else value
            )
    result = copy.copy(new)
    result.network_ = copy.deepcopy(new.network_)
    result.network_.load_state_dict(mixed)
    result.network_.eval()
    result.training_data_ = {**new.training_data_, "interpolated_with_old": {"old_weight": float(old_weight)}}
    return result
